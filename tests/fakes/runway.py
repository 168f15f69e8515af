"""A fake Runway API (reference section 4), as ``runwayml`` 5.24.0 describes it.

Covers: Bearer auth plus the required ``X-Runway-Version: 2024-11-06`` header (400
without it), ``POST /v1/text_to_video`` and ``POST /v1/image_to_video`` for every model
literal of SDK 5.24.0 (gen4_turbo image-to-video only), each with the fields its SDK
request type has (``MODELS``): required fields, ``ratio`` lists (pixels such as
``1280:720``, aspect ratios such as ``16:9`` for hailuo3 and grok_imagine_1_5 text, or
``auto_480p|720p|1080p`` where the output keeps the first frame's framing),
``resolution`` lists (h3_max 480p|768p, hailuo3 768p|2k, happyhorse_1_0 and
grok_imagine_1_5), durations (a list, or any positive int where the SDK types a bare
int, plus ``"auto"`` for Seedance and gemini_omni_flash_1.1), prompt length, seed range
(on the models that have ``seed``), negativePrompt (Veo only) and ``promptImage`` (URL,
runway:// upload URI or a data URI of at most 5 MB; a string or ``[{uri, position}]``
with ``position`` first, or last on the models that take a last frame, each at most
once and never last alone; h3_max PNGs under 256 px on a side are refused); unknown
fields are refused, so ``references`` is refused as an unknown key; the answer
``{id, estimatedCost: {credits}}``; ``GET /v1/tasks/{id}`` moving PENDING (THROTTLED
with ``throttle``) -> RUNNING (progress 0-1) -> SUCCEEDED (``output[]``, ``cost``) |
FAILED (``failure``, ``failureCode``) and CANCELLED; ``DELETE /v1/tasks/{id}``
(cancels a running task, deletes a finished one, which then answers 404).

UNVERIFIED against the live service: error bodies (``{"error"}``, with zod-style
``issues`` on 400), refusing unknown body fields, 429 headers (Retry-After), status
codes 200/204, the progress scale, credit numbers, gen4_turbo durations, the duration
ranges of the models whose SDK type is a bare int (any positive int is taken), and the
accepted image types. Not covered: uploads, video_to_video, ``references[]``,
``referenceAudio[]``, ``referenceVideos[]``, ``providerSettings`` and Seedance 2.5
drafts (refused as unknown keys although the SDK has them on some models), and
position-less ``promptImage`` items (reference images on Seedance, hailuo3 and wan3).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError

API_KEY = "key_runway_test_0123456789"
API_VERSION = "2024-11-06"
BASE_PATH = ""
DEPLOYMENT: dict[str, Any] = {
    "provider": "runway",
    "credentials": {"api_key": API_KEY},
    # Runway wants >= 5 s between reads; the contract tests must not wait that long.
    "options": {"min_poll_s": 0.1},
}
UPSTREAM_MODEL = "gen4.5"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = True
REFRESHES_URLS = True
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("INTERNAL.BAD_OUTPUT.CODE01", "The output did not pass our quality checks.")
CONTENT_REFUSAL = ("SAFETY.INPUT.TEXT", "The prompt was flagged by content moderation.")

MAX_DATA_URI = 5_000_000
MAX_SEED = 4_294_967_295
_DATA_URI = re.compile(r"data:image/(jpeg|png|webp);base64,([A-Za-z0-9+/=]+)")

# Value lists, SDK 5.24.0 ``types/{image,text}_to_video_create_params.py``.
_SIX = {"1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672"}
_VEO = {"1280:720", "720:1280", "1080:1920", "1920:1080"}
_KLING_4K = {"3840:2160", "2160:3840", "2880:2880"}
_KLING_PRO = {"1920:1080", "1080:1920", "1440:1440"}
_KLING_STD = {"1280:720", "720:1280", "960:960"}
_KLING_25 = {"1920:1080", "1440:1440", "1080:1920", "1280:720", "720:720", "720:1280"}
_KLING_4 = {"1280:720", "720:1280", "940:940", "1460:624", "1920:1080", "1080:1920",
            "1440:1440", "2200:940", "auto_720p", "auto_1080p"}  # fmt: skip
_HAILUO = {"21:9", "16:9", "4:3", "1:1", "3:4", "9:16"}  # + "adaptive" with images
_HAILUO_RES = {"768p", "2k", "768P", "2K"}
_HAPPYHORSE = {"1280:720", "720:1280", "960:960", "1108:832", "832:1108", "1920:1080",
               "1080:1920", "1440:1440", "1662:1248", "1248:1662"}  # fmt: skip
_SD2_FAST = {"992:432", "864:496", "752:560", "640:640", "560:752", "496:864", "1470:630",
             "1280:720", "1112:834", "960:960", "834:1112", "720:1280"}  # fmt: skip
_SD2 = _SD2_FAST | {"2206:946", "1920:1080", "1664:1248", "1440:1440", "1248:1664",
                    "1080:1920", "3840:1646", "3840:2160", "3840:2880", "3840:3840",
                    "2880:3840", "2160:3840"}  # fmt: skip
_SD2_5 = {"992:432", "854:480", "752:560", "640:640", "560:752", "480:854", "1470:630",
          "1280:720", "1112:834", "960:960", "834:1112", "720:1280", "2206:946",
          "1920:1080", "1664:1248", "1440:1440", "1248:1664", "1080:1920"}  # fmt: skip
_OMNI = {"1280:720", "720:1280"}
_OMNI_11 = {"640:360", "360:640", "1280:720", "720:1280", "1920:1080", "1080:1920",
            "3840:2160", "2160:3840"}  # fmt: skip
_GROK_ASPECTS = {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"}
_GROK_LITE = {"848:480", "480:848", "480:480", "640:480", "480:640", "720:480", "480:720",
              "1280:720", "720:1280", "720:720", "960:720", "720:960", "1088:720",
              "720:1088", "1904:1072", "1072:1904", "1424:1424", "1648:1232", "1232:1648",
              "1744:1152", "1152:1744"}  # fmt: skip
_AUTO_3 = {"auto_480p", "auto_720p", "auto_1080p"}
_WAN = {"832:480", "720:544", "624:624", "544:720", "480:832", "1280:720", "1104:832",
        "960:960", "832:1104", "720:1280", "1920:1080", "1648:1248", "1440:1440",
        "1248:1648", "1080:1920"} | _AUTO_3  # fmt: skip
_TIERS_3 = {"480p", "720p", "1080p"}
_FIRST = {"first"}
_BOTH = {"first", "last"}


class _Endpoint:
    """One model on one path: its body fields (besides ``model``), which are required,
    the values ``ratio``/``resolution`` take and the ``promptImage`` positions."""

    def __init__(
        self,
        fields: str,
        required: str = "",
        ratios: set[str] | None = None,
        resolutions: set[str] | None = None,
        positions: set[str] | None = None,
    ) -> None:
        self.fields, self.required = set(fields.split()), set(required.split())
        self.ratios, self.resolutions = ratios or set(), resolutions or set()
        self.positions = positions or set()


class _Model:
    def __init__(
        self,
        text: _Endpoint | None,
        image: _Endpoint,
        durations: set[int] | None,  # None: any positive int (SDK: bare int; UNVERIFIED)
        credits_per_s: int = 10,
        auto_duration: bool = False,
        max_prompt: int | None = None,  # UTF-16 code units; None: not stated
        min_image_side: int | None = None,
    ) -> None:
        self.text, self.image, self.durations = text, image, durations
        self.credits_per_s, self.auto_duration = credits_per_s, auto_duration
        self.max_prompt, self.min_image_side = max_prompt, min_image_side


def _kling(ratios: set[str], cfg: bool) -> _Model:
    extra = "audio cfgScale" if cfg else "audio"
    return _Model(
        _Endpoint(f"promptText ratio duration {extra}", "ratio", ratios),
        _Endpoint(f"promptImage promptText ratio duration {extra}", "promptImage", ratios,
                  positions=_BOTH),
        None,
    )  # fmt: skip


def _seedance(ratios: set[str], max_prompt: int, extra: str = "") -> _Model:
    fields = f"promptText ratio duration audio seed {extra}"
    return _Model(
        _Endpoint(fields, "" if extra else "promptText", ratios),
        _Endpoint(f"promptImage {fields}", "promptImage", ratios, positions=_BOTH),
        None, auto_duration=True, max_prompt=max_prompt,
    )  # fmt: skip


def _wan() -> _Model:
    fields = "promptText ratio duration audio"
    return _Model(
        _Endpoint(fields, "promptText", _WAN),
        # Keyframe image-to-video must use auto_<resolution> (SDK docstring).
        _Endpoint(f"promptImage {fields}", "promptImage promptText", _AUTO_3, positions=_BOTH),
        None,
    )  # fmt: skip


_GEN45 = "promptText ratio duration seed contentModeration outputFormat proresProfile"
_VEO_FIELDS = "promptText ratio duration seed audio negativePrompt"

# Credit rates are the fake's own numbers (real per-model rates are UNVERIFIED).
MODELS = {
    "gen4.5": _Model(
        _Endpoint(_GEN45, "promptText ratio duration", {"1280:720", "720:1280"}),
        _Endpoint(f"promptImage {_GEN45}", "promptImage promptText ratio duration", _SIX,
                  positions=_FIRST),
        set(range(2, 11)), 12, max_prompt=1000,
    ),
    "gen4_turbo": _Model(
        None,
        _Endpoint("promptImage promptText ratio duration seed contentModeration",
                  "promptImage ratio", _SIX, positions=_FIRST),
        {5, 10}, 5, max_prompt=1000,
    ),
    "veo3.1": _Model(
        _Endpoint(_VEO_FIELDS, "promptText ratio", _VEO),
        _Endpoint(f"promptImage {_VEO_FIELDS}", "promptImage ratio", _VEO, positions=_BOTH),
        {4, 6, 8}, 40, max_prompt=1000,
    ),
    "veo3.1_fast": _Model(
        _Endpoint(_VEO_FIELDS, "promptText ratio", _VEO),
        _Endpoint(f"promptImage {_VEO_FIELDS}", "promptImage ratio", _VEO, positions=_BOTH),
        {4, 6, 8}, 15, max_prompt=1000,
    ),
    "klingO3_4k": _kling(_KLING_4K, cfg=False),
    "hailuo3": _Model(
        _Endpoint("promptText ratio resolution duration", "promptText", _HAILUO, _HAILUO_RES),
        _Endpoint("promptImage promptText ratio resolution duration", "promptImage promptText",
                  _HAILUO | {"adaptive"}, _HAILUO_RES, positions=_BOTH),
        None,
    ),
    "kling3.0_4k": _kling(_KLING_4K, cfg=True),
    "happyhorse_1_0": _Model(
        _Endpoint("promptText ratio duration", "promptText", _HAPPYHORSE),
        # No ratio: the output follows the image.
        _Endpoint("promptImage promptText resolution duration", "promptImage",
                  resolutions={"720p", "1080p", "720P", "1080P"}, positions=_FIRST),
        None, max_prompt=2500,
    ),
    "kling2.5_turbo_pro": _Model(
        _Endpoint("promptText ratio duration cfgScale", "promptText", _KLING_25),
        # "ratio is not supported on image-to-video" (SDK docstring).
        _Endpoint("promptImage promptText duration cfgScale", "promptImage promptText",
                  positions=_BOTH),
        {5, 10},
    ),
    "kling3.0_pro": _kling(_KLING_PRO, cfg=True),
    "kling3.0_standard": _kling(_KLING_STD, cfg=True),
    "klingO3_pro": _kling(_KLING_PRO, cfg=False),
    "klingO3_standard": _kling(_KLING_STD, cfg=False),
    "seedance2": _seedance(_SD2, 3500),
    "seedance2_fast": _seedance(_SD2_FAST, 3500),
    "seedance2_mini": _seedance(_SD2_FAST, 3500),
    "gemini_omni_flash": _Model(
        _Endpoint("promptText ratio duration", "promptText", _OMNI),
        _Endpoint("promptImage promptText ratio duration", "promptImage", _OMNI,
                  positions=_FIRST),
        set(range(3, 11)),
    ),
    "grok_imagine_1_5": _Model(
        _Endpoint("promptText ratio resolution duration", "promptText", _GROK_ASPECTS,
                  _TIERS_3),
        _Endpoint("promptImage promptText resolution duration", "promptImage",
                  resolutions=_TIERS_3, positions=_FIRST),
        None,
    ),
    "wan3": _wan(),
    "gemini_omni_flash_1.1": _Model(
        _Endpoint("promptText ratio duration", "promptText", _OMNI_11),
        _Endpoint("promptImage promptText ratio duration", "promptImage promptText",
                  _OMNI_11, positions=_BOTH),
        set(range(3, 11)), auto_duration=True,
    ),
    "wan3_prime": _wan(),
    "h3_max": _Model(
        _Endpoint("promptText resolution duration seed promptExpansionMode", "promptText",
                  resolutions={"480p", "768p"}),
        _Endpoint("promptImage promptText resolution duration seed promptExpansionMode",
                  "promptImage promptText", resolutions={"480p", "768p"}, positions=_BOTH),
        None, min_image_side=256,
    ),
    "seedance2_5": _seedance(_SD2_5, 15000, "outputFormat"),
    "grok_imagine_1_5_lite": _Model(
        _Endpoint("promptText ratio duration", "promptText", _GROK_LITE),
        _Endpoint("promptImage promptText ratio duration", "promptImage", _AUTO_3,
                  positions=_FIRST),
        None,
    ),
    "kling_4": _Model(
        _Endpoint("promptText ratio duration", "promptText", _KLING_4),
        _Endpoint("promptImage promptText ratio duration", "promptImage",
                  {"auto_720p", "auto_1080p"}, positions=_BOTH),
        None,
    ),
}  # fmt: skip


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None for anything else."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _invalid(path: str, message: str, code: str = "invalid_type") -> JSONResponse:
    return JSONResponse(
        {
            "error": "Validation of body failed",
            "issues": [{"code": code, "path": [path], "message": message}],
        },
        status_code=400,
    )


class FakeRunway(FakeUpstream):
    name = "runway"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.deleted: set[str] = set()
        self.auth_failures = 0
        self.version_failures = 0
        self.reads = 0
        self.expired_downloads = 0
        # Render queued tasks as THROTTLED (over the organisation's concurrency limit).
        self.throttle = False

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        merged = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            return InjectedError(
                429,
                {"error": "You have exceeded the rate limit for this organization."},
                {"retry-after": "1", **merged},
            )
        if status == 401:
            return InjectedError(401, {"error": "Invalid API key"}, merged)
        return InjectedError(status, {"error": f"injected {status}"}, merged)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/text_to_video", self._text_to_video, methods=["POST"]),
            Route("/v1/image_to_video", self._image_to_video, methods=["POST"]),
            Route("/v1/tasks/{id}", self._get, methods=["GET"]),
            Route("/v1/organization", self._organization, methods=["GET"]),
            Route("/v1/tasks/{id}", self._delete, methods=["DELETE"]),
        ]

    # --- helpers -------------------------------------------------------------------

    def _refuse(self, request: Request) -> Response | None:
        if request.headers.get("x-runway-version") != API_VERSION:
            self.version_failures += 1
            return _error(
                400,
                "The X-Runway-Version header is missing or invalid. Use X-Runway-Version:"
                f" {API_VERSION}.",
            )
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            self.auth_failures += 1
            return _error(401, "Invalid API key")  # never echo what was sent
        return None

    def _check_image(self, value: Any, endpoint: _Endpoint, model: _Model) -> Response | None:
        items = value if isinstance(value, list) else [{"uri": value, "position": "first"}]
        if not items:
            return _invalid("promptImage", "Required")
        if len(items) > 2:
            return _invalid("promptImage", "Array must contain at most 2 element(s)", "too_big")
        positions = []
        for item in items:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("uri"), str)
                or set(item) - {"uri", "position"}
            ):
                return _invalid("promptImage", "Expected string or array of {uri, position}")
            uri, position = item["uri"], item.get("position")
            if position not in endpoint.positions:
                allowed = sorted(endpoint.positions)
                return _invalid("promptImage", f"position must be one of {allowed}")
            positions.append(position)
            if uri.startswith("data:"):
                if len(uri) > MAX_DATA_URI:
                    return _invalid("promptImage", "Data URI must be at most 5MB", "too_big")
                match = _DATA_URI.fullmatch(uri)
                if match is None:
                    return _invalid("promptImage", "Invalid data URI")
                try:
                    data = base64.b64decode(match[2], validate=True)
                except binascii.Error:
                    return _invalid("promptImage", "Invalid base64 in data URI")
                size = _png_size(data)
                side = model.min_image_side
                if side is not None and size is not None and min(size) < side:
                    return _invalid("promptImage", f"Each image must be at least {side} pixels")
            elif not uri.startswith(("https://", "runway://")):
                return _invalid("promptImage", "Must be an HTTPS URL, runway:// URI or data URI")
        if len(set(positions)) != len(positions):
            return _invalid("promptImage", "Each position may appear only once")
        if positions == ["last"]:
            return _invalid("promptImage", "A last frame needs a first frame")
        return None

    def _validate(self, body: Any, image: bool) -> Response | None:
        if not isinstance(body, dict):
            return _invalid("", "Expected object")
        model = MODELS.get(body.get("model"))  # type: ignore[arg-type]
        endpoint = None if model is None else model.image if image else model.text
        if model is None or endpoint is None:
            allowed = [m for m, c in MODELS.items() if image or c.text is not None]
            return _invalid("model", f"Expected one of {', '.join(allowed)}", "invalid_enum_value")
        extra = sorted(set(body) - endpoint.fields - {"model"})
        if extra:
            return _invalid(extra[0], f"Unrecognized key(s) in object: '{extra[0]}'")
        missing = sorted(endpoint.required - set(body))
        if missing:
            return _invalid(missing[0], "Required")
        prompt = body.get("promptText")
        if prompt is not None and (
            not isinstance(prompt, str)
            or not prompt
            or (
                model.max_prompt is not None
                and len(prompt.encode("utf-16-le")) > 2 * model.max_prompt
            )
        ):
            limit = model.max_prompt
            return _invalid("promptText", f"Must be 1-{limit or 'any'} UTF-16 code units")
        for key, allowed_values in (
            ("ratio", endpoint.ratios),
            ("resolution", endpoint.resolutions),
        ):
            if key in body and body[key] not in allowed_values:
                return _invalid(key, f"Expected one of {', '.join(sorted(allowed_values))}")
        duration = body.get("duration")
        if duration is not None and not (
            (duration == "auto" and model.auto_duration)
            or (
                isinstance(duration, int) and not isinstance(duration, bool)
                and (duration in model.durations if model.durations else duration > 0)
            )
        ):  # fmt: skip
            expected = (
                f"one of {sorted(model.durations)}" if model.durations else "a positive integer"
            )
            return _invalid("duration", f"Expected {expected}")
        seed = body.get("seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
        ):
            return _invalid("seed", f"Expected an integer 0-{MAX_SEED}")
        if "negativePrompt" in body and not isinstance(body["negativePrompt"], str):
            return _invalid("negativePrompt", "Expected string")
        if image:
            return self._check_image(body.get("promptImage"), endpoint, model)
        return None

    def _credits(self, task: FakeTask) -> int:
        model = MODELS[task.request["model"]]
        duration = task.request.get("duration")
        seconds = max(model.durations or {10}) if duration == "auto" else int(duration or 5)
        return model.credits_per_s * seconds

    def _render(self, task: FakeTask) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": task.id,
            "createdAt": dt.datetime.fromtimestamp(task.created_at, dt.UTC).isoformat(),
        }
        if task.state == "queued":
            status = "THROTTLED" if self.throttle else "PENDING"
            out.update(status=status, estimatedCost={"credits": self._credits(task)})
        elif task.state == "running":
            out.update(status="RUNNING", progress=round(task.polls / self.polls_to_finish, 2))
        elif task.state == "succeeded":
            out.update(
                status="SUCCEEDED",
                output=[self.result_url(task)],
                cost={"credits": self._credits(task)},
            )
        elif task.state == "failed":
            out.update(
                status="FAILED",
                failure=task.error_message,
                failureCode=task.error_code,
                cost={"credits": 0},
            )
        else:
            out.update(status="CANCELLED", cost={"credits": 0})
        return out

    def _task(self, request: Request) -> FakeTask | None:
        task = self.tasks.get(request.path_params["id"])
        return None if task is None or task.id in self.deleted else task

    async def _serve_file(self, request: Request) -> Response:
        response = await super()._serve_file(request)
        if response.status_code == 403:
            self.expired_downloads += 1
        return response

    # --- endpoints -------------------------------------------------------------------

    async def _create(self, request: Request, image: bool) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid JSON body")
        refused = self._validate(body, image)
        if refused is not None:
            return refused
        self.requests.append((request.url.path, body))
        task = self.accept(body, task_id=str(uuid.uuid4()))
        return JSONResponse({"id": task.id, "estimatedCost": {"credits": self._credits(task)}})

    async def _text_to_video(self, request: Request) -> Response:
        return await self._create(request, image=False)

    async def _image_to_video(self, request: Request) -> Response:
        return await self._create(request, image=True)

    async def _get(self, request: Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        self.reads += 1
        task = self._task(request)
        if task is None:
            return _error(404, "Task not found")
        return JSONResponse(self._render(self.advance(task)))

    async def _organization(self, request: Request) -> Response:
        """``GET /v1/organization``: the SDK's ``OrganizationRetrieveResponse``."""
        refused = self._refuse(request)
        if refused is not None:
            return refused
        return JSONResponse({"creditBalance": 1000, "tier": {"maxMonthlyCreditSpend": 10000,
                             "models": {}}, "usage": {"models": {}}})  # fmt: skip

    async def _delete(self, request: Request) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        task = self._task(request)
        if task is None:
            return _error(404, "Task not found")
        finished = task.state in ("succeeded", "failed", "cancelled")
        self.cancel(task)
        if finished:
            self.deleted.add(task.id)
        return Response(status_code=204)
