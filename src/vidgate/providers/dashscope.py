"""Wan (2.5, 2.6, 2.7) on Alibaba Cloud Model Studio, the DashScope API (reference
section 11; paths, headers and fields read from the official ``dashscope`` package,
2.0.2: ``VideoSynthesis.async_call/fetch/wait/cancel``, ``v2/resources/videos.py``,
``v2/resources/_jobs.py``, ``v2/errors.py``).

    POST {base}/services/aigc/video-generation/video-synthesis   X-DashScope-Async: enable
         {model, input: {prompt, negative_prompt?, img_url? | media?}, parameters: {...}}
         -> {output: {task_id, task_status: PENDING}, request_id}
    GET  {base}/tasks/{task_id}
         -> {output: {task_id, task_status, video_url?, code?, message?, ...}, usage}
    POST {base}/tasks/{task_id}/cancel        only a PENDING task can be cancelled

``{base}`` is ``https://dashscope-intl.aliyuncs.com/api/v1`` (Singapore, the default
here), ``https://dashscope-us.aliyuncs.com/api/v1`` (Virginia) or
``https://dashscope.aliyuncs.com/api/v1`` (Beijing, the SDK's default); a key works only
in its own region. ``Authorization: Bearer <DASHSCOPE_API_KEY>``; a create without
``X-DashScope-Async: enable`` is refused (the service has no synchronous video calls).
Errors are ``{"request_id", "code", "message"}`` with an HTTP status: ``InvalidApiKey``
(401), ``AccessDenied*`` (403), ``Throttling*`` (429), ``InvalidParameter`` and
``DataInspectionFailed`` (400), ``InternalError`` (500).

- ``upstream_id`` is DashScope's ``task_id``; nothing else is kept.
- Two request forms, told apart by the model name (``WIRE_FORMS``, from the SDK's
  ``MEDIA_MODEL_PREFIXES``): wan2.5/2.6 take the first frame as ``input.img_url`` and
  the frame as ``parameters.size`` ("1280*720", text-to-video) or
  ``parameters.resolution`` ("720P", image-to-video, whose frame follows the image);
  wan2.7 takes images as ``input.media`` ``[{type: first_frame | last_frame |
  reference_image, url}]`` and the frame as ``parameters.resolution`` plus
  ``parameters.ratio`` (without a first frame).
- Text-to-video, image-to-video and reference-to-video are separate models
  (``wan2.6-t2v``, ``wan2.6-i2v``, ``wan2.7-r2v``): a catalogue card lists each as a
  deployment and routing picks the one that takes the request. Reference images go to
  wan2.7-r2v as ``reference_image`` media items, in the client's order.
- ``img_url`` is sent as a ``data:`` URI (the API reference: "URL or Base64"); ``media``
  URLs must be public HTTP(S) URLs, so wan2.7 images need VIDGATE_PUBLIC_BASE_URL.
- ``task_status``: PENDING | RUNNING | SUSPENDED | SUCCEEDED | FAILED | CANCELED |
  UNKNOWN. UNKNOWN is what the service answers (HTTP 200) for a task id it does not know:
  ids are kept 24 hours, and a key of another region or workspace sees none.
- ``video_url`` is temporary (about 24 h). A failed task carries ``output.code`` and
  ``output.message``; ``DataInspectionFailed`` is a content refusal.
- No idempotency key exists, so a submit re-run after a crash may leave a second task
  upstream; no progress is reported; no callback.

UNVERIFIED (not in the SDK, and seen only in resellers' and mirrored docs): the size
table per resolution and ratio; that 2.7 takes ``resolution`` + ``ratio`` and not
``size``; durations (2.5: 5/10, 2.6: 5/10/15, 2.7: 2-15, where section 11 says
5/10/15); that ``img_url`` takes a ``data:`` URI; that wan2.7-r2v takes 1-5
reference images (the SDK names the media type, not the count) and ``ratio``; the
24 fps output; limits on images (360-2000 px for 2.5/2.6, 240-8000 px for 2.7) and
prompts (negative prompt 500 characters); the status and code of a refused cancel;
whether a later read re-signs ``video_url`` (treated as not: an expired URL is read
again once, then ``result_expired``).

Deployment options (all optional): ``prompt_extend``, ``watermark``, ``audio``
(booleans), ``shot_type`` (``single`` | ``multi``, wan2.6), sent as given in
``parameters``; ``workspace``, sent as ``X-DashScope-WorkSpace``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits
from vidgate.providers.inputs import image_data_url, image_public_url
from vidgate.providers.result_urls import ResultUrls

NAME = "dashscope"
DEFAULT_BASE_URL = "https://dashscope-intl.aliyuncs.com/api/v1"
_CREATE = "/services/aigc/video-generation/video-synthesis"
# Tasks take one to five minutes (Model Studio's guide); the engine backs off after.
FIRST_POLL_S = 5.0
MAX_SEED = 2_147_483_647
MAX_NEGATIVE_PROMPT_CHARS = 500


@dataclass(frozen=True, slots=True)
class WireForm:
    """How one family of Wan models takes its inputs."""

    # Images as input.media [{type, url}] (public URLs) instead of input.img_url.
    media: bool
    # Text-to-video frame as parameters.size "W*H" instead of resolution + ratio.
    size: bool


# First match wins (the SDK routes wan2.7-i2v, dated variants too, by prefix).
WIRE_FORMS: tuple[tuple[str, WireForm], ...] = (
    ("wan2.7-*", WireForm(media=True, size=False)),
    ("*", WireForm(media=False, size=True)),
)

# Wan's own frame sizes, "W*H", per resolution and aspect ratio (UNVERIFIED table;
# 480P is wan2.5's only).
SIZES: dict[str, dict[str, str]] = {
    "480p": {"16:9": "832*480", "9:16": "480*832", "1:1": "624*624"},
    "720p": {
        "16:9": "1280*720",
        "9:16": "720*1280",
        "1:1": "960*960",
        "4:3": "1088*832",
        "3:4": "832*1088",
    },
    "1080p": {
        "16:9": "1920*1080",
        "9:16": "1080*1920",
        "1:1": "1440*1440",
        "4:3": "1632*1248",
        "3:4": "1248*1632",
    },
}

_STATES: dict[str, base.UpstreamState] = {
    "PENDING": "queued",
    "SUSPENDED": "queued",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "cancelled",
}
# Content moderation of the input or the output (v2/errors.py: DataInspectionFailed);
# IPInfringementSuspect, a suspected rights infringement, is UNVERIFIED.
_CONTENT = {"DataInspectionFailed", "IPInfringementSuspect"}
# A failed task's ``output.code`` (the API's error codes; codes the table does not know
# are read from their words, providers/failures.py). ``InternalError`` covers its
# ``InternalError.*`` variants (``.Timeout``, ``.Algo``: UNVERIFIED suffixes).
FAILURES: Mapping[str, failures.Failure] = {
    **{code: failures.REFUSED for code in _CONTENT},
    "InternalError": failures.TRANSIENT,
    "InternalError.Timeout": failures.TIMED_OUT,
    "InvalidParameter": failures.INVALID,
}
# Codes that mean the account, not the request: the deployment is unusable as it is.
_ACCOUNT = {"InvalidApiKey", "Arrearage", "AccessDenied.Unpurchased"}
_CODE_SUFFIX = re.compile(r"\(([A-Za-z][\w.]*)\)$")
# A task id of the usual shape that no task has.
_PROBE_TASK = "00000000-0000-0000-0000-000000000000"


class Options(BaseModel):
    """A dashscope deployment's ``options``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    prompt_extend: bool | None = None
    watermark: bool | None = None
    audio: bool | None = None
    shot_type: Literal["single", "multi"] | None = None
    workspace: str | None = None

    def parameters(self) -> dict[str, Any]:
        """What goes into the create's ``parameters`` as given."""
        return self.model_dump(exclude_none=True, exclude={"workspace"})


# --- pure mapping ------------------------------------------------------------------


def wire_form(model: str) -> WireForm:
    return next(form for pattern, form in WIRE_FORMS if fnmatchcase(model, pattern))


def resolution_name(resolution: str) -> str:
    """vidgate's "720p" as DashScope's "720P"."""
    return resolution.upper()


def build_body(
    spec: JobSpec,
    model: str,
    options: Options,
    *,
    image: str | None = None,
    last_frame: str | None = None,
    references: Sequence[str] = (),
) -> dict[str, Any]:
    """The create body; ``image``/``last_frame`` are a ``data:`` URI (img_url) or a public
    URL (media), as the model's form wants; ``references`` are public URLs (media)."""
    form = wire_form(model)
    inputs: dict[str, Any] = {"prompt": spec.prompt}
    if spec.negative_prompt is not None:
        inputs["negative_prompt"] = spec.negative_prompt
    parameters: dict[str, Any] = {}
    if form.media:
        media = [(image, "first_frame"), (last_frame, "last_frame")]
        media += [(ref, "reference_image") for ref in references]
        items = [{"type": kind, "url": url} for url, kind in media if url is not None]
        if items:
            inputs["media"] = items
        parameters["resolution"] = resolution_name(spec.resolution)
        if image is None:
            parameters["ratio"] = spec.aspect_ratio
    elif image is not None:
        inputs["img_url"] = image
        parameters["resolution"] = resolution_name(spec.resolution)
    else:
        parameters["size"] = SIZES[spec.resolution][spec.aspect_ratio]
    parameters["duration"] = spec.seconds
    if spec.seed is not None:
        parameters["seed"] = spec.seed
    parameters.update(options.parameters())
    return {"model": model, "input": inputs, "parameters": parameters}


def parse_error(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` of DashScope's ``{"request_id", "code", "message"}``."""
    if not isinstance(body, Mapping):
        return None, None
    code, message = body.get("code"), body.get("message")
    return (str(code) if code else None, str(message) if message else None)


def error_message(response: httpx.Response) -> str | None:
    try:
        code, message = parse_error(response.json())
    except ValueError:
        return response.text.strip()[:500] or None
    if message and code:
        return f"{message} ({code})"
    return message or code


def refine(error: base.ProviderError) -> base.ProviderError:
    """What the HTTP status alone does not say, from the code ``error_message`` put at
    the end: an account that cannot be used, or a content refusal."""
    if error.retryable:
        return error
    match = _CODE_SUFFIX.search(error.message)
    code = match[1] if match else None
    if code in _ACCOUNT and not error.unhealthy:
        return base.ProviderError(
            "upstream_auth_failed", error.message, retryable=False, unhealthy=True
        )
    if code in _CONTENT:
        return base.ProviderError(failures.CONTENT_REFUSED, error.message, retryable=False)
    return error


@dataclass(frozen=True, slots=True)
class Task:
    status: base.UpstreamStatus
    video_url: str | None


def parse_task(body: Any) -> Task:
    output = body.get("output") if isinstance(body, Mapping) else None
    if not isinstance(output, Mapping):
        raise _bad_response("a task answer without output")
    raw = str(output.get("task_status", ""))
    if raw == "UNKNOWN":
        return Task(
            base.UpstreamStatus(
                "failed",
                error_code="upstream_task_expired",
                error_message=(
                    f"{NAME}: the task is UNKNOWN upstream (task ids are kept 24 hours, "
                    "and only for the key and region that made them)"
                ),
            ),
            None,
        )
    state = _STATES.get(raw)
    if state is None:
        raise _bad_response(f"unknown task_status {raw!r}")
    if state == "failed":
        code, message = parse_error(output)
        return Task(
            failures.failed(
                failures.lookup(FAILURES, code, message, prefixes=True), NAME, message, code
            ),
            None,
        )
    if state != "succeeded":
        return Task(base.UpstreamStatus(state), None)
    url = output.get("video_url")
    return Task(
        base.UpstreamStatus("succeeded", progress=100),
        url if isinstance(url, str) and url else None,
    )


def _bad_response(what: str) -> base.ProviderError:
    return base.ProviderError("upstream_bad_response", f"{NAME}: {what}", retryable=True)


def check_spec(spec: JobSpec, model: str, deps: base.ProviderDeps) -> None:
    """The catalogue's data for ``model``, then what it cannot say: Wan's size table,
    its seed range and negative-prompt length, and public URLs for wan2.7's media."""
    who = f"{NAME} ({model})"
    deps.capabilities.check(spec, NAME, model, who)
    form = wire_form(model)
    sizes = SIZES.get(spec.resolution, {})
    if form.size and spec.image is None and spec.aspect_ratio not in sizes:
        raise InvalidParameter(
            f"{who}: aspect_ratio {spec.aspect_ratio} is not made at {spec.resolution}; "
            f"allowed: {', '.join(sizes) or 'none'}",
            param="aspect_ratio",
        )
    if spec.seed is not None and spec.seed > MAX_SEED:
        raise InvalidParameter(f"{who}: seed {spec.seed}; allowed: 0-{MAX_SEED}", param="seed")
    negative = spec.negative_prompt
    if negative is not None and len(negative) > MAX_NEGATIVE_PROMPT_CHARS:
        raise InvalidParameter(
            f"{who}: negative_prompt is {len(negative)} characters, over the limit; "
            f"allowed: at most {MAX_NEGATIVE_PROMPT_CHARS} characters",
            param="negative_prompt",
        )
    if form.media and deps.input_url is None:
        named = [("image", spec.image), ("last_frame", spec.last_frame)]
        named += [("reference_images", ref) for ref in spec.reference_images]
        for param, image in named:
            if image is not None:
                raise InvalidParameter(
                    f"{who} takes images only as public URLs: set VIDGATE_PUBLIC_BASE_URL"
                    " to an address DashScope can reach",
                    param=param,
                )


# Every path is under /api/v1 on the regional host.
ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "/api/v1", DEFAULT_BASE_URL)


# --- the adapter -------------------------------------------------------------------

_URL_GONE = (
    f"{NAME}: the result URL has expired (video_url lasts about 24 hours) and the task "
    "gives no new one"
)


class DashScopeProvider:
    name = NAME

    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self._options, credentials = adapter_config.read_config(config, ADAPTER)
        api_key = credentials.api_key.get_secret_value()
        headers = {"Authorization": f"Bearer {api_key}"}
        if self._options.workspace:
            headers["X-DashScope-WorkSpace"] = self._options.workspace
        self._deps = deps
        self._client = UpstreamClient(
            provider=NAME,
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers=headers,
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._client, gone=_URL_GONE)

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(spec, upstream_model or spec.model, self._deps)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self._client.json(method, path, **kwargs)
        except base.ProviderError as exc:
            raise refine(exc) from exc

    async def _image(self, model: str, image: ImageRef | None) -> str | None:
        if image is None:
            return None
        if wire_form(model).media:
            return image_public_url(self._deps, image, provider=NAME)
        return await image_data_url(self._deps, image)

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """DashScope has no idempotency key; ``idempotency_key`` is unused."""
        model = upstream_model or spec.model
        body = build_body(
            spec,
            model,
            self._options,
            image=await self._image(model, spec.image),
            last_frame=await self._image(model, spec.last_frame),
            references=[
                image_public_url(self._deps, r, provider=NAME) for r in spec.reference_images
            ],
        )
        created = await self._json(
            "POST", _CREATE, json=body, headers={"X-DashScope-Async": "enable"}
        )
        output = created.get("output") if isinstance(created, Mapping) else None
        task_id = output.get("task_id") if isinstance(output, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            raise _bad_response("the create answer has no output.task_id")
        return base.SubmitResult(task_id, poll_after_s=FIRST_POLL_S)

    async def _read(self, task_id: str) -> Task:
        return parse_task(await self._json("GET", f"/tasks/{task_id}"))

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        read = await self._read(task.id)
        if read.status.state == "succeeded" and read.video_url:
            self._urls.remember(task.id, [read.video_url])
        return read.status

    async def _video_urls(self, task_id: str) -> list[str]:
        task = await self._read(task_id)
        if task.status.state != "succeeded":
            if task.status.error_code == "upstream_task_expired":
                # The task is gone, and its URL with it.
                raise base.ProviderError("result_expired", _URL_GONE, retryable=False)
            raise base.ProviderError(
                "result_missing",
                f"{NAME}: task {task_id} is {task.status.state}, not succeeded",
                retryable=False,
            )
        if task.video_url is None:
            raise _bad_response(f"task {task_id} succeeded without output.video_url")
        return [task.video_url]

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        """Download ``output.video_url`` (the one from the last status read first)."""
        return await self._urls.download(
            task.id, dest_dir, lambda: self._video_urls(task.id), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """Only a PENDING task can be cancelled. A task that already ended, or is
        UNKNOWN, is fine; a running one raises ``cancel_refused`` (the engine logs it)."""
        self._urls.forget(task.id)
        try:
            await self._json("POST", f"/tasks/{task.id}/cancel")
        except base.ProviderError as exc:
            if exc.code != "upstream_rejected":
                raise
            read = await self._read(task.id)
            if read.status.state in ("succeeded", "failed", "cancelled"):
                return
            raise base.ProviderError(
                "cancel_refused",
                f"{NAME}: the task is {read.status.state} and cannot be cancelled ({exc.message})",
                retryable=False,
            ) from exc

    async def probe(self) -> None:
        """One cheap authenticated call: a status read of a task id nobody has, which
        DashScope answers (HTTP 200) as UNKNOWN; a wrong key is 401, a wrong base URL
        something that is not a task."""
        parse_task(await self._json("GET", f"/tasks/{_PROBE_TASK}"))

    async def aclose(self) -> None:
        await self._client.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> DashScopeProvider:
    return DashScopeProvider(config, deps)
