"""ByteDance Seedance through BytePlus ModelArk (reference section 9).

    POST   /contents/generations/tasks       {model, content: [...], resolution, ratio, ...}
    GET    /contents/generations/tasks/{id}  {status, error, content: {video_url}, usage}
    DELETE /contents/generations/tasks/{id}  queued -> cancelled; finished -> deleted

Base URL ``https://ark.ap-southeast.bytepluses.com/api/v3``,
``Authorization: Bearer <ARK key>``, errors ``{"error": {"code", "message", "param",
"type"}}``.

- ``upstream_id`` is the task id (``cgt-...``); nothing else is needed to poll.
- One video per task, at a fixed 24 fps: ``n > 1`` and other frame rates are refused.
- The first frame goes in ``content`` as an ``image_url`` with role ``first_frame``,
  as a ``data:`` URI (section 10), so no public URL of ours is needed. A last frame is
  another ``image_url`` with role ``last_frame``, reference images one each with role
  ``reference_image``, in the client's order.
- Reference images (section 9): 1-4 on lite-i2v, up to 9 on Seedance 2.0, none on the
  pro models. They are never mixed with a first or last frame (reference-to-video is
  its own mode; that the API refuses the mix is UNVERIFIED, so vidgate does not try).
- Last frames: section 9 names the ``last_frame`` role but not which models take it.
  ``MODELS`` allows it on 1.0 pro, 1.0 lite-i2v, 1.5 pro and 2.0 and refuses it on
  1.0 pro-fast and lite-t2v (all UNVERIFIED, from ModelArk's model list as remembered);
  a model id vidgate does not know gets neither. An endpoint id (``ep-``) hides its
  model, so its inputs go up as asked and the upstream decides.
- The API has no negative prompt and no idempotency key (none is documented), so a
  submit re-run after a crash may leave a second task upstream.
- No progress is reported. ``usage.completion_tokens`` is the billed amount; with the
  deployment option ``usd_per_million_tokens`` it becomes the job's cost.
- ``content.video_url`` is valid for 24 hours from generation (section 9); whether a
  later read signs a new one is UNVERIFIED, so an expired URL is re-read once and the
  fetch gives up with ``result_expired`` when the URL is the same.

With ``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) the create carries
``callback_url``: ModelArk POSTs the task there on status changes, and vidgate reads
the status at once (a hint only; the body is not used).

Deployment options (all optional): ``watermark``, ``camera_fixed``, ``generate_audio``,
``service_tier`` (``default`` | ``flex``), ``execution_expires_after`` (seconds),
sent as given; ``usd_per_million_tokens`` for the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers.base import (
    ProgressCallback,
    Provider,
    ProviderDeps,
    ProviderError,
    SubmitResult,
    UpstreamState,
    UpstreamStatus,
    UpstreamTask,
)
from vidgate.providers.http import UpstreamClient, UpstreamLimits
from vidgate.providers.inputs import image_data_url
from vidgate.providers.result_urls import ResultUrls

NAME = "seedance"
DEFAULT_BASE_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"
_TASKS = "/contents/generations/tasks"
# No poll hint from the API; the engine backs off on its own after the first poll.
FIRST_POLL_S = 2.0
FPS = 24
RESOLUTIONS = ("480p", "720p", "1080p")
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
# Sent to the API as given (section 9, top-level parameters).
PASSTHROUGH_OPTIONS = (
    "watermark",
    "camera_fixed",
    "generate_audio",
    "service_tier",
    "execution_expires_after",
)
_OPTIONS = {*PASSTHROUGH_OPTIONS, "usd_per_million_tokens"}
_STATES: dict[str, UpstreamState] = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


# --- pure mapping ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inputs:
    """Which ``image_url`` roles besides ``first_frame`` a model takes."""

    last_frame: bool
    max_reference_images: int


# Matched in order by a substring of the model id (Volcengine's ``doubao-`` ids too).
# Reference-image counts are section 9's; every last_frame entry is UNVERIFIED.
MODELS: tuple[tuple[str, Inputs], ...] = (
    ("seedance-2-0", Inputs(last_frame=True, max_reference_images=9)),
    ("seedance-1-0-lite-i2v", Inputs(last_frame=True, max_reference_images=4)),
    ("seedance-1-0-lite-t2v", Inputs(last_frame=False, max_reference_images=0)),
    ("seedance-1-0-pro-fast", Inputs(last_frame=False, max_reference_images=0)),
    ("seedance-1-0-pro", Inputs(last_frame=True, max_reference_images=0)),
    ("seedance-1-5-pro", Inputs(last_frame=True, max_reference_images=0)),
)
_UNKNOWN = Inputs(last_frame=False, max_reference_images=0)
# An endpoint id: the model behind it is unknown here, the upstream decides.
_ENDPOINT = Inputs(last_frame=True, max_reference_images=9)


def inputs_for(model: str) -> Inputs:
    if model.startswith("ep-"):
        return _ENDPOINT
    return next((inputs for key, inputs in MODELS if key in model), _UNKNOWN)


def _with(what: str) -> str:
    found = [key for key, inputs in MODELS if getattr(inputs, what)]
    return ", ".join(found) or "none"


def duration_range(model: str) -> tuple[int, int]:
    """Seconds a model takes: 1.x 2-12, 2.0 4-15 (section 9). An endpoint id (``ep-``)
    hides its model, so it gets the union and the upstream decides."""
    if model.startswith("ep-"):
        return 2, 15
    if "seedance-2-0" in model:
        return 4, 15
    return 2, 12


def check_spec(spec: JobSpec, model: str) -> None:
    """Raise ``InvalidParameter`` for what Seedance cannot do."""

    def refuse(what: str, allowed: str, param: str) -> InvalidParameter:
        return InvalidParameter(f"seedance ({model}): {what}; allowed: {allowed}", param=param)

    if spec.kind != "generate":
        raise refuse(f"{spec.kind} is not supported", "generate", "video")
    if spec.n != 1:
        raise refuse(f"n {spec.n} is not supported: one video per task", "1", "n")
    if spec.fps != FPS:
        raise refuse(f"fps {spec.fps} is not supported: the frame rate is fixed", "24", "fps")
    low, high = duration_range(model)
    if not low <= spec.seconds <= high:
        raise refuse(f"duration {spec.seconds} is not supported", f"{low}-{high}", "seconds")
    if spec.resolution not in RESOLUTIONS:
        raise refuse(
            f"resolution {spec.resolution} is not supported", ", ".join(RESOLUTIONS), "resolution"
        )
    if spec.aspect_ratio not in RATIOS:
        raise refuse(
            f"aspect_ratio {spec.aspect_ratio} is not supported", ", ".join(RATIOS), "aspect_ratio"
        )
    if spec.negative_prompt is not None:
        raise refuse("a negative prompt is not supported", "a prompt only", "negative_prompt")
    if spec.image is not None and "-t2v-" in model:
        raise refuse("an input image is not supported by this text-to-video model", "none", "image")
    _check_frames_and_references(spec, model, refuse)


def _check_frames_and_references(
    spec: JobSpec, model: str, refuse: Callable[[str, str, str], InvalidParameter]
) -> None:
    inputs = inputs_for(model)
    refs = len(spec.reference_images)
    if spec.last_frame is not None:
        if not inputs.last_frame:
            raise refuse(
                "a last frame is not supported by this model",
                f"a first frame only; models with a last frame: {_with('last_frame')}",
                "last_frame",
            )
        if spec.image is None:
            raise refuse("a last frame needs a first frame", "image with last_frame", "last_frame")
    if refs:
        if inputs.max_reference_images == 0:
            raise refuse(
                "reference images are not supported by this model",
                f"none; models with reference images: {_with('max_reference_images')}",
                "reference_images",
            )
        if refs > inputs.max_reference_images:
            raise refuse(
                f"{refs} reference images are too many",
                f"1-{inputs.max_reference_images}",
                "reference_images",
            )
        if spec.image is not None:
            raise refuse(
                "reference images cannot be combined with a first or last frame",
                "either reference images or a first (and last) frame",
                "reference_images",
            )
    if spec.image is None and not refs and "-i2v-" in model:
        most = inputs.max_reference_images
        raise refuse(
            "this image-to-video model needs an input image",
            f"an image, or 1-{most} reference images" if most else "an image",
            "image",
        )


def build_body(
    spec: JobSpec,
    model: str,
    image: str | None,
    options: Mapping[str, Any],
    *,
    last_frame: str | None = None,
    references: Sequence[str] = (),
) -> dict[str, Any]:
    """The create body; the images are ``data:`` URIs (``image``/``last_frame`` or None)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": spec.prompt}]
    roles = [(image, "first_frame"), (last_frame, "last_frame")]
    roles += [(ref, "reference_image") for ref in references]
    for url, role in roles:
        if url is not None:
            content.append({"type": "image_url", "image_url": {"url": url}, "role": role})
    body: dict[str, Any] = {
        "model": model,
        "content": content,
        "resolution": spec.resolution,
        "ratio": spec.aspect_ratio,
        # An integer number of seconds (section 10); fps is not a parameter (fixed 24).
        "duration": spec.seconds,
    }
    if spec.seed is not None:
        body["seed"] = spec.seed
    body.update({k: options[k] for k in PASSTHROUGH_OPTIONS if k in options})
    return body


def parse_error(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` from Ark's ``{"error": {"code", "message", ...}}``."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (str(code) if code else None, str(message) if message else None)


def error_message(response: httpx.Response) -> str | None:
    try:
        code, message = parse_error(response.json())
    except ValueError:
        return response.text.strip()[:500] or None
    if message and code:
        return f"{message} ({code})"
    return message or code


@dataclass(frozen=True, slots=True)
class Task:
    status: UpstreamStatus
    video_url: str | None


def parse_task(body: Any, usd_per_million_tokens: Decimal | None = None) -> Task:
    if not isinstance(body, Mapping):
        raise _bad_response("a task that is not a JSON object")
    raw = str(body.get("status", ""))
    if raw == "expired":
        # Not run within execution_expires_after (section 9).
        return Task(
            UpstreamStatus(
                "failed",
                error_code="upstream_task_expired",
                error_message=f"{NAME}: the task expired before it ran (execution_expires_after)",
            ),
            None,
        )
    state = _STATES.get(raw)
    if state is None:
        raise _bad_response(f"unknown task status {raw!r}")
    if state == "failed":
        code, message = parse_error(body)
        return Task(
            UpstreamStatus(
                "failed",
                error_code=code or "upstream_failed",
                error_message=f"{NAME}: {message or 'the task failed'}",
            ),
            None,
        )
    if state != "succeeded":
        return Task(UpstreamStatus(state), None)
    content = body.get("content")
    url = content.get("video_url") if isinstance(content, Mapping) else None
    cost = _cost(body.get("usage"), usd_per_million_tokens)
    return Task(
        UpstreamStatus("succeeded", progress=100, cost=cost),
        url if isinstance(url, str) and url else None,
    )


def _cost(usage: Any, usd_per_million_tokens: Decimal | None) -> Decimal | None:
    """Tokens billed x the deployment's price; only successful videos are billed."""
    if usd_per_million_tokens is None or not isinstance(usage, Mapping):
        return None
    tokens = usage.get("completion_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        return None
    return Decimal(tokens) * usd_per_million_tokens / Decimal(1_000_000)


def _bad_response(what: str) -> ProviderError:
    return ProviderError("upstream_bad_response", f"{NAME}: {what}", retryable=True)


def _price(config: DeploymentConfig) -> Decimal | None:
    raw = config.options.get("usd_per_million_tokens")
    if raw is None:
        return None
    try:
        price = Decimal(str(raw))
    except InvalidOperation:
        price = Decimal(-1)
    if not price.is_finite() or price < 0:
        raise ValueError(
            f"deployment {config.name!r}: usd_per_million_tokens must be a number >= 0"
        )
    return price


# --- the adapter -------------------------------------------------------------------


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = (
    f"{NAME}: the result URL has expired (it is valid for 24 hours) and the task gives no new one"
)


class SeedanceProvider:
    name = NAME

    def __init__(self, config: DeploymentConfig, deps: ProviderDeps) -> None:
        unknown = set(config.options) - _OPTIONS
        if unknown:
            raise ValueError(
                f"deployment {config.name!r}: unknown seedance option(s) "
                f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(_OPTIONS))}"
            )
        api_key = config.secret("api_key")
        self._deps = deps
        self._options = dict(config.options)
        self._price = _price(config)
        self._client = UpstreamClient(
            provider=NAME,
            base_url=(config.base_url or DEFAULT_BASE_URL).rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._client, gone=_URL_GONE)

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(spec, upstream_model or spec.model)

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        """ModelArk documents no idempotency key: ``idempotency_key`` (the job id) only
        names the callback URL."""
        model = upstream_model or spec.model
        _check_again(self, spec, model)
        image = await image_data_url(self._deps, spec.image) if spec.image else None
        last = await image_data_url(self._deps, spec.last_frame) if spec.last_frame else None
        refs = [await image_data_url(self._deps, ref) for ref in spec.reference_images]
        body = build_body(spec, model, image, self._options, last_frame=last, references=refs)
        if self._deps.callback_url is not None:
            body["callback_url"] = self._deps.callback_url(idempotency_key)
        created = await self._client.json("POST", _TASKS, json=body)
        task_id = created.get("id") if isinstance(created, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            raise _bad_response("the create response has no task id")
        return SubmitResult(task_id, poll_after_s=FIRST_POLL_S)

    async def _read(self, task_id: str) -> Task:
        return parse_task(await self._client.json("GET", f"{_TASKS}/{task_id}"), self._price)

    async def status(self, task: UpstreamTask) -> UpstreamStatus:
        read = await self._read(task.id)
        if read.status.state == "succeeded" and read.video_url:
            self._urls.remember(task.id, [read.video_url])
        return read.status

    async def _video_urls(self, task_id: str) -> list[str]:
        task = await self._read(task_id)
        if task.status.state != "succeeded":
            raise ProviderError(
                "result_missing",
                f"{NAME}: task {task_id} is {task.status.state}, not succeeded",
                retryable=False,
            )
        if task.video_url is None:
            raise _bad_response(f"task {task_id} succeeded without content.video_url")
        return [task.video_url]

    async def fetch(
        self, task: UpstreamTask, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        """Download ``content.video_url`` (the one from the last status read first)."""
        return await self._urls.download(
            task.id, dest_dir, lambda: self._video_urls(task.id), progress
        )

    async def cancel(self, task: UpstreamTask) -> None:
        """``DELETE`` cancels a queued task and deletes a finished one; a running task
        cannot be stopped (section 9). A task that is gone or already cancelled is
        fine; a running one raises ``cancel_refused`` (the engine logs it)."""
        self._urls.forget(task.id)
        try:
            await self._client.request("DELETE", f"{_TASKS}/{task.id}")
        except ProviderError as exc:
            if exc.code == "upstream_not_found":
                return
            if exc.code != "upstream_rejected":
                raise
            try:
                state = (await self._read(task.id)).status.state
            except ProviderError as gone:
                if gone.code == "upstream_not_found":
                    return
                raise
            if state == "cancelled":
                return
            raise ProviderError(
                "cancel_refused",
                f"{NAME}: the task is {state} and cannot be cancelled ({exc.message})",
                retryable=False,
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def _check_again(provider: Provider, spec: JobSpec, upstream_model: str | None) -> None:
    """Routing validated the spec already; a refusal here (a job routed before a config
    change) must still reach the engine as a ProviderError, which is all it handles."""
    try:
        provider.validate(spec, upstream_model)
    except InvalidParameter as exc:
        raise ProviderError("invalid_parameter", exc.message, retryable=False) from exc


def create(config: DeploymentConfig, deps: ProviderDeps) -> SeedanceProvider:
    return SeedanceProvider(config, deps)
