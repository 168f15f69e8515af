"""Replicate predictions (reference section 6).

- create: ``POST /v1/models/{owner}/{name}/predictions`` ``{input}`` for an upstream
  model written ``owner/name``, or ``POST /v1/predictions`` ``{version, input}`` for
  ``owner/name:<64-hex version>`` (or a bare version id). Never ``Prefer: wait``: the
  engine polls, and sync mode would hold a worker for up to a minute.
- poll ``GET /v1/predictions/{id}``: ``starting`` -> queued, ``processing`` -> running
  (progress from the last tqdm-style line in ``logs``, as the SDK reads it),
  ``succeeded``, ``failed`` (with ``error``), ``canceled``, and ``aborted`` (a deadline
  passed before it started; newer than SDK 1.0.7). Unknown statuses count as running.
- output: a URL string or a list of them, public (no auth). Replicate deletes API
  prediction outputs after 1 hour and cannot re-issue them, so an expired link is a
  final ``result_expired``.
- cancel: ``POST /v1/predictions/{id}/cancel``.
- no idempotency key exists: a create whose response was lost may leave a duplicate
  prediction upstream.
- ``metrics.predict_time`` is compute seconds, not money: cost stays None.

With ``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) the create carries ``webhook``
with ``webhook_events_filter: ["completed"]``: Replicate POSTs the prediction there when
it ends, and vidgate reads the status at once (a hint only: the body and its Standard
Webhooks signature are not used).

Inputs are model-defined; ``MODEL_INPUTS`` names the normalized spec's inputs for the
few video models we know, and anything else gets ``GENERIC`` (prompt, duration,
aspect_ratio, seed, negative_prompt, image). What each model accepts is the catalogue's
``upstreams.replicate``. Options: ``input`` (extra inputs sent to every
prediction, e.g. ``{"prompt_optimizer": false}``; mapped fields win), ``poll_s``.

Last frames and reference images, per model: ``kwaivgi/kling-*`` takes a last frame as
``end_image`` (a ``data:`` URI beside ``start_image``; the name and which Kling versions
and modes honour it are UNVERIFIED). ``minimax/hailuo-2.3`` has no last-frame input in
the reference's input list, and the generic mapping cannot know a model's input names,
so both refuse a last frame. No model here has a documented reference-image input, so
every mapping refuses reference images.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field, JsonValue

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits, default_error_message
from vidgate.providers.inputs import image_data_url
from vidgate.providers.model_inputs import InputNames

DEFAULT_BASE_URL = "https://api.replicate.com/v1"
# The SDK polls every 0.5 s; a video takes minutes, so 2 s costs nothing noticeable.
_POLL_S = 2.0


class Options(adapter_config.AdapterSettings):
    poll_s: float = Field(default=_POLL_S, gt=0)
    # Extra inputs sent to every model (after the mapped ones).
    input: dict[str, JsonValue] = {}


ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "/v1", DEFAULT_BASE_URL)
_VERSION = re.compile(r"[0-9a-f]{64}")
_MODEL = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# tqdm: " 45%|████▌     | 9/20 [00:03<00:04,  2.6it/s]" (the SDK's Progress.parse).
_TQDM = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
# Replicate appends a documented code to some errors, e.g. "... (E005)"; the exact form
# is UNVERIFIED (not in the reference), so it is only used when present.
_ERROR_CODE = re.compile(r"\((E\d{3,4})\)\s*$")
# A model's ``error`` is its own text (``CUDA out of memory`` is transient, read from its
# words); Replicate's platform codes end it in parentheses. Only E005 (flagged as
# sensitive) is named here; the others are read from their words (providers/failures.py).
FAILURES: dict[str, failures.Failure] = {"E005": failures.REFUSED}
_STATES: dict[str, base.UpstreamState] = {
    "starting": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "cancelled",
}


# How each known model names the common inputs; what it accepts is the catalogue's
# ``upstreams.replicate``.
# minimax/hailuo-2.3: prompt, duration 6|10, resolution 768p|1080p, first_frame_image,
# prompt_optimizer [DOC replicate.com model page, reference section 6]. 720p asks for the
# nearest it makes (768p).
HAILUO = InputNames(
    aspect_ratio=None,
    resolution="resolution",
    resolutions={"720p": "768p", "1080p": "1080p"},
    image="first_frame_image",
    seed=None,
    negative_prompt=None,
)
# kwaivgi/kling-v2.x: prompt, duration 5|10, aspect_ratio, start_image, end_image,
# negative_prompt; ``mode`` standard (720p) | pro (1080p). All UNVERIFIED (not in the
# reference).
KLING = InputNames(
    resolution="mode",
    resolutions={"720p": "standard", "1080p": "pro"},
    image="start_image",
    seed=None,
    last_frame="end_image",
)
GENERIC = InputNames()
MODEL_INPUTS: dict[str, InputNames] = {"minimax/hailuo-2.3": HAILUO}
MODEL_PREFIXES: tuple[tuple[str, InputNames], ...] = (("kwaivgi/kling-", KLING),)


@dataclass(frozen=True)
class ModelRef:
    name: str | None  # owner/name
    version: str | None


def parse_model(upstream_model: str | None) -> ModelRef:
    """``owner/name``, ``owner/name:<version>`` or a bare 64-hex version id."""
    value = (upstream_model or "").strip()
    if _VERSION.fullmatch(value):
        return ModelRef(None, value)
    name, _, version = value.partition(":")
    if not _MODEL.fullmatch(name) or (version and not _VERSION.fullmatch(version)):
        raise InvalidParameter(
            f"replicate: upstream model {value!r} is not 'owner/name' or "
            "'owner/name:<64-hex version>'",
            param="model",
        )
    return ModelRef(name, version or None)


def input_map(ref: ModelRef) -> InputNames:
    if ref.name is None:
        return GENERIC
    if ref.name in MODEL_INPUTS:
        return MODEL_INPUTS[ref.name]
    return next((m for prefix, m in MODEL_PREFIXES if ref.name.startswith(prefix)), GENERIC)


def build_input(
    spec: JobSpec,
    m: InputNames,
    image: str | None,
    extra: Mapping[str, Any] | None = None,
    last_frame: str | None = None,
) -> dict[str, Any]:
    """The prediction's ``input`` for a spec the catalogue's data allowed; the images
    are ``data:`` URIs."""
    return m.body(spec, image, extra, last_frame)


def log_progress(logs: object) -> int | None:
    """Percent from the last tqdm-style line in ``logs`` (bars redraw with ``\\r``)."""
    if not isinstance(logs, str):
        return None
    for line in reversed(re.split(r"[\r\n]+", logs)):
        match = _TQDM.match(line)
        if match:
            return max(0, min(100, int(match[1])))
    return None


def parse_status(
    body: Mapping[str, Any], poll_s: float = _POLL_S, provider: str = "replicate"
) -> base.UpstreamStatus:
    status = str(body.get("status") or "")
    if status == "aborted":
        # Never started: Replicate's deadline ran out first (another deployment may run it).
        return failures.failed(
            failures.TIMED_OUT,
            provider,
            "the prediction was aborted before it started (its deadline passed)",
            "aborted",
        )
    state = _STATES.get(status, "running")  # unknown statuses: keep polling
    if state == "failed":
        error = body.get("error")
        message = str(error) if error else "the prediction failed"
        match = _ERROR_CODE.search(message)
        code = match[1] if match else None
        return failures.failed(failures.lookup(FAILURES, code, message), provider, message, code)
    if state == "succeeded":
        return base.UpstreamStatus("succeeded", progress=100)
    if state == "cancelled":
        return base.UpstreamStatus("cancelled")
    progress = log_progress(body.get("logs")) if state == "running" else None
    return base.UpstreamStatus(state, progress=progress, poll_after_s=poll_s)


def output_urls(output: object) -> list[str]:
    """A URL string, a list of them, or (some models) ``{"video": url}``."""
    if isinstance(output, str):
        return [output] if output else []
    if isinstance(output, list):
        return [item for item in output if isinstance(item, str) and item]
    if isinstance(output, dict):
        video = output.get("video") or output.get("url")
        return [video] if isinstance(video, str) and video else []
    return []


def error_message(response: httpx.Response) -> str | None:
    """RFC 7807 ``{type, title, status, detail}``: "title: detail"."""
    try:
        body = response.json()
    except ValueError:
        return default_error_message(response)
    if isinstance(body, dict):
        title, detail = body.get("title"), body.get("detail")
        parts = [str(v).strip() for v in (title, detail) if isinstance(v, str) and v.strip()]
        if parts:
            return ": ".join(parts)
    return default_error_message(response)


class ReplicateProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._poll_s = options.poll_s
        self._extra = dict(options.input)
        self._http = UpstreamClient(
            provider=config.name,
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers={"Authorization": f"Bearer {credentials.api_key.get_secret_value()}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )

    def _who(self, ref: ModelRef) -> str:
        return f"{self.name} (Replicate {ref.name or ref.version})"

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        ref = parse_model(upstream_model)
        model = ref.name or ref.version or ""
        self._deps.capabilities.check(spec, "replicate", model, self._who(ref))

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        # Replicate has no idempotency mechanism: idempotency_key (the job id) only names
        # the webhook URL.
        ref = parse_model(upstream_model)
        mapping = input_map(ref)
        image = await image_data_url(self._deps, spec.image) if spec.image else None
        last = await image_data_url(self._deps, spec.last_frame) if spec.last_frame else None
        inputs = build_input(spec, mapping, image, self._extra, last)
        if ref.version is not None:
            path, payload = "/predictions", {"version": ref.version, "input": inputs}
        else:
            path, payload = f"/models/{ref.name}/predictions", {"input": inputs}
        if self._deps.callback_url is not None:
            payload["webhook"] = self._deps.callback_url(idempotency_key)
            payload["webhook_events_filter"] = ["completed"]
        body = await self._http.json("POST", path, json=payload)
        prediction_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id:
            raise base.ProviderError(
                "upstream_bad_response", f"{self.name}: create returned no id", retryable=False
            )
        return base.SubmitResult(prediction_id, poll_after_s=self._poll_s)

    async def _prediction(self, prediction_id: str) -> dict[str, Any]:
        body = await self._http.json("GET", f"/predictions/{quote(prediction_id, safe='')}")
        if not isinstance(body, dict):
            raise base.ProviderError(
                "upstream_bad_response", f"{self.name}: prediction is not an object", retryable=True
            )
        return body

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        return parse_status(await self._prediction(task.id), self._poll_s, self.name)

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        body = await self._prediction(task.id)
        state = parse_status(body).state
        if state != "succeeded":
            raise base.ProviderError(
                "result_not_ready",
                f"{self.name}: prediction {task.id} is {body.get('status')!r}",
                retryable=state in ("queued", "running"),
            )
        urls = output_urls(body.get("output"))
        if not urls:
            if body.get("data_removed"):
                raise _expired(self.name)
            raise base.ProviderError(
                "upstream_bad_response",
                f"{self.name}: the prediction has no output URL",
                retryable=False,
            )
        return await self._http.download_each(urls, dest_dir, progress, gone=_gone(self.name))

    async def cancel(self, task: base.UpstreamTask) -> None:
        try:
            await self._http.request("POST", f"/predictions/{quote(task.id, safe='')}/cancel")
        except base.ProviderError as error:
            if error.code != "upstream_not_found":
                raise

    async def probe(self) -> None:
        """``GET /v1/account`` (the SDK's ``accounts.current``): who the token is."""
        await self._http.json("GET", "/account")

    async def aclose(self) -> None:
        await self._http.aclose()


def _gone(who: str) -> str:
    return (
        f"{who}: Replicate deletes prediction outputs an hour after they finish; "
        "this one can no longer be downloaded"
    )


def _expired(who: str) -> base.ProviderError:
    return base.ProviderError("result_expired", _gone(who), retryable=False, expired=True)


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> ReplicateProvider:
    return ReplicateProvider(config, deps)
