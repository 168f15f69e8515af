"""The Gemini API (``generativelanguage.googleapis.com``, key in ``x-goog-api-key``), in
the two shapes it has served video in; ``upstream_model`` picks the shape.

``gemini-omni-*``: the Interactions API (reference 2.3), Google's current video path.
``POST /v1/interactions`` with ``background: true`` and a video ``response_format``;
poll ``GET /v1/interactions/{id}``; cancel ``POST /v1/interactions/{id}/cancel``. The
video is the last ``video`` block of the last ``model_output`` step (the SDK's
``output_video`` helper is derived from ``steps``; a top-level ``output_video`` is read
too), as a ``uri`` or inline ``data``. One interaction makes one video.
``gemini-omni-flash-preview`` was shut down on 2026-09-30 (3P).
Input images are ``image`` content blocks after the text block: the first frame, then
the last frame, or up to 3 reference images on their own (see ``omni_request`` for the
ordering convention, which is UNVERIFIED), all in one ``user_input`` step (the SDK
rewrites a bare list of content blocks into that form, and calls the bare list legacy);
a prompt alone goes as a string. What each model takes (durations, resolutions, frames,
references, image types: the eight of the SDK's ``ImageContentMimeType``, sent as they
are) is the catalogue's ``upstreams.gemini``.

``veo-*``: the legacy operation shape (reference 2.2). ``POST /v1beta/models/{m}
:predictLongRunning``, poll ``GET /v1beta/{operation name}``, results at
``response.generateVideoResponse.generatedSamples[].video.uri``, downloaded with the
key from ``GET /v1beta/files/{id}:download?alt=media``. Shut down: veo-2.0/3.0 on
2026-06-30, veo-3.1-*-preview on 2026-10-22 (UNVERIFIED on Google's own page). Kept for
deployments that still answer it (a proxy, a region, a late shutdown); it has no fps
or seed, no cancel, and files kept 2 days (UNVERIFIED) that cannot be re-issued. It
takes ``lastFrame`` and ``referenceImages`` (ASSET only; the SDK refuses STYLE on this
API) like Vertex, with the same rules (the catalogue's ``upstreams.gemini``); an image
Veo does not read (JPEG and PNG) is sent converted to PNG, as on Vertex. Errors,
operations and inline results are read as on Vertex (``google_api``).

``upstream_id``: the interaction id for Omni (the task's state says
``{"api": "interactions"}``); the operation name (``models/{m}/operations/{id}``) for Veo.
Options: ``poll_interval_s`` (5), ``interactions_api_version`` (v1).
Neither shape takes an idempotency key, so a resubmission makes a second video.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from vidgate.core.capabilities import CapabilityTable
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.media.images import CONTENT_TYPES
from vidgate.providers import adapter_config, base, failures, google_api
from vidgate.providers.http import UpstreamClient, UpstreamLimits

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_MODEL = "gemini-omni-1.1-flash"


class Options(adapter_config.AdapterSettings):
    poll_interval_s: float = Field(default=google_api.DEFAULT_POLL_S, gt=0)
    interactions_api_version: str = "v1"


# The version is part of every path (v1 interactions, v1beta Veo): no fixed prefix.
ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "", DEFAULT_BASE_URL)
# What each model takes is the catalogue's ``upstreams.gemini``; these map our names.
OMNI_RESOLUTIONS = {"360p": "360p", "720p": "720p", "1080p": "1080p", "4K": "4k"}
VEO_RESOLUTIONS = {"720p": "720p", "1080p": "1080p", "4K": "4k"}
# The task state of an Omni interaction; a Veo operation has none.
_INTERACTION: base.TaskState = {"api": "interactions"}
_OMNI_STATES: dict[str, Literal["queued", "running", "succeeded", "cancelled"]] = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "cancelled": "cancelled",
}
# Statuses a background video interaction must not end in; each is a failure for us.
_OMNI_FAILED = {"failed", "incomplete", "budget_exceeded", "requires_action",
                "requires_continuation", "continuation_required", "idle"}  # fmt: skip
# ``/v1beta/files/{id}:download`` (or ``/files/{id}``) on the API's host.
_FILES_PATH = re.compile(r"/v1[a-z0-9]*/files/([A-Za-z0-9_-]+)(?::download)?")


def is_omni(model: str) -> bool:
    return model.startswith("gemini-omni")


def check_spec(spec: JobSpec, model: str, provider: str, table: CapabilityTable) -> None:
    """The catalogue's data for ``model``; legacy Veo uses reference images only at 8 s
    (earlier Google docs, reference 2.2, UNVERIFIED), which the data cannot say."""
    where = f"{provider} (Gemini API {model})"
    # Legacy Veo gets converted images; Omni reads what its data lists, as it is.
    bridged = () if is_omni(model) else CONTENT_TYPES
    table.check(spec, "gemini", model, where, bridged_types=bridged)
    if not is_omni(model) and spec.reference_images and spec.seconds != 8:
        raise InvalidParameter(
            f"{where} uses reference images only at 8 s; allowed: 8", param="seconds"
        )


def _image_block(image: google_api.Base64Image) -> dict[str, Any]:
    return {"type": "image", "data": image.data, "mime_type": image.mime_type}


def omni_request(
    spec: JobSpec,
    model: str,
    inputs: google_api.Base64Inputs,
) -> dict[str, Any]:
    """The Interactions create body; the wire example in reference 2.3 is the model.

    Input images: the SDK's image content block is ``{type, data | uri, mime_type,
    resolution}`` with no role field, and a user turn (a ``user_input`` step) is just a
    list of such blocks, so nothing in the types marks an image as first frame, last
    frame or reference.
    UNVERIFIED convention used here: the text block, then the first frame, then the last
    frame, with ``generation_config.video_config.task`` ``image_to_video``; reference
    images alone after the text with task ``reference_to_video`` (the catalogue's
    ``references_alone`` keeps references and frames apart, so the task says what every
    image is). A lone first frame keeps its old form, task left to the model (it is
    auto-selected).
    """
    blocks: list[dict[str, Any]] = []
    if inputs.video is not None:
        blocks.append({"type": "video", "data": inputs.video, "mime_type": "video/mp4"})
    images = [inputs.image, inputs.last_frame, *inputs.references]
    blocks += [_image_block(image) for image in images if image is not None]
    text = {"type": "text", "text": spec.prompt}
    body: dict[str, Any] = {
        "model": model,
        "input": [{"type": "user_input", "content": [text, *blocks]}] if blocks else spec.prompt,
        "response_modalities": ["video"],
        "response_format": {
            "type": "video",
            "aspect_ratio": spec.aspect_ratio,
            "resolution": OMNI_RESOLUTIONS[spec.resolution],
            "duration": f"{spec.seconds}s",
            "delivery": "uri",
        },
        "background": True,
    }
    config: dict[str, Any] = {}
    if spec.seed is not None:
        config["seed"] = spec.seed  # generation_config.seed; UNVERIFIED for video models
    if spec.kind != "generate":
        # A remix is Omni's "edit" of the source video (UNVERIFIED mapping).
        config["video_config"] = {"task": "extend" if spec.kind == "extend" else "edit"}
    elif spec.reference_images:
        config["video_config"] = {"task": "reference_to_video"}
    elif spec.last_frame is not None:
        config["video_config"] = {"task": "image_to_video"}
    if config:
        body["generation_config"] = config
    return body


def omni_video(interaction: dict[str, Any]) -> dict[str, Any] | None:
    """The result video block: ``output_video``, else the last video content of the
    model output after the last user input (how the SDK derives it), else legacy
    ``outputs``."""
    if isinstance(interaction.get("output_video"), dict):
        return dict(interaction["output_video"])
    for step in reversed(interaction.get("steps") or []):
        if not isinstance(step, dict) or step.get("type") == "user_input":
            break
        if step.get("type") == "model_output":
            for item in reversed(step.get("content") or []):
                if isinstance(item, dict) and item.get("type") == "video":
                    return item
    for item in reversed(interaction.get("outputs") or []):
        if isinstance(item, dict) and item.get("type") == "video":
            return item
    return None


def omni_status(
    interaction: dict[str, Any], poll_s: float, provider: str = "gemini"
) -> base.UpstreamStatus:
    status = str(interaction.get("status"))
    if status in _OMNI_FAILED:
        errors = [e for e in interaction.get("errors") or [] if isinstance(e, dict)]
        for step in interaction.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get("error"), dict):
                errors.append(step["error"])
        message = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
        code = str(errors[0].get("code") or status) if errors else status
        # Interactions errors carry a string code, google.rpc's names where UNVERIFIED.
        failure = google_api.rpc_failure(code, message)
        return failures.failed(failure, provider, message or status, code)
    state = _OMNI_STATES.get(status, "running")
    if state == "succeeded" and omni_video(interaction) is None:
        return failures.failed(failures.TRANSIENT, provider, "completed without a video")
    if state in ("queued", "running"):
        return base.UpstreamStatus(state, poll_after_s=poll_s)
    return base.UpstreamStatus(state, progress=100 if state == "succeeded" else None)


def veo_request(spec: JobSpec, inputs: google_api.Base64Inputs) -> dict[str, Any]:
    instance = google_api.veo_instance(spec, inputs)
    parameters: dict[str, Any] = {
        "sampleCount": spec.n,
        "durationSeconds": spec.seconds,
        "aspectRatio": spec.aspect_ratio,
        "resolution": VEO_RESOLUTIONS[spec.resolution],
    }
    if spec.negative_prompt:
        parameters["negativePrompt"] = spec.negative_prompt
    return {"instances": [instance], "parameters": parameters}


def veo_samples(op: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response = op.get("response") if isinstance(op.get("response"), dict) else None
    result = (response or {}).get("generateVideoResponse")
    result = result if isinstance(result, dict) else {}
    videos = [
        s["video"]
        for s in result.get("generatedSamples") or []
        if isinstance(s, dict) and isinstance(s.get("video"), dict) and s["video"].get("uri")
    ]
    return result, videos


class GeminiProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._poll_s = options.poll_interval_s
        self._version = options.interactions_api_version
        base_url = adapter_config.api_base_url(config.base_url, ADAPTER)
        self._api_host = urlsplit(base_url).netloc
        self._http = UpstreamClient(
            provider=config.name,
            base_url=base_url,
            headers={"x-goog-api-key": credentials.api_key.get_secret_value()},
            timeout_s=config.timeout_s,
            # An interaction's video may come back inline, in the status answer.
            limits=UpstreamLimits.of(deps.settings).with_inline_results(),
            error_message=google_api.google_error_message,
        )

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(spec, upstream_model or DEFAULT_MODEL, self.name, self._deps.capabilities)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await google_api.google_json(self._http, method, path, **kwargs)

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """``idempotency_key`` is unused: neither API takes one."""
        model = upstream_model or DEFAULT_MODEL
        # Omni takes every type its data lists as it is; legacy Veo JPEG and PNG only.
        accepted = CONTENT_TYPES if is_omni(model) else google_api.VEO_IMAGE_TYPES
        inputs = await google_api.read_base64_inputs(self._deps, spec, accepted)
        if not is_omni(model):
            path = f"/v1beta/models/{model}:predictLongRunning"
            body = veo_request(spec, inputs)
            op = await self._call("POST", path, json=body)
            if not isinstance(op.get("name"), str):
                raise base.ProviderError(
                    "upstream_bad_response", "no operation name", retryable=False
                )
            return base.SubmitResult(op["name"], poll_after_s=self._poll_s)
        omni = omni_request(spec, model, inputs)
        interaction = await self._call("POST", f"/{self._version}/interactions", json=omni)
        if not isinstance(interaction.get("id"), str):
            raise base.ProviderError("upstream_bad_response", "no interaction id", retryable=False)
        return base.SubmitResult(interaction["id"], poll_after_s=self._poll_s, state=_INTERACTION)

    async def _read(self, task: base.UpstreamTask) -> tuple[dict[str, Any], base.UpstreamStatus]:
        if _is_interaction(task):
            interaction = await self._call(
                "GET", f"/{self._version}/interactions/{task.id}", params={"stream": "false"}
            )
            return interaction, omni_status(interaction, self._poll_s, self.name)
        name = task.id
        if not name.startswith("models/") or "/operations/" not in name:
            raise base.ProviderError("upstream_bad_id", f"not a Gemini id: {name}", retryable=False)
        op = await self._call("GET", f"/v1beta/{name}")
        result, videos = veo_samples(op)
        return op, google_api.operation_status(
            op, result, videos, task.spec.n, self._poll_s, self.name
        )

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        return (await self._read(task))[1]

    async def _results(self, task: base.UpstreamTask) -> list[dict[str, Any]]:
        body, state = await self._read(task)
        if state.state != "succeeded":
            raise base.ProviderError(
                "upstream_not_ready",
                f"{self.name}: the task is {state.state}: {state.error_message or ''}",
                retryable=state.state in ("queued", "running"),
            )
        if _is_interaction(task):
            return [omni_video(body) or {}]
        return veo_samples(body)[1]

    async def _download(self, video: dict[str, Any], dest: Path) -> Path:
        if video.get("data"):
            return await google_api.write_base64(str(video["data"]), dest)
        uri = str(video.get("uri") or "")
        parts = urlsplit(uri)
        ours = parts.netloc in (self._api_host, urlsplit(DEFAULT_BASE_URL).netloc)
        file_id = _FILES_PATH.fullmatch(parts.path)
        if ours and file_id:
            # A Files API URI: the SDK downloads it by id through the API, with the key.
            url = f"/v1beta/files/{file_id.group(1)}:download?alt=media"
            return await self._http.download(url, dest, authenticated=True)
        # The key goes only to the API's own host, never to a signed URL elsewhere.
        return await self._http.download(uri, dest, authenticated=ours)

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        videos = await self._results(task)
        paths: list[Path] = []
        for index in range(len(videos)):
            dest = dest_dir / f"{index}.mp4"
            try:
                paths.append(await self._download(videos[index], dest))
            except base.ProviderError as error:
                if not error.expired:
                    raise
                # Re-read once: a fresh URL is retried; the same one is gone for good
                # (Files API results are kept 2 days and never re-issued).
                fresh = (await self._results(task))[index]
                if fresh.get("uri") == videos[index].get("uri") and not fresh.get("data"):
                    raise base.ProviderError(
                        "result_expired", error.message, retryable=False, expired=True
                    ) from error
                paths.append(await self._download(fresh, dest))
            if progress is not None:
                progress((index + 1) / len(videos))
        return paths

    async def cancel(self, task: base.UpstreamTask) -> None:
        """Omni: ``POST /v1/interactions/{id}/cancel``. Veo operations: a no-op, the
        Gemini API exposes no cancel for them."""
        if not _is_interaction(task):
            return
        try:
            await self._call("POST", f"/{self._version}/interactions/{task.id}/cancel")
        except base.ProviderError as error:
            # Already finished or gone: nothing left to stop.
            if error.code not in ("upstream_not_found", "upstream_rejected"):
                raise

    async def probe(self) -> None:
        """``GET /v1beta/models?pageSize=1``: the Gemini API's model list, which takes
        the key (a wrong one is a 400 API_KEY_INVALID: unhealthy)."""
        await self._call("GET", "/v1beta/models", params={"pageSize": "1"})

    async def aclose(self) -> None:
        await self._http.aclose()


def _is_interaction(task: base.UpstreamTask) -> bool:
    return task.state.get("api") == "interactions"


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> GeminiProvider:
    return GeminiProvider(config, deps)
