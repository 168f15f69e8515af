"""Runway API, reference section 4.

- every request: ``Authorization: Bearer <secret>`` and ``X-Runway-Version: 2024-11-06``;
- create: ``POST /v1/text_to_video`` or ``POST /v1/image_to_video`` JSON with ``model``,
  ``promptText``, the frame (see below), ``duration`` (int, per model), ``seed`` (the
  models that have it), ``negativePrompt`` (Veo only) and ``promptImage`` (a data URI of
  at most 5 MB); the answer is ``{id, estimatedCost: {credits}}``;
- the frame, per model and endpoint (table ``MODELS``): ``ratio`` as pixels ``W:H``
  ("1280:720"), ``ratio`` as an aspect ratio ("16:9", hailuo3 and grok_imagine_1_5
  text-to-video), ``ratio`` as ``auto_<resolution>`` (image-to-video whose output keeps
  the first frame's framing: wan3, wan3_prime, grok_imagine_1_5_lite, kling_4), and/or
  ``resolution`` (h3_max 480p|768p, hailuo3 768p|2k, happyhorse_1_0 and grok_imagine_1_5
  image-to-video). Gateway resolutions map onto Runway's tiers: 720p is sent as 768p
  and 1080p as 2k (the nearest tiers; their exact pixel sizes are UNVERIFIED);
- a last frame: ``promptImage`` as ``[{uri, position: "first"}, {uri, position:
  "last"}]`` on the models whose SDK type has ``position: "last"`` (or, for hailuo3,
  wan3, wan3_prime and kling_4, whose SDK docstring names first/last keyframes); a last
  frame alone is not allowed. A first frame alone stays a plain string;
- reference images: the SDK has ``references[]`` on some models, but vidgate does not
  send them yet, so ``validate`` refuses them;
- poll ``GET /v1/tasks/{id}``: PENDING / THROTTLED (queued behind the organisation's
  concurrency limit) / RUNNING (``progress`` 0-1, scale UNVERIFIED) / SUCCEEDED
  (``output[]`` URLs that expire in 24-48 h; a new read gives fresh ones) / FAILED
  (``failure``, ``failureCode``) / CANCELLED; terminal states carry ``cost.credits``.
  Runway asks for no more than one read every 5 s;
- cancel: ``DELETE /v1/tasks/{id}``.

The model list is the SDK 5.24.0 literal list for both endpoints (reference section 4;
gen4_turbo is image-to-video only). Where the reference gives no per-model rule, the
ratio/resolution lists, seed, last-frame and prompt-length facts come from the same
SDK's ``types/{image,text}_to_video_create_params.py``; durations that the SDK types
only as ``int`` are passed through unchecked for Runway to validate (UNVERIFIED, marked
in the table).

Runway has no idempotency key and no frame-rate setting (24 fps output UNVERIFIED), so
``validate`` refuses fps other than 24, n > 1 (one video per task), remix and extend.
The upstream id is Runway's task id, unchanged.

Options: ``min_poll_s`` (default 5; tests lower it), ``usd_per_credit`` (default 0.01,
UNVERIFIED).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from vidgate.core.capabilities import CapabilityTable
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits, default_error_message
from vidgate.providers.inputs import image_data_url
from vidgate.providers.result_urls import ResultUrls

DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
API_VERSION = "2024-11-06"
DEFAULT_MODEL = "gen4.5"
# Section 4 "Common image input": a data URI may be at most 5 MB. Counted on the
# encoded URI, with MB as 10^6 bytes, which is the stricter reading (UNVERIFIED).
MAX_DATA_URI_BYTES = 5_000_000
MAX_SEED = 4_294_967_295  # UNVERIFIED: uint32 like the web app
_DEFAULT_MIN_POLL_S = 5.0
_DEFAULT_USD_PER_CREDIT = "0.01"


class Options(adapter_config.AdapterSettings):
    # Runway asks for at least 5 s between status reads.
    min_poll_s: float = Field(default=_DEFAULT_MIN_POLL_S, gt=0)
    usd_per_credit: Decimal = Field(default=Decimal(_DEFAULT_USD_PER_CREDIT), ge=0)


# The SDK's base URL is the host; every path is under /v1.
ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "/v1", DEFAULT_BASE_URL)

# Ratio lists, SDK 5.24.0 (the first three are also in the reference).
_SIX_RATIOS = ("1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672")
_VEO_RATIOS = ("1280:720", "720:1280", "1080:1920", "1920:1080")
_KLING_4K = ("3840:2160", "2160:3840", "2880:2880")
_KLING_PRO = ("1920:1080", "1080:1920", "1440:1440")
_KLING_STANDARD = ("1280:720", "720:1280", "960:960")
_KLING_2_5_TEXT = ("1920:1080", "1440:1440", "1080:1920", "1280:720", "720:720", "720:1280")
_KLING_4_TEXT = (
    "1280:720", "720:1280", "940:940", "1460:624", "1920:1080", "1080:1920", "1440:1440",
    "2200:940",
)  # fmt: skip
# "adaptive" is left out: vidgate always asks for a concrete aspect ratio.
_HAILUO_3 = ("21:9", "16:9", "4:3", "1:1", "3:4", "9:16")
_HAPPYHORSE_TEXT = (
    "1280:720", "720:1280", "960:960", "1108:832", "832:1108", "1920:1080", "1080:1920",
    "1440:1440", "1662:1248", "1248:1662",
)  # fmt: skip
_SEEDANCE_2_FAST = (
    "992:432", "864:496", "752:560", "640:640", "560:752", "496:864", "1470:630",
    "1280:720", "1112:834", "960:960", "834:1112", "720:1280",
)  # fmt: skip
_SEEDANCE_2 = (
    *_SEEDANCE_2_FAST, "2206:946", "1920:1080", "1664:1248", "1440:1440", "1248:1664",
    "1080:1920", "3840:1646", "3840:2160", "3840:2880", "3840:3840", "2880:3840", "2160:3840",
)  # fmt: skip
_SEEDANCE_2_5 = (
    "992:432", "854:480", "752:560", "640:640", "560:752", "480:854", "1470:630",
    "1280:720", "1112:834", "960:960", "834:1112", "720:1280", "2206:946", "1920:1080",
    "1664:1248", "1440:1440", "1248:1664", "1080:1920",
)  # fmt: skip
_OMNI = ("1280:720", "720:1280")
_OMNI_1_1 = (
    "640:360", "360:640", "1280:720", "720:1280", "1920:1080", "1080:1920", "3840:2160",
    "2160:3840",
)  # fmt: skip
_GROK_TEXT_ASPECTS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
_GROK_LITE_TEXT = (
    "848:480", "480:848", "480:480", "640:480", "480:640", "720:480", "480:720", "1280:720",
    "720:1280", "720:720", "960:720", "720:960", "1088:720", "720:1088", "1904:1072",
    "1072:1904", "1424:1424", "1648:1232", "1232:1648", "1744:1152", "1152:1744",
)  # fmt: skip
_WAN_3_TEXT = (
    "832:480", "720:544", "624:624", "544:720", "480:832", "1280:720", "1104:832",
    "960:960", "832:1104", "720:1280", "1920:1080", "1648:1248", "1440:1440", "1248:1648",
    "1080:1920",
)  # fmt: skip
_TIERS_3 = ("480p", "720p", "1080p")

Mode = Literal["text-to-video", "image-to-video"]


@dataclass(frozen=True)
class Frame:
    """How one endpoint of one model takes the output frame.

    ``ratio``: what goes into the ``ratio`` field:
      ``"pixels"``: the spec's ``W:H`` (``1280:720``), one of ``ratios``;
      ``"aspect"``: the spec's aspect ratio (``16:9``), one of ``ratios``;
      ``"auto"``: the value ``resolutions`` gives the spec's resolution (``auto_720p``;
      the output keeps the first frame's framing);
      ``None``: no ``ratio`` field.
    ``resolutions``: (gateway resolution, value sent) pairs. They fill the ``resolution``
    field, or ``ratio`` with ``"auto"``; empty: no resolution check or field.
    ``aspects``: with no ``ratio``, the aspect ratios the output is known to have;
    empty: any (the output follows the input image).
    """

    ratio: Literal["pixels", "aspect", "auto"] | None
    ratios: tuple[str, ...] = ()
    resolutions: tuple[tuple[str, str], ...] = ()
    aspects: tuple[str, ...] = ()


def _px(*ratios: str) -> Frame:
    return Frame("pixels", ratios)


def _auto(*tiers: str) -> Frame:
    return Frame("auto", resolutions=tuple((t, f"auto_{t}") for t in tiers))


def _tiers(*pairs: tuple[str, str], aspects: tuple[str, ...] = ()) -> Frame:
    return Frame(None, resolutions=pairs, aspects=aspects)


_SAME_3 = (("480p", "480p"), ("720p", "720p"), ("1080p", "1080p"))
# Nearest tiers (the exact pixel sizes of 768p and 2k are UNVERIFIED).
_HAILUO_3_RES = (("720p", "768p"), ("1080p", "2k"))
_H3_MAX_RES = (("480p", "480p"), ("720p", "768p"))


@dataclass(frozen=True)
class RunwayModel:
    """How one model takes its output frame per endpoint, and its prompt limit; what
    else it accepts (durations, seed, negative prompt, last frame, image limits) is
    the catalogue's ``upstreams.runway``."""

    text: Frame | None  # None: no text-to-video
    image: Frame
    max_prompt: int | None = None  # UTF-16 code units; None: not stated, Runway checks


# Section 4 "Key per-model parameters" and the SDK 5.24.0 request types.
MODELS: dict[str, RunwayModel] = {
    "gen4.5": RunwayModel(_px("1280:720", "720:1280"), _px(*_SIX_RATIOS), max_prompt=1000),
    # Image-only.
    "gen4_turbo": RunwayModel(None, _px(*_SIX_RATIOS), max_prompt=1000),
    "veo3.1": RunwayModel(_px(*_VEO_RATIOS), _px(*_VEO_RATIOS), max_prompt=1000),
    "veo3.1_fast": RunwayModel(_px(*_VEO_RATIOS), _px(*_VEO_RATIOS), max_prompt=1000),
    # Kling via Runway.
    "klingO3_4k": RunwayModel(_px(*_KLING_4K), _px(*_KLING_4K)),
    "kling3.0_4k": RunwayModel(_px(*_KLING_4K), _px(*_KLING_4K)),
    "kling3.0_pro": RunwayModel(_px(*_KLING_PRO), _px(*_KLING_PRO)),
    "kling3.0_standard": RunwayModel(_px(*_KLING_STANDARD), _px(*_KLING_STANDARD)),
    "klingO3_pro": RunwayModel(_px(*_KLING_PRO), _px(*_KLING_PRO)),
    "klingO3_standard": RunwayModel(_px(*_KLING_STANDARD), _px(*_KLING_STANDARD)),
    # Image-to-video takes no ratio: the output follows the input image.
    "kling2.5_turbo_pro": RunwayModel(_px(*_KLING_2_5_TEXT), Frame(None)),
    # Image-to-video: ratio auto_720p|auto_1080p, framing from the first frame.
    "kling_4": RunwayModel(_px(*_KLING_4_TEXT), _auto("720p", "1080p")),
    # MiniMax via Runway.
    "hailuo3": RunwayModel(
        Frame("aspect", _HAILUO_3, _HAILUO_3_RES), Frame("aspect", _HAILUO_3, _HAILUO_3_RES)
    ),
    # No ratio field: text-to-video is taken to be landscape 16:9 (UNVERIFIED, as for
    # MiniMax's own API); image-to-video follows the image.
    "h3_max": RunwayModel(_tiers(*_H3_MAX_RES, aspects=("16:9",)), _tiers(*_H3_MAX_RES)),
    # Image-to-video: resolution 720p|1080p, aspect from the image.
    "happyhorse_1_0": RunwayModel(
        _px(*_HAPPYHORSE_TEXT), _tiers(("720p", "720p"), ("1080p", "1080p")), max_prompt=2500
    ),
    # Seedance via Runway.
    "seedance2": RunwayModel(_px(*_SEEDANCE_2), _px(*_SEEDANCE_2), max_prompt=3500),
    "seedance2_fast": RunwayModel(_px(*_SEEDANCE_2_FAST), _px(*_SEEDANCE_2_FAST), max_prompt=3500),
    "seedance2_mini": RunwayModel(_px(*_SEEDANCE_2_FAST), _px(*_SEEDANCE_2_FAST), max_prompt=3500),
    "seedance2_5": RunwayModel(_px(*_SEEDANCE_2_5), _px(*_SEEDANCE_2_5), max_prompt=15000),
    "gemini_omni_flash": RunwayModel(_px(*_OMNI), _px(*_OMNI)),
    "gemini_omni_flash_1.1": RunwayModel(_px(*_OMNI_1_1), _px(*_OMNI_1_1)),
    # Text-to-video: ratio as an aspect ratio plus resolution; image-to-video: resolution
    # only, aspect from the image.
    "grok_imagine_1_5": RunwayModel(Frame("aspect", _GROK_TEXT_ASPECTS, _SAME_3), _tiers(*_SAME_3)),
    "grok_imagine_1_5_lite": RunwayModel(_px(*_GROK_LITE_TEXT), _auto(*_TIERS_3)),
    # Keyframe image-to-video must use auto_<resolution> (SDK docstring).
    "wan3": RunwayModel(_px(*_WAN_3_TEXT), _auto(*_TIERS_3)),
    "wan3_prime": RunwayModel(_px(*_WAN_3_TEXT), _auto(*_TIERS_3)),
}
_QUEUED = {"PENDING", "THROTTLED"}
_TERMINAL = {"SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELLED": "cancelled"}


def _sizes(ratios: tuple[str, ...]) -> str:
    return ", ".join(r.replace(":", "x") for r in ratios)


def data_uri_bytes(content_type: str, image_bytes: int) -> int:
    """Length of ``data:<type>;base64,<payload>`` for an image of ``image_bytes``."""
    return len(f"data:{content_type};base64,") + 4 * ((image_bytes + 2) // 3)


def model_for(upstream_model: str | None) -> tuple[str, RunwayModel]:
    name = upstream_model or DEFAULT_MODEL
    model = MODELS.get(name)
    if model is None:
        raise InvalidParameter(
            f"runway: model {name!r} is not supported here; allowed: {', '.join(MODELS)}",
            param="model",
        )
    return name, model


def frame_fields(spec: JobSpec, name: str, frame: Frame, mode: Mode) -> dict[str, str]:
    """The ``ratio``/``resolution`` fields for ``spec``, or ``InvalidParameter``."""
    fields: dict[str, str] = {}
    if frame.ratio == "pixels":
        if ratio_for(spec) not in frame.ratios:
            raise InvalidParameter(
                f"runway {name} {mode} does not make {spec.size}; allowed sizes:"
                f" {_sizes(frame.ratios)}",
                param="size",
            )
        fields["ratio"] = ratio_for(spec)
    elif frame.ratio == "aspect" or frame.aspects:
        aspects = frame.ratios if frame.ratio == "aspect" else frame.aspects
        if spec.aspect_ratio not in aspects:
            raise InvalidParameter(
                f"runway {name} {mode} does not make aspect ratio {spec.aspect_ratio};"
                f" allowed aspect ratios: {', '.join(aspects)}",
                param="aspect_ratio",
            )
        if frame.ratio == "aspect":
            fields["ratio"] = spec.aspect_ratio
    if frame.resolutions:
        sent = dict(frame.resolutions).get(spec.resolution)
        if sent is None:
            allowed = ", ".join(
                ours if ours == theirs else f"{ours} (sent as {theirs})"
                for ours, theirs in frame.resolutions
            )
            raise InvalidParameter(
                f"runway {name} {mode} does not make {spec.resolution}; allowed"
                f" resolutions: {allowed}",
                param="resolution",
            )
        fields["ratio" if frame.ratio == "auto" else "resolution"] = sent
    return fields


def _frame(spec: JobSpec, name: str, model: RunwayModel, image: bool) -> dict[str, str]:
    if image:
        return frame_fields(spec, name, model.image, "image-to-video")
    if model.text is None:
        raise InvalidParameter(
            f"runway {name} needs a first-frame image (image-to-video only)", param="image"
        )
    return frame_fields(spec, name, model.text, "text-to-video")


def check_spec(
    spec: JobSpec,
    upstream_model: str | None,
    table: CapabilityTable,
    image_bytes: int | None,
    last_frame_bytes: int | None = None,
) -> None:
    """What Runway cannot do, as ``InvalidParameter`` (the create-time 400): the
    catalogue's data for the model, then what shapes the request (the output frame per
    endpoint, the prompt in UTF-16 code units, the seed range) and each input image as
    a data URI of at most 5 MB. ``image_bytes``/``last_frame_bytes``: the stored input
    images' sizes, when they are known without I/O."""
    name, model = model_for(upstream_model)
    table.check(spec, "runway", name, f"runway {name}")
    _frame(spec, name, model, spec.image is not None)
    if spec.seed is not None and not 0 <= spec.seed <= MAX_SEED:
        raise InvalidParameter(f"runway takes seed 0-{MAX_SEED}", param="seed")
    limit = model.max_prompt
    if limit is not None and len(spec.prompt.encode("utf-16-le")) // 2 > limit:
        raise InvalidParameter(
            f"runway {name} takes a prompt of at most {limit} UTF-16 code units",
            param="prompt",
        )
    for param, image, size in (
        ("image", spec.image, image_bytes),
        ("last_frame", spec.last_frame, last_frame_bytes),
    ):
        encoded = (
            None if image is None or size is None else data_uri_bytes(image.content_type, size)
        )
        if encoded is not None and encoded > MAX_DATA_URI_BYTES:
            raise InvalidParameter(
                f"runway takes an input image of at most {MAX_DATA_URI_BYTES} bytes as a"
                f" base64 data URI (about {MAX_DATA_URI_BYTES * 3 // 4 // 1000} kB before"
                " encoding)",
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
    name, model = model_for(upstream_model)
    frame = _frame(spec, name, model, prompt_image is not None)
    body: dict[str, Any] = {"model": name, **frame, "duration": spec.seconds}
    if spec.prompt:
        body["promptText"] = spec.prompt
    if spec.seed is not None:
        body["seed"] = spec.seed
    if spec.negative_prompt is not None:
        body["negativePrompt"] = spec.negative_prompt
    if prompt_image is None:
        return "/text_to_video", body
    if last_frame_image is None:
        body["promptImage"] = prompt_image
    else:
        body["promptImage"] = [
            {"uri": prompt_image, "position": "first"},
            {"uri": last_frame_image, "position": "last"},
        ]
    return "/image_to_video", body


def _credits_usd(body: dict[str, Any], usd_per_credit: Decimal) -> Decimal | None:
    cost = body.get("cost")
    credits = cost.get("credits") if isinstance(cost, dict) else None
    if isinstance(credits, bool) or not isinstance(credits, int | float):
        return None
    return Decimal(str(credits)) * usd_per_credit


# ``failureCode`` by prefix (docs.dev.runwayml.com errors/task-failures): ``SAFETY.*``
# is moderation of an input or the output ("do not retry"); ``INTERNAL.BAD_OUTPUT.*``
# and ``INTERNAL*`` are Runway's own (retry); ``ASSET.INVALID`` and the rest of
# ``INPUT_PREPROCESSING.*`` are inputs it could not use.
FAILURES: dict[str, failures.Failure] = {
    "SAFETY.": failures.REFUSED,
    "INPUT_PREPROCESSING.SAFETY.": failures.REFUSED,
    "INTERNAL": failures.TRANSIENT,
    "INPUT_PREPROCESSING.INTERNAL": failures.TRANSIENT,
    "INPUT_PREPROCESSING.": failures.INVALID,
    "ASSET.": failures.INVALID,
}


def parse_task(
    body: Any, poll_s: float = _DEFAULT_MIN_POLL_S, usd_per_credit: Decimal = Decimal("0.01")
) -> base.UpstreamStatus:
    """A task object as an ``UpstreamStatus``; cost is ``cost.credits`` in USD."""
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(status, str):
        raise base.ProviderError(
            "upstream_bad_response", "runway: a task without a status", retryable=True
        )
    if status in _QUEUED:
        return base.UpstreamStatus("queued", poll_after_s=poll_s)
    if status == "RUNNING":
        raw = body.get("progress")
        progress = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            # The scale is UNVERIFIED (section 4); 0-1 is assumed, a value above 1 is
            # taken to be a percentage already.
            progress = max(0, min(100, round(raw * 100 if raw <= 1 else raw)))
        return base.UpstreamStatus("running", progress=progress, poll_after_s=poll_s)
    if status not in _TERMINAL:
        raise base.ProviderError(
            "upstream_bad_response", f"runway: unknown task status {status!r}", retryable=True
        )
    cost = _credits_usd(body, usd_per_credit)
    if status == "FAILED":
        reason = str(body["failure"]) if body.get("failure") else None
        code = str(body["failureCode"]) if body.get("failureCode") else None
        failure = failures.lookup(FAILURES, code, reason, prefixes=True)
        return failures.failed(failure, "runway", reason, code, cost=cost)
    if status == "SUCCEEDED" and not result_urls(body):
        return failures.failed(failures.TRANSIENT, "runway", "no output", cost=cost)
    state = _TERMINAL[status]
    return base.UpstreamStatus(
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


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = "runway: the result URL has expired and the task gives no new one"


class RunwayProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._poll_s = options.min_poll_s
        self._usd_per_credit = options.usd_per_credit
        self._client = UpstreamClient(
            provider="runway",
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers={
                "Authorization": f"Bearer {credentials.api_key.get_secret_value()}",
                "X-Runway-Version": API_VERSION,
            },
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._client, gone=_URL_GONE)

    def _local_size(self, image: ImageRef | None) -> int | None:
        """One stat of a local blob; a remote store is checked at submit instead."""
        if image is None:
            return None
        path = self._deps.blobs.local_path(image.sha256)
        return path.stat().st_size if path is not None and path.is_file() else None

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(
            spec,
            upstream_model,
            self._deps.capabilities,
            self._local_size(spec.image),
            self._local_size(spec.last_frame),
        )

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """Runway has no idempotency key; ``idempotency_key`` is unused."""
        prompt_image = await self._data_uri(spec.image, "input image")
        last_frame = await self._data_uri(spec.last_frame, "last frame")
        path, body = build_request(spec, upstream_model, prompt_image, last_frame)
        answer = await self._client.json("POST", path, json=body)
        task_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise base.ProviderError(
                "upstream_bad_response", "runway: the create answer has no id", retryable=True
            )
        return base.SubmitResult(task_id, poll_after_s=self._poll_s)

    async def _data_uri(self, image: ImageRef | None, what: str) -> str | None:
        if image is None:
            return None
        uri = await image_data_url(self._deps, image)
        if len(uri) > MAX_DATA_URI_BYTES:
            raise base.ProviderError(
                "image_too_large",
                f"runway: the {what} is over {MAX_DATA_URI_BYTES} bytes as a data URI",
                retryable=False,
            )
        return uri

    async def _read(self, task_id: str) -> tuple[base.UpstreamStatus, list[str]]:
        body = await self._client.json("GET", f"/tasks/{quote(task_id, safe='')}")
        status = parse_task(body, self._poll_s, self._usd_per_credit)
        return status, result_urls(body) if status.state == "succeeded" else []

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        status, urls = await self._read(task.id)
        self._urls.remember(task.id, urls)
        return status

    async def _fresh_urls(self, task_id: str) -> list[str]:
        status, urls = await self._read(task_id)
        if status.state != "succeeded":
            raise base.ProviderError(
                "result_not_ready",
                f"runway: task {task_id} is {status.state}, not SUCCEEDED",
                retryable=status.state in ("queued", "running"),
            )
        return urls

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        """Download each ``output[]`` URL (pre-signed, so without our key). URLs
        remembered from the last status read are tried first; an expired one is
        replaced by reading the task again, which gives fresh URLs (section 4)."""
        return await self._urls.download(
            task.id, dest_dir, lambda: self._fresh_urls(task.id), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """``DELETE /v1/tasks/{id}``: cancels a task still running, deletes a finished one."""
        self._urls.forget(task.id)
        try:
            await self._client.request("DELETE", f"/tasks/{quote(task.id, safe='')}")
        except base.ProviderError as error:
            if error.code != "upstream_not_found":  # already gone: nothing to cancel
                raise

    async def probe(self) -> None:
        """``GET /v1/organization`` (the SDK's ``organization.retrieve``): the credit
        balance of the key's organisation."""
        await self._client.json("GET", "/organization")

    async def aclose(self) -> None:
        await self._client.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> RunwayProvider:
    return RunwayProvider(config, deps)
