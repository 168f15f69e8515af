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
  The catalogue's ``upstreams.seedance`` allows it on 1.0 pro, 1.0 lite-i2v, 1.5 pro and
  2.0 and refuses it on 1.0 pro-fast and lite-t2v (all UNVERIFIED, from ModelArk's model
  list as remembered); a model id vidgate does not know gets neither. An endpoint id
  (``ep-``) hides its model, so its inputs go up as asked and the upstream decides.
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits
from vidgate.providers.inputs import image_data_url
from vidgate.providers.result_urls import ResultUrls

NAME = "seedance"
DEFAULT_BASE_URL = "https://ark.ap-southeast.bytepluses.com/api/v3"
_TASKS = "/contents/generations/tasks"
# No poll hint from the API; the engine backs off on its own after the first poll.
FIRST_POLL_S = 2.0
# Sent to the API as given (section 9, top-level parameters).
PASSTHROUGH_OPTIONS = (
    "watermark",
    "camera_fixed",
    "generate_audio",
    "service_tier",
    "execution_expires_after",
)


class Options(adapter_config.AdapterSettings):
    watermark: bool | None = None
    camera_fixed: bool | None = None
    generate_audio: bool | None = None
    service_tier: Literal["default", "flex"] | None = None
    # Section 9: 3600-259200 seconds.
    execution_expires_after: int | None = Field(default=None, ge=3600, le=259200)
    # The job's cost from ``usage.completion_tokens``; none reported without it.
    usd_per_million_tokens: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)

    def passthrough(self) -> dict[str, Any]:
        """The options sent to the API, those set only."""
        return self.model_dump(include=set(PASSTHROUGH_OPTIONS), exclude_none=True)


ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "/api/v3", DEFAULT_BASE_URL)
_STATES: dict[str, base.UpstreamState] = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


# --- pure mapping ------------------------------------------------------------------


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


# A failed task's ``error.code`` (Ark's error codes; the reference has none, so these are
# UNVERIFIED). The ``*SensitiveContentDetected`` family (input or output, text, image or
# video) is read from its words as a refusal, as is any other code (providers/failures.py).
FAILURES: Mapping[str, failures.Failure] = {
    "InternalServiceError": failures.TRANSIENT,
    "ServiceUnavailable": failures.TRANSIENT,
    "ServerOverloaded": failures.TRANSIENT,
    "InvalidParameter": failures.INVALID,
}


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
    status: base.UpstreamStatus
    video_url: str | None


def parse_task(body: Any, usd_per_million_tokens: Decimal | None = None) -> Task:
    if not isinstance(body, Mapping):
        raise _bad_response("a task that is not a JSON object")
    raw = str(body.get("status", ""))
    if raw == "expired":
        # Not run within execution_expires_after (section 9).
        # The provider gave up waiting for capacity: another deployment may run it.
        return Task(
            base.UpstreamStatus(
                "failed",
                error_code="upstream_task_expired",
                error_message=f"{NAME}: the task expired before it ran (execution_expires_after)",
                transient=True,
            ),
            None,
        )
    state = _STATES.get(raw)
    if state is None:
        raise _bad_response(f"unknown task status {raw!r}")
    if state == "failed":
        code, message = parse_error(body)
        return Task(
            failures.failed(failures.lookup(FAILURES, code, message), NAME, message, code), None
        )
    if state != "succeeded":
        return Task(base.UpstreamStatus(state), None)
    content = body.get("content")
    url = content.get("video_url") if isinstance(content, Mapping) else None
    cost = _cost(body.get("usage"), usd_per_million_tokens)
    return Task(
        base.UpstreamStatus("succeeded", progress=100, cost=cost),
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


def _bad_response(what: str) -> base.ProviderError:
    return base.ProviderError("upstream_bad_response", f"{NAME}: {what}", retryable=True)


# --- the adapter -------------------------------------------------------------------


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = (
    f"{NAME}: the result URL has expired (it is valid for 24 hours) and the task gives no new one"
)


class SeedanceProvider:
    name = NAME

    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        options, credentials = adapter_config.read_config(config, ADAPTER)
        api_key = credentials.api_key.get_secret_value()
        self._deps = deps
        self._options = options.passthrough()
        self._price = options.usd_per_million_tokens
        self._client = UpstreamClient(
            provider=NAME,
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._client, gone=_URL_GONE)

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        model = upstream_model or spec.model
        self._deps.capabilities.check(spec, "seedance", model, f"seedance ({model})")

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """ModelArk documents no idempotency key: ``idempotency_key`` (the job id) only
        names the callback URL."""
        model = upstream_model or spec.model
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
        return base.SubmitResult(task_id, poll_after_s=FIRST_POLL_S)

    async def _read(self, task_id: str) -> Task:
        return parse_task(await self._client.json("GET", f"{_TASKS}/{task_id}"), self._price)

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        read = await self._read(task.id)
        if read.status.state == "succeeded" and read.video_url:
            self._urls.remember(task.id, [read.video_url])
        return read.status

    async def _video_urls(self, task_id: str) -> list[str]:
        task = await self._read(task_id)
        if task.status.state != "succeeded":
            raise base.ProviderError(
                "result_missing",
                f"{NAME}: task {task_id} is {task.status.state}, not succeeded",
                retryable=False,
            )
        if task.video_url is None:
            raise _bad_response(f"task {task_id} succeeded without content.video_url")
        return [task.video_url]

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        """Download ``content.video_url`` (the one from the last status read first)."""
        return await self._urls.download(
            task.id, dest_dir, lambda: self._video_urls(task.id), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """``DELETE`` cancels a queued task and deletes a finished one; a running task
        cannot be stopped (section 9). A task that is gone or already cancelled is
        fine; a running one raises ``cancel_refused`` (the engine logs it)."""
        self._urls.forget(task.id)
        try:
            await self._client.request("DELETE", f"{_TASKS}/{task.id}")
        except base.ProviderError as exc:
            if exc.code == "upstream_not_found":
                return
            if exc.code != "upstream_rejected":
                raise
            try:
                state = (await self._read(task.id)).status.state
            except base.ProviderError as gone:
                if gone.code == "upstream_not_found":
                    return
                raise
            if state == "cancelled":
                return
            raise base.ProviderError(
                "cancel_refused",
                f"{NAME}: the task is {state} and cannot be cancelled ({exc.message})",
                retryable=False,
            ) from exc

    async def probe(self) -> None:
        """``GET /contents/generations/tasks?page_size=1``: the task list, one item."""
        await self._client.json("GET", _TASKS, params={"page_num": "1", "page_size": "1"})

    async def aclose(self) -> None:
        await self._client.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> SeedanceProvider:
    return SeedanceProvider(config, deps)
