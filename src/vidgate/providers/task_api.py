"""A generic upstream that speaks the multi-model routers' task shape.

    POST {base}/v1/videos/generations      {model, prompt, duration, resolution, ...}
    GET  {base}/v1/videos/generations/{id} {id, status, progress, error, data: [{url}]}

with ``Authorization: Bearer <api_key>`` and OpenAI-style error bodies
``{"error": {"message", "type", "param", "code"}}``. vidgate's own
``/v1/videos/generations`` is one such upstream (docs/api.md), so one gateway can sit
in front of another.

- ``upstream_id`` is the upstream's generation id, unchanged.
- The idempotency key travels as ``Idempotency-Key``: vidgate (and routers that honour
  the header) return the same generation when a submit is re-run after a crash.
- Statuses ``queued | processing | completed | failed``; a failure whose
  ``error.code`` is ``cancelled`` is how vidgate reports a cancelled job.
- ``data[]`` has one entry per video (``n`` may be > 1). Its links are signed with an
  expiry, and every read signs them again, so an expired link is refreshed by reading
  the generation once more.
- The shape has no cancel; ``DELETE /v1/videos/{id}`` (vidgate's OpenAI-shape delete,
  which cancels the job) is tried on a best-effort basis.
- Remix and extend are not part of the shape: only ``generate`` is accepted.

Deployment settings: ``base_url`` (required; with or without a trailing ``/v1``),
``credentials.api_key``. No options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits
from vidgate.providers.inputs import image_data_url
from vidgate.providers.result_urls import ResultUrls

NAME = "task_api"
# The task shape gives no poll hint; the engine backs off on its own after this.
FIRST_POLL_S = 2.0
# Relative to the base URL with its /v1 (ADAPTER.api_prefix).
_GENERATIONS = "/videos/generations"
# Statuses of the shape, plus the spellings other routers use for the same states.
_STATES: dict[str, base.UpstreamState] = {
    "queued": "queued",
    "pending": "queued",
    "submitted": "queued",
    "processing": "running",
    "in_progress": "running",
    "running": "running",
    "completed": "succeeded",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


# --- pure mapping ------------------------------------------------------------------


def build_body(spec: JobSpec, model: str, image: str | None) -> dict[str, Any]:
    """The create body for ``spec``; ``image`` is a ``data:`` URL or None."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": spec.prompt,
        "duration": spec.seconds,
        "resolution": spec.resolution,
        "aspect_ratio": spec.aspect_ratio,
        "fps": spec.fps,
        "n": spec.n,
    }
    if spec.seed is not None:
        body["seed"] = spec.seed
    if spec.negative_prompt is not None:
        body["negative_prompt"] = spec.negative_prompt
    if image is not None:
        body["image"] = image
    return body


def parse_error(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` from ``{"error": {"code", "message"}}`` (or ``{"error": "..."}``)."""
    if not isinstance(body, Mapping):
        return None, None
    error = body.get("error")
    if isinstance(error, str):
        return None, error
    if not isinstance(error, Mapping):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        str(code) if code not in (None, "") else None,
        str(message) if message not in (None, "") else None,
    )


# A failed generation's ``error.code``: vidgate's own job codes (docs/api.md), as another
# gateway of this shape reports them; other codes are read from their words.
FAILURES: Mapping[str, failures.Failure] = {
    "upstream_content_refused": failures.REFUSED,
    "content_policy_violation": failures.REFUSED,
    "upstream_timeout": failures.TIMED_OUT,
    "internal_error": failures.TRANSIENT,
    "storage_full": failures.TRANSIENT,
    "upstream_error": failures.TRANSIENT,
    "upstream_busy": failures.TRANSIENT,
    "upstream_rate_limited": failures.TRANSIENT,
    "upstream_unreachable": failures.TRANSIENT,
    "upstream_rejected": failures.INVALID,
    "invalid_parameter": failures.INVALID,
    "invalid_request": failures.INVALID,
    "invalid_image": failures.INVALID,
    "upstream_failed": failures.FAILED,
}


def error_message(response: httpx.Response) -> str | None:
    """The upstream's message with its code, for ProviderError texts."""
    try:
        code, message = parse_error(response.json())
    except ValueError:
        return response.text.strip()[:500] or None
    if message and code:
        return f"{message} ({code})"
    return message or code


@dataclass(frozen=True, slots=True)
class Generation:
    status: base.UpstreamStatus
    # Result URLs in output order; empty until the generation has completed.
    urls: list[str]


def parse_generation(body: Any) -> Generation:
    if not isinstance(body, Mapping):
        raise _bad_response("a generation that is not a JSON object")
    raw = str(body.get("status", "")).lower()
    state = _STATES.get(raw)
    if state is None:
        raise _bad_response(f"unknown generation status {raw!r}")
    code, message = parse_error(body)
    if state == "failed" and code == "cancelled":
        # vidgate reports a cancelled job as failed with error.code "cancelled".
        state = "cancelled"
    progress = _progress(body.get("progress"))
    if state == "succeeded":
        return Generation(
            base.UpstreamStatus("succeeded", progress=100, cost=_cost(body)), _result_urls(body)
        )
    if state == "failed":
        failure = failures.lookup(FAILURES, code, message)
        return Generation(failures.failed(failure, NAME, message, code, progress=progress), [])
    return Generation(base.UpstreamStatus(state, progress=progress), [])


def _progress(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0, min(100, int(value)))


def _cost(body: Mapping[str, Any]) -> Decimal | None:
    """What the upstream billed, when it says so in USD (vidgate: ``cost``+``currency``)."""
    value = body.get("cost")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if str(body.get("currency", "")).upper() != "USD":
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def _result_urls(body: Mapping[str, Any]) -> list[str]:
    data = body.get("data")
    if not isinstance(data, list):
        return []
    entries = [e for e in data if isinstance(e, Mapping) and isinstance(e.get("url"), str)]
    # Outputs carry an index; without one, the list order is the output order.
    entries.sort(key=lambda e: e["index"] if isinstance(e.get("index"), int) else 0)
    return [str(e["url"]) for e in entries]


def _bad_response(what: str) -> base.ProviderError:
    return base.ProviderError("upstream_bad_response", f"{NAME}: {what}", retryable=True)


ADAPTER = adapter_config.AdapterSpec(adapter_config.NoOptions, adapter_config.ApiKey, "/v1")


# --- the adapter -------------------------------------------------------------------


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = f"{NAME}: the result URL has expired and the upstream gave no new one"


class TaskApiProvider:
    name = NAME

    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        if not config.base_url:
            raise ValueError(f"deployment {config.name!r}: task_api needs a base_url")
        _, credentials = adapter_config.read_config(config, ADAPTER)
        api_key = credentials.api_key.get_secret_value()
        self._deps = deps
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
        self._deps.capabilities.check(spec, "task_api", model, f"task_api ({model})")

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        image = await image_data_url(self._deps, spec.image) if spec.image else None
        body = build_body(spec, upstream_model or spec.model, image)
        created = await self._client.json(
            "POST", _GENERATIONS, json=body, headers={"Idempotency-Key": idempotency_key}
        )
        task_id = created.get("id") if isinstance(created, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            raise _bad_response("the create response has no generation id")
        return base.SubmitResult(task_id, poll_after_s=FIRST_POLL_S)

    async def _read(self, task_id: str) -> Generation:
        body = await self._client.json("GET", f"{_GENERATIONS}/{task_id}")
        return parse_generation(body)

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        generation = await self._read(task.id)
        if generation.status.state == "succeeded":
            self._urls.remember(task.id, generation.urls)
        return generation.status

    async def _fresh_urls(self, task_id: str) -> list[str]:
        generation = await self._read(task_id)
        if generation.status.state != "succeeded":
            raise base.ProviderError(
                "result_missing",
                f"{NAME}: generation {task_id} is {generation.status.state}, not completed",
                retryable=False,
            )
        if not generation.urls:
            raise _bad_response(f"generation {task_id} completed without result URLs")
        return generation.urls

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        """Download every ``data[].url``. The URLs from the last status read are used
        first; when one has expired, the generation is read again for freshly signed
        links (once)."""
        return await self._urls.download(
            task.id, dest_dir, lambda: self._fresh_urls(task.id), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """Best effort: the task shape has no cancel. A vidgate upstream cancels (and
        deletes) the job on ``DELETE /v1/videos/{id}``; any other upstream that answers
        404/405 or another refusal simply cannot cancel, which is not an error."""
        self._urls.forget(task.id)
        try:
            await self._client.request("DELETE", f"/videos/{task.id}")
        except base.ProviderError as exc:
            if exc.code in ("upstream_not_found", "upstream_rejected"):
                return
            raise

    async def probe(self) -> None:
        """A status read of a generation that does not exist: 404 once the key is taken."""
        await adapter_config.probe_missing(
            lambda: self._client.request("GET", f"{_GENERATIONS}/{adapter_config.PROBE_ID}")
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> TaskApiProvider:
    return TaskApiProvider(config, deps)
