"""Google Veo on Vertex AI ("Gemini Enterprise Agent Platform"), reference section 2.1.

- create: ``POST /v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}
  :predictLongRunning`` with ``{instances: [{prompt, image?, lastFrame?, video?,
  referenceImages?}], parameters}``; the answer is a long-running Operation ``{name}``;
- inputs: the first frame is ``image`` and the last frame ``lastFrame`` (both
  ``{bytesBase64Encoded, mimeType}``; Veo reads JPEG and PNG, so any other image, a
  GIF's first frame say, is sent converted to PNG); reference images are ``referenceImages[]`` of
  ``{image, referenceType: "ASSET"}``, at most 3. Per the SDK docstring image, video and
  lastFrame are not allowed together with references, and STYLE references are a Veo 2
  thing (one image), so we only ever send ASSET. Which Vertex Veo models accept a last
  frame or references is UNVERIFIED (the catalogue decides what reaches us);
- poll: ``POST /v1beta1/{model resource}:fetchPredictOperation {operationName}``; there
  is no progress field, so a running operation reports no progress;
- results: ``response.videos[]``, inline ``bytesBase64Encoded`` unless
  ``options.storage_uri`` names a GCS prefix, then ``gcsUri`` objects read through the
  GCS JSON API with the same token. Inline results come back on every poll, so they
  never expire; a deleted GCS object cannot be asked for again;
- RAI filtering: ``raiMediaFilteredCount``/``raiMediaFilteredReasons`` instead of videos;
- no cancel and no idempotency key (a resubmission makes a second operation).

``upstream_id`` is the operation name; a poll compares the videos with the spec's ``n``,
so it can tell a partly filtered result (fewer videos than asked for) from a complete one.

Credentials: ``access_token``, a ready OAuth2 bearer token, or ``service_account_file``,
the path of a service-account JSON key (what ``GOOGLE_APPLICATION_CREDENTIALS`` names),
read once when the adapter is built and turned into cached access tokens by
``google_service_account`` (a bad file is a ``ValueError``, so the deployment is left
out; a refused key makes it unhealthy). Neither set, or no ``options.project``, is an
``AdapterConfigError`` at create. With both credentials set, ``access_token``
wins. A 401 or 403 from Vertex drops the cached token, so the next call asks for a new
one.
Options: ``project`` (required), ``location`` (us-central1), ``api_version`` (v1beta1),
``storage_uri``, ``storage_base_url``, ``generate_audio``, ``poll_interval_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.spec import JobSpec
from vidgate.media.images import CONTENT_TYPES
from vidgate.providers import adapter_config, base, google_api
from vidgate.providers.google_service_account import ServiceAccountTokens, load_service_account
from vidgate.providers.http import UpstreamClient, UpstreamLimits

DEFAULT_MODEL = "veo-3.1-generate-001"
DEFAULT_LOCATION = "us-central1"
STORAGE_BASE_URL = "https://storage.googleapis.com"
# Our names -> the API's (the docstring lists 720p/1080p; 4k was added 2026-01-13).
RESOLUTIONS = {"720p": "720p", "1080p": "1080p", "4K": "4k"}


class Options(adapter_config.AdapterSettings):
    project: str = Field(min_length=1)
    location: str = DEFAULT_LOCATION
    api_version: str = "v1beta1"
    # A GCS prefix for results (gs://bucket/path); without it they come back inline.
    storage_uri: str | None = None
    storage_base_url: str = STORAGE_BASE_URL
    generate_audio: bool | None = None
    poll_interval_s: float = Field(default=google_api.DEFAULT_POLL_S, gt=0)


class Credentials(adapter_config.AdapterSettings):
    access_token: SecretStr | None = None
    service_account_file: SecretStr | None = None

    @model_validator(mode="after")
    def _one_is_set(self) -> Self:
        if self.access_token is None and self.service_account_file is None:
            raise ValueError("set credentials.access_token or credentials.service_account_file")
        return self


# The version is part of every path (options.api_version): no fixed prefix.
ADAPTER = adapter_config.AdapterSpec(Options, Credentials, "")


# --- Veo input rules (also used by the Gemini API adapter) ------------------------


# --- Vertex mapping ------------------------------------------------------------------


def build_request(
    spec: JobSpec,
    inputs: google_api.Base64Inputs,
    *,
    storage_uri: str | None = None,
    generate_audio: bool | None = None,
) -> dict[str, Any]:
    # A video is the extension input (UNVERIFIED which Veo models on Vertex accept it).
    instance = google_api.veo_instance(spec, inputs)
    parameters: dict[str, Any] = {
        "sampleCount": spec.n,
        "durationSeconds": spec.seconds,
        "aspectRatio": spec.aspect_ratio,
        "resolution": RESOLUTIONS[spec.resolution],
        "fps": spec.fps,
    }
    if spec.seed is not None:
        parameters["seed"] = spec.seed
    if spec.negative_prompt:
        parameters["negativePrompt"] = spec.negative_prompt
    if storage_uri:
        parameters["storageUri"] = storage_uri
    if generate_audio is not None:
        parameters["generateAudio"] = generate_audio
    return {"instances": [instance], "parameters": parameters}


def result_videos(op: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    raw = op.get("response")
    response: dict[str, Any] = raw if isinstance(raw, dict) else {}
    videos = [
        v
        for v in response.get("videos") or []
        if isinstance(v, dict) and (v.get("bytesBase64Encoded") or v.get("gcsUri"))
    ]
    return response, videos


def gcs_media_path(gcs_uri: str) -> str:
    """``gs://bucket/a/b.mp4`` -> the GCS JSON API media download path."""
    if not gcs_uri.startswith("gs://") or "/" not in gcs_uri[5:]:
        raise base.ProviderError(
            "upstream_bad_response", f"not a gs:// object URI: {gcs_uri}", retryable=False
        )
    bucket, name = gcs_uri[5:].split("/", 1)
    return f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"


def operation_resource(name: str) -> str:
    """``projects/…/models/M/operations/ID`` -> ``projects/…/models/M``."""
    resource, sep, op_id = name.partition("/operations/")
    if not sep or not op_id or not resource.startswith("projects/"):
        raise base.ProviderError(
            "upstream_bad_id", f"not a Vertex operation name: {name}", retryable=False
        )
    return resource


class VertexProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._project = options.project
        self._location = options.location
        self._version = options.api_version
        self._storage_uri = options.storage_uri or None
        self._storage_base = options.storage_base_url.rstrip("/")
        self._generate_audio = options.generate_audio
        self._poll_s = options.poll_interval_s
        token = credentials.access_token
        key_file = credentials.service_account_file
        self._bearer = token.get_secret_value() if token is not None else ""
        self._tokens: ServiceAccountTokens | None = None
        if token is None and key_file is not None:
            try:
                key = load_service_account(key_file.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"deployment {config.name!r}: {exc}") from None
            self._tokens = ServiceAccountTokens(
                key,
                provider=config.name,
                timeout_s=config.timeout_s,
                limits=UpstreamLimits.of(deps.settings),
            )
        host = (
            "https://aiplatform.googleapis.com"
            if self._location == "global"
            else f"https://{self._location}-aiplatform.googleapis.com"
        )
        limits = UpstreamLimits.of(deps.settings)
        self._http = UpstreamClient(
            provider=config.name,
            base_url=(config.base_url or host).rstrip("/"),
            timeout_s=config.timeout_s,
            # Without a storage URI the videos come back inline, in the poll answer.
            limits=limits if self._storage_uri else limits.with_inline_results(),
            error_message=google_api.google_error_message,
        )

    async def _auth(self) -> dict[str, str]:
        bearer = await self._tokens.token() if self._tokens is not None else self._bearer
        return {"Authorization": f"Bearer {bearer}"}

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        model = upstream_model or DEFAULT_MODEL
        self._deps.capabilities.check(
            spec, "vertex", model, f"{self.name} (Vertex AI {model})", bridged_types=CONTENT_TYPES
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = await self._auth()
        try:
            return await google_api.google_json(self._http, method, path, headers=headers, **kwargs)
        except base.ProviderError as error:
            if error.code == "upstream_auth_failed" and self._tokens is not None:
                # A token revoked before its time: the next call asks for a new one.
                self._tokens.invalidate(headers["Authorization"].removeprefix("Bearer "))
            raise

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """``idempotency_key`` is unused: predictLongRunning takes no request id."""
        model = upstream_model or DEFAULT_MODEL
        body = build_request(
            spec,
            await google_api.read_base64_inputs(self._deps, spec, google_api.VEO_IMAGE_TYPES),
            storage_uri=self._storage_uri,
            generate_audio=self._generate_audio,
        )
        path = (
            f"/{self._version}/projects/{self._project}/locations/{self._location}"
            f"/publishers/google/models/{model}:predictLongRunning"
        )
        op = await self._call("POST", path, json=body)
        if not isinstance(op.get("name"), str):
            raise base.ProviderError(
                "upstream_bad_response", f"{self.name}: no operation name", retryable=False
            )
        return base.SubmitResult(op["name"], poll_after_s=self._poll_s)

    async def _operation(self, name: str) -> dict[str, Any]:
        path = f"/{self._version}/{operation_resource(name)}:fetchPredictOperation"
        return await self._call("POST", path, json={"operationName": name})

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        op = await self._operation(task.id)
        result, videos = result_videos(op)
        return google_api.operation_status(op, result, videos, task.spec.n, self._poll_s, self.name)

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        op = await self._operation(task.id)
        result, videos = result_videos(op)
        state = google_api.operation_status(
            op, result, videos, task.spec.n, self._poll_s, self.name
        )
        if state.state != "succeeded":
            raise base.ProviderError(
                "upstream_not_ready",
                f"{self.name}: operation is {state.state}: {state.error_message or ''}",
                retryable=state.state == "running",
            )
        paths: list[Path] = []
        for index, video in enumerate(videos):
            dest = dest_dir / f"{index}.mp4"
            if video.get("bytesBase64Encoded"):
                paths.append(await google_api.write_base64(str(video["bytesBase64Encoded"]), dest))
            else:
                # Objects in the operator's bucket: a deleted one is gone for good, so the
                # download's own result_expired is final.
                url = self._storage_base + gcs_media_path(str(video["gcsUri"]))
                paths.append(await self._http.download(url, dest, headers=await self._auth()))
            if progress is not None:
                progress((index + 1) / len(videos))
        return paths

    async def cancel(self, task: base.UpstreamTask) -> None:
        """A no-op: Vertex exposes no cancel for Veo operations (reference 2.1)."""

    async def probe(self) -> None:
        """A token (from the key file), then a read of an operation that does not exist:
        404 once the project takes the token (403 when it does not). Whether Vertex
        answers 404, not 400, for an unknown operation id is UNVERIFIED."""
        name = (
            f"projects/{self._project}/locations/{self._location}/publishers/google/models/"
            f"{DEFAULT_MODEL}/operations/00000000-0000-0000-0000-000000000000"
        )
        await adapter_config.probe_missing(lambda: self._operation(name))

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._tokens is not None:
            await self._tokens.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> VertexProvider:
    return VertexProvider(config, deps)
