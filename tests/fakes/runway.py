"""A fake Runway API (reference section 4), as ``runwayml`` 5.24.0 describes it.

Covers: Bearer auth plus the required ``X-Runway-Version: 2024-11-06`` header (400
without it), ``POST /v1/text_to_video`` and ``POST /v1/image_to_video`` for gen4.5,
gen4_turbo (image only), veo3.1 and veo3.1_fast with their ratio lists, durations, seed
range, negativePrompt (Veo only) and ``promptImage`` (URL, runway:// upload URI or a
data URI of at most 5 MB; a string or ``[{uri, position}]`` with ``position`` first,
or last on the Veo models only, each at most once and never last alone; no other
fields, so ``references`` is refused as an unknown key); the answer
``{id, estimatedCost: {credits}}``; ``GET /v1/tasks/{id}`` moving PENDING (THROTTLED
with ``throttle``) -> RUNNING (progress 0-1) -> SUCCEEDED (``output[]``, ``cost``) |
FAILED (``failure``, ``failureCode``) and CANCELLED; ``DELETE /v1/tasks/{id}``
(cancels a running task, deletes a finished one, which then answers 404).

UNVERIFIED against the live service: error bodies (``{"error"}``, with zod-style
``issues`` on 400), refusing unknown body fields, 429 headers (Retry-After), status
codes 200/204, the progress scale, credit numbers, gen4_turbo durations and the
accepted image types. Not covered: uploads, video_to_video, other models.
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

MAX_DATA_URI = 5_000_000
MAX_SEED = 4_294_967_295
_SIX = {"1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672"}
_VEO = {"1280:720", "720:1280", "1080:1920", "1920:1080"}
_BASE_FIELDS = {"model", "promptText", "ratio", "duration", "seed", "contentModeration"}
_DATA_URI = re.compile(r"data:image/(jpeg|png|webp);base64,([A-Za-z0-9+/=]+)")


class _Model:
    def __init__(
        self,
        text: set[str],
        image: set[str],
        durations: set[int],
        credits_per_s: int,
        extra: set[str],
        duration_required: bool = False,
    ) -> None:
        self.text, self.image, self.durations = text, image, durations
        self.credits_per_s, self.extra = credits_per_s, extra
        self.duration_required = duration_required


# Credit rates are the fake's own numbers (real per-model rates are UNVERIFIED).
MODELS = {
    "gen4.5": _Model(
        {"1280:720", "720:1280"}, _SIX, set(range(2, 11)), 12,
        {"outputFormat", "proresProfile"}, duration_required=True,
    ),
    "gen4_turbo": _Model(set(), _SIX, {5, 10}, 5, set()),
    "veo3.1": _Model(_VEO, _VEO, {4, 6, 8}, 40, {"negativePrompt", "audio"}),
    "veo3.1_fast": _Model(_VEO, _VEO, {4, 6, 8}, 15, {"negativePrompt", "audio"}),
}  # fmt: skip


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

    def _check_image(self, value: Any, model: str) -> Response | None:
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
            uri, position = item["uri"], item.get("position", "first")
            allowed_positions = {"first", "last"} if model.startswith("veo") else {"first"}
            if position not in allowed_positions:
                return _invalid("promptImage", f"position must be one of {allowed_positions}")
            positions.append(position)
            if uri.startswith("data:"):
                if len(uri) > MAX_DATA_URI:
                    return _invalid("promptImage", "Data URI must be at most 5MB", "too_big")
                match = _DATA_URI.fullmatch(uri)
                if match is None:
                    return _invalid("promptImage", "Invalid data URI")
                try:
                    base64.b64decode(match[2], validate=True)
                except binascii.Error:
                    return _invalid("promptImage", "Invalid base64 in data URI")
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
        if model is None or (not image and not model.text):
            allowed = [m for m, c in MODELS.items() if image or c.text]
            return _invalid("model", f"Expected one of {', '.join(allowed)}", "invalid_enum_value")
        fields = _BASE_FIELDS | model.extra | ({"promptImage"} if image else set())
        extra = sorted(set(body) - fields)
        if extra:
            return _invalid(extra[0], f"Unrecognized key(s) in object: '{extra[0]}'")
        prompt = body.get("promptText")
        if prompt is None and not image:
            return _invalid("promptText", "Required")
        if prompt is not None and (
            not isinstance(prompt, str) or not prompt or len(prompt.encode("utf-16-le")) > 2000
        ):
            return _invalid("promptText", "Must be 1-1000 UTF-16 code units")
        ratios = model.image if image else model.text
        if body.get("ratio") not in ratios:
            return _invalid("ratio", f"Expected one of {', '.join(sorted(ratios))}")
        duration = body.get("duration")
        if duration is None and model.duration_required:
            return _invalid("duration", "Required")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int)
            or duration not in model.durations
        ):  # fmt: skip
            return _invalid("duration", f"Expected one of {sorted(model.durations)}")
        seed = body.get("seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
        ):
            return _invalid("seed", f"Expected an integer 0-{MAX_SEED}")
        if "negativePrompt" in body and not isinstance(body["negativePrompt"], str):
            return _invalid("negativePrompt", "Expected string")
        if image:
            return self._check_image(body.get("promptImage"), str(body["model"]))
        return None

    def _credits(self, task: FakeTask) -> int:
        model = MODELS[task.request["model"]]
        return model.credits_per_s * int(task.request.get("duration") or 5)

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
