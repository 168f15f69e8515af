"""Runway API, reference section 4.

- every request: ``Authorization: Bearer <secret>`` and ``X-Runway-Version: 2024-11-06``;
- create: ``POST /v1/text_to_video`` or ``POST /v1/image_to_video`` JSON with ``model``,
  ``promptText``, ``ratio`` ("1280:720" style, per model), ``duration`` (int, per
  model), ``seed``, ``negativePrompt`` (Veo only) and ``promptImage`` (a data URI of
  at most 5 MB); the answer is ``{id, estimatedCost: {credits}}``;
- a last frame: ``promptImage`` as ``[{uri, position: "first"}, {uri, position:
  "last"}]``, only for veo3.1 / veo3.1_fast (the reference names ``last`` for them alone;
  a last frame alone is not allowed). A first frame alone stays a plain string;
- reference images: the SDK has ``references[]`` on some text_to_video variants, but
  the reference names none of the models here, so ``validate`` refuses them;
- poll ``GET /v1/tasks/{id}``: PENDING / THROTTLED (queued behind the organisation's
  concurrency limit) / RUNNING (``progress`` 0-1, scale UNVERIFIED) / SUCCEEDED
  (``output[]`` URLs that expire in 24-48 h; a new read gives fresh ones) / FAILED
  (``failure``, ``failureCode``) / CANCELLED; terminal states carry ``cost.credits``.
  Runway asks for no more than one read every 5 s;
- cancel: ``DELETE /v1/tasks/{id}``.

Runway has no idempotency key and no frame-rate setting (24 fps output UNVERIFIED), so
``validate`` refuses fps other than 24, n > 1 (one video per task), remix and extend.
The upstream id is Runway's task id, unchanged.

Options: ``min_poll_s`` (default 5; tests lower it), ``usd_per_credit`` (default 0.01,
UNVERIFIED).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.providers.base import (
    ProgressCallback,
    ProviderDeps,
    ProviderError,
    SubmitResult,
    UpstreamStatus,
)
from vidgate.providers.http import UpstreamClient, default_error_message
from vidgate.providers.inputs import image_data_url

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
API_VERSION = "2024-11-06"
DEFAULT_MODEL = "gen4.5"
# Section 4 "Common image input": a data URI may be at most 5 MB. Counted on the
# encoded URI, with MB as 10^6 bytes, which is the stricter reading (UNVERIFIED).
MAX_DATA_URI_BYTES = 5_000_000
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")  # UNVERIFIED list
MAX_PROMPT_UTF16 = 1000  # documented for gen4.5; assumed for the others (UNVERIFIED)
MAX_SEED = 4_294_967_295  # UNVERIFIED: uint32 like the web app
FPS = 24
_DEFAULT_MIN_POLL_S = 5.0
_DEFAULT_USD_PER_CREDIT = "0.01"
_SIX_RATIOS = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")
_URL_CACHE_SIZE = 256


@dataclass(frozen=True)
class RunwayModel:
    text_ratios: tuple[str, ...]  # empty: no text-to-video
    image_ratios: tuple[str, ...]
    durations: tuple[int, ...]
    negative_prompt: bool = False
    # ``promptImage`` position "last" (section 4 names it for the Veo models only).
    last_frame: bool = False


# Section 4 "Key per-model parameters" (runwayml 5.24.0).
MODELS: dict[str, RunwayModel] = {
    "gen4.5": RunwayModel(("1280:720", "720:1280"), _SIX_RATIOS, tuple(range(2, 11))),
    # Image-only; durations 5|10 come from older docs (UNVERIFIED).
    "gen4_turbo": RunwayModel((), _SIX_RATIOS, (5, 10)),
    "veo3.1": RunwayModel(
        _VEO_RATIOS, _VEO_RATIOS, (4, 6, 8), negative_prompt=True, last_frame=True
    ),
    "veo3.1_fast": RunwayModel(
        _VEO_RATIOS, _VEO_RATIOS, (4, 6, 8), negative_prompt=True, last_frame=True
    ),
}
_QUEUED = {"PENDING", "THROTTLED"}
_TERMINAL = {"SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELLED": "cancelled"}


def _sizes(ratios: tuple[str, ...]) -> str:
    return ", ".join(r.replace(":", "x") for r in ratios)


def data_uri_bytes(content_type: str, image_bytes: int) -> int:
    """Length of ``data:<type>;base64,<payload>`` for an image of ``image_bytes``."""
    return len(f"data:{content_type};base64,") + 4 * ((image_bytes + 2) // 3)


def check_spec(
    spec: JobSpec,
    upstream_model: str | None,
    image_bytes: int | None,
    last_frame_bytes: int | None = None,
) -> None:
    """What Runway cannot do, as ``InvalidParameter`` (the create-time 400).
    ``image_bytes``/``last_frame_bytes``: the stored input images' sizes, when they are
    known without I/O."""
    name = upstream_model or DEFAULT_MODEL
    model = MODELS.get(name)
    if model is None:
        raise InvalidParameter(
            f"runway: model {name!r} is not supported here; allowed: {', '.join(MODELS)}",
            param="model",
        )
    if spec.kind != "generate":
        raise InvalidParameter(
            f"runway cannot {spec.kind} a video with {name}; allowed kinds: generate",
            param="kind",
        )
    if spec.n != 1:
        raise InvalidParameter("runway makes one video per task; allowed n: 1", param="n")
    ratios = model.image_ratios if spec.image is not None else model.text_ratios
    if not ratios:
        raise InvalidParameter(
            f"runway {name} needs a first-frame image (image-to-video only)", param="image"
        )
    if ratio_for(spec) not in ratios:
        mode = "image-to-video" if spec.image is not None else "text-to-video"
        raise InvalidParameter(
            f"runway {name} {mode} does not make {spec.size}; allowed sizes: {_sizes(ratios)}",
            param="size",
        )
    if spec.seconds not in model.durations:
        allowed = ", ".join(str(d) for d in model.durations)
        raise InvalidParameter(
            f"runway {name} does not take seconds {spec.seconds}; allowed: {allowed}",
            param="seconds",
        )
    if spec.fps != FPS:
        raise InvalidParameter(
            f"runway does not take a frame rate; allowed fps: {FPS}", param="fps"
        )
    if spec.seed is not None and not 0 <= spec.seed <= MAX_SEED:
        raise InvalidParameter(f"runway takes seed 0-{MAX_SEED}", param="seed")
    if spec.negative_prompt is not None and not model.negative_prompt:
        with_it = ", ".join(m for m, c in MODELS.items() if c.negative_prompt)
        raise InvalidParameter(
            f"runway {name} does not take a negative prompt; models that do: {with_it}",
            param="negative_prompt",
        )
    if len(spec.prompt.encode("utf-16-le")) // 2 > MAX_PROMPT_UTF16:
        raise InvalidParameter(
            f"runway takes a prompt of at most {MAX_PROMPT_UTF16} UTF-16 code units",
            param="prompt",
        )
    if spec.image is not None:
        _check_image(spec.image.content_type, image_bytes)
    if spec.last_frame is not None:
        if not model.last_frame:
            with_it = ", ".join(m for m, c in MODELS.items() if c.last_frame)
            raise InvalidParameter(
                f"runway {name} does not take a last frame; models that do: {with_it}",
                param="last_frame",
            )
        if spec.image is None:
            raise InvalidParameter(
                f"runway {name} takes a last frame only after a first frame; allowed: image"
                " with last_frame",
                param="last_frame",
            )
        _check_image(spec.last_frame.content_type, last_frame_bytes, "last_frame")
    if spec.reference_images:
        raise InvalidParameter(
            f"runway {name} does not take reference images here; allowed: none",
            param="reference_images",
        )


def _check_image(content_type: str, image_bytes: int | None, param: str = "image") -> None:
    if content_type not in IMAGE_TYPES:
        raise InvalidParameter(
            f"runway does not take {content_type} images; allowed: {', '.join(IMAGE_TYPES)}",
            param=param,
        )
    if image_bytes is not None and data_uri_bytes(content_type, image_bytes) > MAX_DATA_URI_BYTES:
        raise InvalidParameter(
            f"runway takes an input image of at most {MAX_DATA_URI_BYTES} bytes as a base64"
            f" data URI (about {MAX_DATA_URI_BYTES * 3 // 4 // 1000} kB before encoding)",
            param=param,
        )


def ratio_for(spec: JobSpec) -> str:
    return f"{spec.width}:{spec.height}"


def build_request(
    spec: JobSpec,
    upstream_model: str | None,
    prompt_image: str | None,
    last_frame_image: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(path, body)`` for a spec that passed ``check_spec``; the images are data URIs."""
    body: dict[str, Any] = {
        "model": upstream_model or DEFAULT_MODEL,
        "ratio": ratio_for(spec),
        "duration": spec.seconds,
    }
    if spec.prompt:
        body["promptText"] = spec.prompt
    if spec.seed is not None:
        body["seed"] = spec.seed
    if spec.negative_prompt is not None:
        body["negativePrompt"] = spec.negative_prompt
    if prompt_image is None:
        return "/v1/text_to_video", body
    if last_frame_image is None:
        body["promptImage"] = prompt_image
    else:
        body["promptImage"] = [
            {"uri": prompt_image, "position": "first"},
            {"uri": last_frame_image, "position": "last"},
        ]
    return "/v1/image_to_video", body


def _credits_usd(body: dict[str, Any], usd_per_credit: Decimal) -> Decimal | None:
    cost = body.get("cost")
    credits = cost.get("credits") if isinstance(cost, dict) else None
    if isinstance(credits, bool) or not isinstance(credits, int | float):
        return None
    return Decimal(str(credits)) * usd_per_credit


def parse_task(
    body: Any, poll_s: float = _DEFAULT_MIN_POLL_S, usd_per_credit: Decimal = Decimal("0.01")
) -> UpstreamStatus:
    """A task object as an ``UpstreamStatus``; cost is ``cost.credits`` in USD."""
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(status, str):
        raise ProviderError(
            "upstream_bad_response", "runway: a task without a status", retryable=True
        )
    if status in _QUEUED:
        return UpstreamStatus("queued", poll_after_s=poll_s)
    if status == "RUNNING":
        raw = body.get("progress")
        progress = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            # The scale is UNVERIFIED (section 4); 0-1 is assumed, a value above 1 is
            # taken to be a percentage already.
            progress = max(0, min(100, round(raw * 100 if raw <= 1 else raw)))
        return UpstreamStatus("running", progress=progress, poll_after_s=poll_s)
    if status not in _TERMINAL:
        raise ProviderError(
            "upstream_bad_response", f"runway: unknown task status {status!r}", retryable=True
        )
    cost = _credits_usd(body, usd_per_credit)
    if status == "FAILED":
        failure = body.get("failure")
        return UpstreamStatus(
            "failed",
            error_code=str(body.get("failureCode") or "task_failed"),
            error_message=f"runway: {failure or 'the task failed'}",
            cost=cost,
        )
    if status == "SUCCEEDED" and not result_urls(body):
        return UpstreamStatus(
            "failed", error_code="no_output", error_message="runway: no output", cost=cost
        )
    state = _TERMINAL[status]
    return UpstreamStatus(
        state,  # type: ignore[arg-type]
        progress=100 if state == "succeeded" else None,
        cost=cost,
    )


def result_urls(body: dict[str, Any]) -> list[str]:
    output = body.get("output")
    if not isinstance(output, list):
        return []
    return [url for url in output if isinstance(url, str) and url]


def error_message(response: httpx.Response) -> str | None:
    """Runway's ``{"error": "...", "issues": [{path, message}]}`` (issues UNVERIFIED)."""
    try:
        body = response.json()
    except ValueError:
        return default_error_message(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        issues = body.get("issues")
        if isinstance(issues, list) and issues and isinstance(issues[0], dict):
            first = issues[0]
            path = ".".join(str(p) for p in first.get("path", []))
            detail = str(first.get("message", ""))
            return f"{body['error']} ({path}: {detail})" if path else f"{body['error']} ({detail})"
        return str(body["error"])
    return default_error_message(response)


class RunwayProvider:
    def __init__(self, config: DeploymentConfig, deps: ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        self._poll_s = float(config.options.get("min_poll_s", _DEFAULT_MIN_POLL_S))
        try:
            self._usd_per_credit = Decimal(
                str(config.options.get("usd_per_credit", _DEFAULT_USD_PER_CREDIT))
            )
        except InvalidOperation as exc:
            raise ValueError(f"deployment {config.name!r}: usd_per_credit is not a number") from exc
        self._client = UpstreamClient(
            provider="runway",
            base_url=(config.base_url or DEFAULT_BASE_URL).rstrip("/"),
            headers={
                "Authorization": f"Bearer {config.secret('api_key')}",
                "X-Runway-Version": API_VERSION,
            },
            timeout_s=config.timeout_s,
            error_message=error_message,
        )
        self._urls: OrderedDict[str, list[str]] = OrderedDict()

    def _local_size(self, image: ImageRef | None) -> int | None:
        """One stat of a local blob; a remote store is checked at submit instead."""
        if image is None:
            return None
        path = self._deps.blobs.local_path(image.sha256)
        return path.stat().st_size if path is not None and path.is_file() else None

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(
            spec, upstream_model, self._local_size(spec.image), self._local_size(spec.last_frame)
        )

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        """Runway has no idempotency key; ``idempotency_key`` is unused."""
        try:
            # Checked at create already; a refusal now must fail the job, not crash it.
            check_spec(spec, upstream_model, None)
        except InvalidParameter as exc:
            raise ProviderError("invalid_request", exc.message, retryable=False) from exc
        prompt_image = await self._data_uri(spec.image, "input image")
        last_frame = await self._data_uri(spec.last_frame, "last frame")
        path, body = build_request(spec, upstream_model, prompt_image, last_frame)
        answer = await self._client.json("POST", path, json=body)
        task_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderError(
                "upstream_bad_response", "runway: the create answer has no id", retryable=True
            )
        return SubmitResult(task_id, poll_after_s=self._poll_s)

    async def _data_uri(self, image: ImageRef | None, what: str) -> str | None:
        if image is None:
            return None
        uri = await image_data_url(self._deps, image)
        if len(uri) > MAX_DATA_URI_BYTES:
            raise ProviderError(
                "image_too_large",
                f"runway: the {what} is over {MAX_DATA_URI_BYTES} bytes as a data URI",
                retryable=False,
            )
        return uri

    async def _read(self, upstream_id: str) -> tuple[UpstreamStatus, list[str]]:
        body = await self._client.json("GET", f"/v1/tasks/{quote(upstream_id, safe='')}")
        status = parse_task(body, self._poll_s, self._usd_per_credit)
        urls = result_urls(body) if status.state == "succeeded" else []
        if urls:
            self._urls[upstream_id] = urls
            self._urls.move_to_end(upstream_id)
            while len(self._urls) > _URL_CACHE_SIZE:
                self._urls.popitem(last=False)
        return status, urls

    async def status(self, upstream_id: str) -> UpstreamStatus:
        status, _ = await self._read(upstream_id)
        return status

    async def _fresh_urls(self, upstream_id: str) -> list[str]:
        status, urls = await self._read(upstream_id)
        self._urls.pop(upstream_id, None)
        if status.state != "succeeded":
            raise ProviderError(
                "result_not_ready",
                f"runway: task {upstream_id} is {status.state}, not SUCCEEDED",
                retryable=status.state in ("queued", "running"),
            )
        return urls

    async def fetch(
        self, upstream_id: str, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        """Download each ``output[]`` URL (pre-signed, so without our key). URLs
        remembered from the last status read are tried first; an expired one is
        replaced by reading the task again, which gives fresh URLs (section 4)."""
        urls = self._urls.pop(upstream_id, None) or await self._fresh_urls(upstream_id)
        paths: list[Path] = []
        refreshed = False
        for index in range(len(urls)):
            dest = dest_dir / f"{index}.mp4"
            try:
                await self._client.download(urls[index], dest)
            except ProviderError as error:
                if not error.expired or refreshed:
                    raise
                refreshed = True
                urls = await self._fresh_urls(upstream_id)
                if index >= len(urls):
                    raise ProviderError(
                        "result_expired", "runway: the task has fewer outputs now", retryable=False
                    ) from error
                await self._client.download(urls[index], dest)
            paths.append(dest)
            if progress is not None:
                progress((index + 1) / len(urls))
        return paths

    async def cancel(self, upstream_id: str) -> None:
        """``DELETE /v1/tasks/{id}``: cancels a task still running, deletes a finished one."""
        self._urls.pop(upstream_id, None)
        try:
            await self._client.request("DELETE", f"/v1/tasks/{quote(upstream_id, safe='')}")
        except ProviderError as error:
            if error.code != "upstream_not_found":  # already gone: nothing to cancel
                raise

    async def aclose(self) -> None:
        await self._client.aclose()


def create(config: DeploymentConfig, deps: ProviderDeps) -> RunwayProvider:
    return RunwayProvider(config, deps)
