"""MiniMax Hailuo video API (reference section 8).

- auth: ``Authorization: Bearer <api_key>``;
- create: ``POST /v1/video_generation`` ``{model, prompt, duration (int 6|10),
  resolution (768P|1080P), first_frame_image (a data URL)}`` -> ``{task_id, base_resp}``;
- a last frame: ``last_frame_image``, a data URL under the first frame's rules. The
  reference lists first+last frame for ``MiniMax-Hailuo-02`` only, so ``validate``
  refuses it on every other model;
- reference images: ``subject_reference`` belongs to S2V-01, which this adapter refuses
  (vidgate has no subject input), so ``validate`` refuses reference images;
- poll ``GET /v1/query/video_generation?task_id=``: ``Preparing|Queueing|Processing|
  Success|Fail``, with ``file_id`` on success;
- result: ``GET /v1/files/retrieve?file_id=`` -> ``file.download_url``, valid 9 hours;
  asking again gives a fresh URL, so an expired one is recoverable;
- business errors ride on HTTP 200 with ``base_resp.status_code != 0`` and are
  translated here; there is no cancel endpoint and no idempotency key.

With ``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) the create carries
``callback_url``. MiniMax validates it first (``{"challenge": X}``, echoed by the
callback route), then POSTs the query-shaped body on each status change, and vidgate
reads the status at once (a hint only; the body is not used).

The upstream id is MiniMax's task id as is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.providers.base import (
    ProgressCallback,
    ProviderDeps,
    ProviderError,
    SubmitResult,
    UpstreamState,
    UpstreamStatus,
    UpstreamTask,
)
from vidgate.providers.http import UpstreamClient, UpstreamLimits, retry_after_s
from vidgate.providers.inputs import image_data_url
from vidgate.providers.result_urls import ResultUrls

DEFAULT_BASE_URL = "https://api.minimax.io"
DEFAULT_MODEL = "MiniMax-Hailuo-02"
RESOLUTIONS = {"720p": "768P", "1080p": "1080P"}
DURATIONS = (6, 10)
MAX_PROMPT_CHARS = 2000
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
IMAGE_MIN_SHORT_SIDE = 300
# UNVERIFIED: text-to-video output is landscape (768P is 1366x768); there is no
# aspect-ratio field, and image-to-video follows the first frame.
TEXT_ASPECT_RATIOS = ("16:9",)

_SUBMIT_POLL_S = 2.0

_STATES: dict[str, UpstreamState] = {
    "Preparing": "queued",
    "Queueing": "queued",
    "Processing": "running",
    "Success": "succeeded",
    "Fail": "failed",
}
_RETRY_LATER = {1000, 1001, 1024}  # unknown error, request timeout, internal error
# 1004 not authorized / key mismatch; 2049 "invalid api key" [3P: GitHub issues];
# 2038 real-name verification required (UNVERIFIED).
_AUTH = {1004, 2049, 2038}
_CONTENT = {1026, 1027}  # input / output content sensitive (UNVERIFIED)
# first_frame_image + last_frame_image: listed for this model only (reference section 8).
LAST_FRAME_MODELS = ("MiniMax-Hailuo-02",)


# --- request mapping --------------------------------------------------------------


def _image_required(model: str) -> bool:
    return model.startswith("I2V-") or model.endswith("-Fast")


def _fixed_short(model: str) -> bool:
    """The 01 models are fixed at 6 s / 720P (768P)."""
    return model.startswith(("T2V-01", "I2V-01"))


def check_spec(spec: JobSpec, model: str) -> None:
    """What MiniMax cannot do, as InvalidParameter (no I/O)."""

    def refuse(message: str, param: str) -> InvalidParameter:
        return InvalidParameter(f"MiniMax: {message}", param=param)

    if spec.n != 1:
        raise refuse(f"makes one video per task; got n {spec.n}; allowed n: 1", "n")
    if spec.kind != "generate":
        raise refuse(f"cannot {spec.kind} a video; allowed kinds: generate", "kind")
    if model.startswith("S2V-"):
        raise refuse(f"{model} needs a subject reference, which vidgate does not send", "model")
    if len(spec.prompt) > MAX_PROMPT_CHARS:
        raise refuse(f"prompt is limited to {MAX_PROMPT_CHARS} characters", "prompt")
    if spec.negative_prompt:
        raise refuse("takes no negative_prompt; leave it out", "negative_prompt")
    if spec.reference_images:
        raise refuse(
            f"{model} takes no reference images (subject_reference is for S2V-01 alone,"
            " which vidgate does not drive); allowed: none",
            "reference_images",
        )
    if spec.last_frame is not None:
        if model not in LAST_FRAME_MODELS:
            raise refuse(
                f"{model} takes no last frame; models that do: {', '.join(LAST_FRAME_MODELS)}",
                "last_frame",
            )
        if spec.image is None:
            raise refuse(
                "a last frame needs a first frame; allowed: image with last_frame", "last_frame"
            )
    allowed = (6,) if _fixed_short(model) else DURATIONS
    if spec.seconds not in allowed:
        raise refuse(
            f"{model} takes seconds {', '.join(map(str, allowed))}; got {spec.seconds}",
            "seconds",
        )
    resolution = RESOLUTIONS.get(spec.resolution)
    if resolution is None or (resolution != "768P" and _fixed_short(model)):
        offered = "720p (768P)" if _fixed_short(model) else "720p (768P), 1080p (1080P)"
        raise refuse(
            f"resolution {spec.resolution} is not offered by {model}; allowed: {offered}",
            "resolution",
        )
    if resolution == "1080P" and spec.seconds != 6:
        raise refuse("1080p is offered only for 6 s videos; allowed seconds at 1080p: 6", "seconds")
    image = spec.image
    if image is None:
        if _image_required(model):
            raise refuse(f"{model} makes videos from a first frame only; pass an image", "image")
        if spec.aspect_ratio not in TEXT_ASPECT_RATIOS:
            raise refuse(
                f"text-to-video is landscape only; got aspect_ratio {spec.aspect_ratio};"
                f" allowed: {', '.join(TEXT_ASPECT_RATIOS)} (or pass a first frame)",
                "aspect_ratio",
            )
        return
    if model.startswith("T2V-"):
        raise refuse(f"{model} is text-to-video only; leave out the image", "image")
    _check_image(image, "image", refuse)
    if spec.last_frame is not None:
        _check_image(spec.last_frame, "last_frame", refuse)


def _check_image(
    image: ImageRef, param: str, refuse: Callable[[str, str], InvalidParameter]
) -> None:
    """First- and last-frame limits from the fl2v page (reference section 8)."""
    what = "the image" if param == "image" else "the last frame"
    if image.content_type not in IMAGE_TYPES:
        raise refuse(f"{what} must be JPEG, PNG or WebP; got {image.content_type}", param)
    if min(image.width, image.height) <= IMAGE_MIN_SHORT_SIDE:
        raise refuse(
            f"{what}'s short side must exceed {IMAGE_MIN_SHORT_SIDE} px; got"
            f" {image.width}x{image.height}",
            param,
        )
    if not 2 / 5 <= image.width / image.height <= 5 / 2:
        raise refuse(
            f"{what}'s aspect ratio must be between 2:5 and 5:2; got {image.width}x{image.height}",
            param,
        )


def create_body(
    spec: JobSpec, model: str, *, first_frame: str | None, last_frame: str | None = None
) -> dict[str, Any]:
    """MiniMax has no seed, fps, aspect-ratio or negative-prompt field; the frames are
    data URLs."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": spec.prompt,
        "duration": spec.seconds,  # an integer
        "resolution": RESOLUTIONS[spec.resolution],
    }
    if first_frame is not None:
        body["first_frame_image"] = first_frame
    if last_frame is not None:
        body["last_frame_image"] = last_frame
    return body


# --- response mapping -------------------------------------------------------------


def base_resp(body: Any) -> tuple[int, str]:
    resp = body.get("base_resp") if isinstance(body, dict) else None
    if not isinstance(resp, dict):
        return 0, ""
    code = resp.get("status_code")
    return (code if isinstance(code, int) else 0), str(resp.get("status_msg") or "")


def error_for(
    code: int, message: str, *, provider: str, retry_after: float | None = None
) -> ProviderError:
    """A non-zero ``base_resp.status_code`` as a ProviderError (errorcode.md)."""
    text = f"{provider}: {message or 'error'} (status_code {code})"
    if code == 1002:
        return ProviderError(
            "upstream_rate_limited", text, retryable=True, retry_after_s=retry_after
        )
    if code in _RETRY_LATER:
        return ProviderError("upstream_error", text, retryable=True, retry_after_s=retry_after)
    if code in _AUTH:
        return ProviderError("upstream_auth_failed", text, retryable=False, unhealthy=True)
    if code == 1008:
        # Insufficient balance: waiting will not help, and other deployments may serve.
        return ProviderError("upstream_insufficient_balance", text, retryable=False, unhealthy=True)
    if code in _CONTENT:
        return ProviderError("content_policy_violation", text, retryable=False)
    # 2013 invalid parameters, and codes we do not know.
    return ProviderError("upstream_rejected", text, retryable=False)


def error_message(response: httpx.Response) -> str | None:
    """For non-200 answers: ``base_resp`` when there is one."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or None
    code, message = base_resp(body)
    if code:
        return f"{message} (status_code {code})"
    return None


def parse_status(
    body: dict[str, Any], *, provider: str, retry_after: float | None = None
) -> UpstreamStatus:
    """A query answer as UpstreamStatus. A non-zero ``base_resp`` without a task status
    is the query failing (raised); with ``Fail`` it is why the task failed."""
    code, message = base_resp(body)
    state = _STATES.get(str(body.get("status")))
    if state is None:
        if code in _CONTENT:
            error = error_for(code, message, provider=provider)
            return UpstreamStatus("failed", error_code=error.code, error_message=error.message)
        if code:
            raise error_for(code, message, provider=provider, retry_after=retry_after)
        # An undocumented status: keep polling.
        return UpstreamStatus("running")
    if state == "failed":
        # UNVERIFIED: where the reason of a failed task is; base_resp, else error_message.
        reason = message if code else str(body.get("error_message") or "the task failed")
        error_code = "content_policy_violation" if code in _CONTENT else "upstream_failed"
        suffix = f" (status_code {code})" if code else ""
        return UpstreamStatus(
            "failed", error_code=error_code, error_message=f"{provider}: {reason}{suffix}"
        )
    if state == "succeeded":
        return UpstreamStatus("succeeded", progress=100)
    # No progress field and no poll hint: the engine backs off by itself.
    return UpstreamStatus(state)


def download_url(body: dict[str, Any]) -> str | None:
    file = body.get("file")
    url = file.get("download_url") if isinstance(file, dict) else None
    return str(url) if url else None


# --- the adapter ------------------------------------------------------------------


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = "{}: the download URL has expired and MiniMax gives no new one"


class MiniMaxProvider:
    def __init__(self, config: DeploymentConfig, deps: ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        self._model = str(config.options.get("model") or DEFAULT_MODEL)
        self._http = UpstreamClient(
            provider=config.name,
            base_url=(config.base_url or DEFAULT_BASE_URL).rstrip("/"),
            headers={"Authorization": f"Bearer {config.secret('api_key')}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._http, gone=_URL_GONE.format(self.name))

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(spec, upstream_model or self._model)

    async def _send(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[dict[str, Any], float | None]:
        """The JSON body and any Retry-After; HTTP errors are already translated."""
        response = await self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderError(
                "upstream_bad_response",
                f"{self.name}: a response that is not an object",
                retryable=True,
            )
        return body, retry_after_s(response)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body, retry_after = await self._send(method, path, **kwargs)
        code, message = base_resp(body)
        if code:
            raise error_for(code, message, provider=self.name, retry_after=retry_after)
        return body

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        """MiniMax takes no idempotency key: a submit re-run after a crash makes a second
        task (the first is billed but never fetched)."""
        first_frame = await image_data_url(self._deps, spec.image) if spec.image else None
        last_frame = await image_data_url(self._deps, spec.last_frame) if spec.last_frame else None
        body = create_body(
            spec, upstream_model or self._model, first_frame=first_frame, last_frame=last_frame
        )
        if self._deps.callback_url is not None:
            body["callback_url"] = self._deps.callback_url(idempotency_key)
        answer = await self._call("POST", "/v1/video_generation", json=body)
        task_id = answer.get("task_id")
        if not task_id:
            raise ProviderError(
                "upstream_bad_response",
                f"{self.name}: create returned no task_id",
                retryable=False,
            )
        return SubmitResult(str(task_id), poll_after_s=_SUBMIT_POLL_S)

    async def _query(self, task_id: str) -> tuple[UpstreamStatus, str | None]:
        body, retry_after = await self._send(
            "GET", "/v1/query/video_generation", params={"task_id": task_id}
        )
        status = parse_status(body, provider=self.name, retry_after=retry_after)
        file_id = body.get("file_id")
        return status, (str(file_id) if file_id else None)

    async def _retrieve(self, file_id: str) -> str:
        body = await self._call("GET", "/v1/files/retrieve", params={"file_id": file_id})
        url = download_url(body)
        if url is None:
            raise ProviderError(
                "upstream_bad_response",
                f"{self.name}: the file has no download_url",
                retryable=True,
            )
        return url

    async def status(self, task: UpstreamTask) -> UpstreamStatus:
        status, file_id = await self._query(task.id)
        if status.state == "succeeded" and file_id:
            # Ask for the URL now so fetch() can start downloading at once; if this
            # fails, fetch() asks again.
            with contextlib.suppress(ProviderError):
                self._urls.remember(task.id, [await self._retrieve(file_id)])
        return status

    async def _file_urls(self, task_id: str) -> list[str]:
        status, file_id = await self._query(task_id)
        if status.state != "succeeded" or not file_id:
            raise ProviderError(
                "result_unavailable",
                f"{self.name}: the task is {status.state}, with no file to download",
                retryable=False,
            )
        return [await self._retrieve(file_id)]

    async def fetch(
        self, task: UpstreamTask, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        # download_url lives 9 hours; files/retrieve hands out a fresh one.
        return await self._urls.download(
            task.id, dest_dir, lambda: self._file_urls(task.id), progress
        )

    async def cancel(self, task: UpstreamTask) -> None:
        """A no-op: MiniMax has no cancel endpoint for video tasks (reference section 8,
        UNVERIFIED)."""
        self._urls.forget(task.id)

    async def aclose(self) -> None:
        await self._http.aclose()


def create(config: DeploymentConfig, deps: ProviderDeps) -> MiniMaxProvider:
    return MiniMaxProvider(config, deps)
