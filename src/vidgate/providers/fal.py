"""fal's queue API (reference section 7).

- submit: ``POST {queue host}/{endpoint id}`` with the model's input JSON, auth
  ``Authorization: Key <FAL_KEY>``; the answer carries ``request_id`` and the
  ``status_url``/``response_url``/``cancel_url`` to use from then on.
- Those URLs use only ``{owner}/{app}``, not the endpoint's subpath (submit to
  ``fal-ai/kling-video/v2.1/master/text-to-video``, poll ``fal-ai/kling-video/requests/
  {id}/status``), so the returned status URL's path without ``/status`` names the
  request: ``"{owner}/{app}/requests/{request_id}"``. The upstream id is the
  ``request_id``, the task's state holds ``app``. Only the path is kept; every call goes
  to the deployment's own host, so the key is never sent anywhere else.
- status ``GET …/status?logs=1``: ``IN_QUEUE`` -> queued, ``IN_PROGRESS`` -> running,
  ``COMPLETED`` -> succeeded, unless it carries ``error``/``error_type`` (then failed).
  fal reports no progress and no cost in the queue API.
- result ``GET …/requests/{id}``: the model's output, ``{"video": {"url", ...}}`` for
  video models (UNVERIFIED per endpoint); the file is public (no auth). The output is
  stored once, so an expired link cannot be renewed: ``result_expired``.
- cancel ``PUT …/cancel``: 202 ``CANCELLATION_REQUESTED``; ``ALREADY_COMPLETED`` and
  ``NOT_FOUND`` mean there is nothing left to stop.
- no idempotency key exists in the queue API: a lost create response can leave a
  duplicate request upstream.

Each fal endpoint has its own input schema; ``family_for`` picks the input names by the
endpoint id (Kling, MiniMax Hailuo, Veo 3, else a generic default), and what each family
accepts is the catalogue's ``upstreams.fal`` (by endpoint pattern). With a first frame,
an endpoint ending in ``/text-to-video`` is swapped for its ``/image-to-video`` sibling,
which exists for Kling and Hailuo on fal (UNVERIFIED for other families). With
``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) the submit carries ``?fal_webhook=``:
fal POSTs there when the request ends, and vidgate reads the status at once (a hint
only; the body is not used). Images are sent
as ``data:`` URIs in ``image_url``. Options: ``input`` (extra fields sent with every
request; mapped fields win), ``poll_s``.

A last frame goes only to the Kling image-to-video endpoints, as ``tail_image_url`` (a
``data:`` URI like ``image_url``); that field name, and which Kling versions/tiers on
fal take it, are UNVERIFIED (the reference has no per-endpoint schema). Every other
family refuses a last frame, and every family refuses reference images, because no
field for them is documented (the catalogue says so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import Field, JsonValue

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits, default_error_message
from vidgate.providers.inputs import image_data_url
from vidgate.providers.model_inputs import InputNames

DEFAULT_BASE_URL = "https://queue.fal.run"
# The SDK polls every 0.1 s; video takes minutes, so 2 s loses nothing.
_POLL_S = 2.0


class Options(adapter_config.AdapterSettings):
    poll_s: float = Field(default=_POLL_S, gt=0)
    # Extra fields sent with every request (after the mapped ones).
    input: dict[str, JsonValue] = {}


# Endpoint ids are the whole path: the queue host takes no prefix.
ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "", DEFAULT_BASE_URL)
# The app a probe reads a request of (any app answers for any key).
_PROBE_APP = "fal-ai/kling-video"
_SEGMENT = r"[A-Za-z0-9_.~-]+"
_ENDPOINT = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_REQUEST_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*/requests/{_SEGMENT}")
# Apps under these namespaces keep a third path segment [SDK AppId.from_endpoint_id].
_NAMESPACES = ("workflows", "comfy")
_T2V, _I2V = "/text-to-video", "/image-to-video"


# How each family of fal endpoints names the common inputs (all per-endpoint schemas
# are UNVERIFIED: the reference lists only prompt, duration as a string, aspect_ratio,
# negative_prompt and image_url; tail_image_url is UNVERIFIED too). What each family
# accepts is the catalogue's ``upstreams.fal``. An image-to-video endpoint takes its
# frame from the image, so the aspect ratio goes with text-to-video only.
KLING = InputNames(
    duration_suffix="",
    aspect_with_image=False,
    image="image_url",
    last_frame="tail_image_url",
    seed=None,
)
HAILUO = InputNames(
    duration_suffix="", aspect_ratio=None, image="image_url", seed=None, negative_prompt=None
)
VEO3 = InputNames(
    duration_suffix="s",
    aspect_with_image=False,
    resolution="resolution",
    resolutions={"720p": "720p", "1080p": "1080p"},
    image="image_url",
)
GENERIC = InputNames(duration_suffix="", aspect_with_image=False, image="image_url")


# fal's ``error_type``s: the request errors of its queue (docs.fal.ai model-apis
# request-errors) and the model errors' types (model-apis errors); other types are read
# from their words (providers/failures.py).
FAILURES: Mapping[str, failures.Failure] = {
    "request_timeout": failures.TIMED_OUT,
    "startup_timeout": failures.TIMED_OUT,
    "generation_timeout": failures.TIMED_OUT,
    "runner_scheduling_failure": failures.TRANSIENT,
    "runner_connection_timeout": failures.TRANSIENT,
    "runner_disconnected": failures.TRANSIENT,
    "runner_connection_refused": failures.TRANSIENT,
    "runner_connection_error": failures.TRANSIENT,
    "runner_incomplete_response": failures.TRANSIENT,
    "runner_server_error": failures.TRANSIENT,
    "internal_error": failures.TRANSIENT,
    "internal_server_error": failures.TRANSIENT,
    "downstream_service_error": failures.TRANSIENT,
    "downstream_service_unavailable": failures.TRANSIENT,
    "content_policy_violation": failures.REFUSED,
    "bad_request": failures.INVALID,
    "client_disconnected": failures.FAILED,
    "client_cancelled": failures.FAILED,
    "no_media_generated": failures.FAILED,
}


def family_for(endpoint: str) -> InputNames:
    segments = endpoint.lower().split("/")
    if "kling-video" in segments:
        return KLING
    if any(s.startswith("hailuo") for s in segments):
        return HAILUO
    if any(s.startswith("veo3") for s in segments):
        return VEO3
    return GENERIC


def check_endpoint(endpoint: str | None) -> str:
    value = (endpoint or "").strip().strip("/")
    if not _ENDPOINT.fullmatch(value) or value.count("/") < 1:
        raise InvalidParameter(
            f"fal: upstream model {value!r} is not a fal endpoint id such as "
            "'fal-ai/kling-video/v2.1/master/text-to-video'",
            param="model",
        )
    return value


def endpoint_for(endpoint: str, has_image: bool) -> str:
    if has_image and endpoint.endswith(_T2V):
        return endpoint[: -len(_T2V)] + _I2V
    return endpoint


def app_id(endpoint: str) -> str:
    """``owner/app`` (``namespace/owner/app``) of an endpoint id, without the subpath."""
    parts = endpoint.split("/")
    return "/".join(parts[: 3 if parts[0] in _NAMESPACES else 2])


def build_input(
    spec: JobSpec,
    endpoint: str,
    image: str | None,
    extra: Mapping[str, Any] | None = None,
    last_frame: str | None = None,
) -> dict[str, Any]:
    """The request body for ``endpoint`` (already swapped by ``endpoint_for``); the
    images are ``data:`` URIs."""
    return family_for(endpoint).body(spec, image, extra, last_frame)


def request_path(created: Mapping[str, Any], endpoint: str, base_path: str = "") -> str:
    """The request's path, ``{owner}/{app}/requests/{request_id}``, from the returned
    ``status_url`` where it has that shape, else built from the endpoint id."""
    request_id = created.get("request_id")
    if not isinstance(request_id, str) or not re.fullmatch(_SEGMENT, request_id):
        raise base.ProviderError("upstream_bad_response", "fal: no request_id", retryable=False)
    status_url = created.get("status_url")
    suffix = f"/requests/{request_id}/status"
    if isinstance(status_url, str):
        path = urlsplit(status_url).path
        if path.endswith(suffix):
            app = path[: -len(suffix)]
            if base_path and app.startswith(base_path + "/"):
                app = app[len(base_path) :]
            candidate = f"{app.strip('/')}/requests/{request_id}"
            if _REQUEST_PATH.fullmatch(candidate):
                return candidate
    return f"{app_id(endpoint)}/requests/{request_id}"


def parse_status(
    body: Mapping[str, Any], poll_s: float = _POLL_S, provider: str = "fal"
) -> base.UpstreamStatus:
    status = str(body.get("status") or "")
    if status == "IN_QUEUE":
        return base.UpstreamStatus("queued", poll_after_s=poll_s)
    if status == "COMPLETED":
        error, error_type = body.get("error"), body.get("error_type")
        # COMPLETED only means the request ended; an app failure rides on it [SDK].
        if error or error_type:
            code = str(error_type) if error_type else None
            text = str(error) if error else None
            return failures.failed(failures.lookup(FAILURES, code, text), provider, text, code)
        return base.UpstreamStatus("succeeded", progress=100)
    return base.UpstreamStatus("running", poll_after_s=poll_s)  # IN_PROGRESS, or anything new


def output_urls(output: object) -> list[str]:
    """``{"video": {"url"}}`` (or a bare URL), or ``{"videos": [...]}``."""
    if not isinstance(output, dict):
        return []
    items = (
        output.get("videos") if isinstance(output.get("videos"), list) else [output.get("video")]
    )
    urls: list[str] = []
    for item in items or []:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url:
            urls.append(url)
    return urls


def error_message(response: httpx.Response) -> str | None:
    """``{"detail": str | [{loc, msg}]}``, with ``x-fal-error-type`` when present."""
    error_type = response.headers.get("x-fal-error-type")
    text: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        error_type = error_type or (
            body.get("error_type") if isinstance(body.get("error_type"), str) else None
        )
        if isinstance(detail, str):
            text = detail
        elif isinstance(detail, list):
            text = "; ".join(_validation_item(item) for item in detail)
    text = text or default_error_message(response)
    if error_type and text:
        return f"{text} ({error_type})"
    return text or error_type


def _validation_item(item: object) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = [str(p) for p in item.get("loc", []) if p != "body"]
    msg = str(item.get("msg", "invalid"))
    return f"{'.'.join(loc)}: {msg}" if loc else msg


class FalProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._poll_s = options.poll_s
        self._extra = dict(options.input)
        base_url = adapter_config.api_base_url(config.base_url, ADAPTER)
        self._base_path = urlsplit(base_url).path.rstrip("/")
        self._http = UpstreamClient(
            provider=config.name,
            base_url=base_url,
            headers={"Authorization": f"Key {credentials.api_key.get_secret_value()}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )

    def _endpoint(self, spec: JobSpec, upstream_model: str | None) -> tuple[str, str]:
        endpoint = endpoint_for(check_endpoint(upstream_model), spec.image is not None)
        return endpoint, f"{self.name} (fal {endpoint})"

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        endpoint, who = self._endpoint(spec, upstream_model)
        self._deps.capabilities.check(spec, "fal", endpoint, who)

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        # The queue API has no idempotency mechanism: idempotency_key (the job id) only
        # names the webhook URL.
        endpoint, _ = self._endpoint(spec, upstream_model)
        image = await image_data_url(self._deps, spec.image) if spec.image else None
        last = await image_data_url(self._deps, spec.last_frame) if spec.last_frame else None
        body = build_input(spec, endpoint, image, self._extra, last)
        params = (
            {"fal_webhook": self._deps.callback_url(idempotency_key)}
            if self._deps.callback_url is not None
            else None
        )
        created = await self._http.json("POST", f"/{endpoint}", json=body, params=params)
        if not isinstance(created, dict):
            raise base.ProviderError(
                "upstream_bad_response", f"{self.name}: submit answered no object", retryable=False
            )
        app, _, request_id = request_path(created, endpoint, self._base_path).rpartition(
            "/requests/"
        )
        return base.SubmitResult(request_id, poll_after_s=self._poll_s, state={"app": app})

    def _path(self, task: base.UpstreamTask) -> str:
        path = f"{task.state.get('app')}/requests/{task.id}"
        if not _REQUEST_PATH.fullmatch(path) or ".." in path.split("/"):
            raise base.ProviderError(
                "invalid_upstream_id", f"{self.name}: malformed request id", retryable=False
            )
        return f"/{path}"

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        body = await self._http.json("GET", f"{self._path(task)}/status", params={"logs": "1"})
        if not isinstance(body, dict):
            raise base.ProviderError(
                "upstream_bad_response", f"{self.name}: status is not an object", retryable=True
            )
        return parse_status(body, self._poll_s, self.name)

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        output = await self._http.json("GET", self._path(task))
        urls = output_urls(output)
        if not urls:
            raise base.ProviderError(
                "upstream_bad_response",
                f"{self.name}: the result has no video URL",
                retryable=False,
            )
        gone = f"{self.name}: the result file is gone and fal keeps one URL per result"
        return await self._http.download_each(urls, dest_dir, progress, gone=gone)

    async def cancel(self, task: base.UpstreamTask) -> None:
        try:
            await self._http.request("PUT", f"{self._path(task)}/cancel")
        except base.ProviderError as error:
            # ALREADY_COMPLETED (400) / NOT_FOUND (404): nothing left to stop.
            if error.code not in ("upstream_rejected", "upstream_not_found"):
                raise

    async def probe(self) -> None:
        """A status read of a request that does not exist: 404 once the key is taken
        (whether fal answers 404 rather than 400 for a malformed id is UNVERIFIED)."""
        path = f"/{_PROBE_APP}/requests/{adapter_config.PROBE_ID}/status"
        await adapter_config.probe_missing(lambda: self._http.request("GET", path))

    async def aclose(self) -> None:
        await self._http.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> FalProvider:
    return FalProvider(config, deps)
