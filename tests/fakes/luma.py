"""A fake Luma Dream Machine API (reference section 3), as ``lumaai`` 1.21.0 describes it.

Served under ``/dream-machine/v1`` like the real base URL. Covers: Bearer auth,
``POST /generations/video`` with the SDK's field names and enums (model, duration
"5s"/"9s", resolution, aspect_ratio, keyframes frame0/frame1 of type image/generation);
an image keyframe is exactly ``{type, url}`` with an http(s) URL (no data URIs, no
upload), a generation keyframe exactly ``{type, id}``; frame1 is the end frame (a last
frame beside an image frame0); there is no reference-image field, so one is refused as
an extra field; the Generation object (``queued`` -> ``dreaming`` -> ``completed`` with
``assets.video`` | ``failed`` with ``failure_reason``), ``DELETE /generations/{id}``
(empty body; the generation is gone afterwards) and ``GET /credits``.

UNVERIFIED against the live service (the reference could not confirm them): the error
body shape (FastAPI-style ``{"detail": ...}``), status codes 201/204, rejecting unknown
body fields, rate-limit headers on 429, whether a data URI is refused as an image URL.
``callback_url``: remembered at create; ``finish()`` / ``send_callback()`` POST the
Generation object there (Luma POSTs it on dreaming, completed and failed). Luma
documents no signature on callbacks.

Not covered: modify/reframe/upscale/audio, concepts, list.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError, is_http_url

API_KEY = "luma-test-key"
BASE_PATH = "/dream-machine/v1"
DEPLOYMENT: dict[str, Any] = {
    "provider": "luma",
    "credentials": {"api_key": API_KEY},
    "options": {"poll_s": 0.1},
}
UPSTREAM_MODEL = "ray-2"
SUPPORTS_IMAGE = True  # needs deps.input_url (VIDGATE_PUBLIC_BASE_URL)
SUPPORTS_CANCEL = True
# The fake hands out the current URL on every read; whether Luma does is UNVERIFIED.
REFRESHES_URLS = True
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("internal", "Job failed due to an internal error")
CONTENT_REFUSAL = ("moderation", "400: prompt failed moderation")

MODELS = {"ray-2", "ray-flash-2"}
DURATIONS = {"5s", "9s"}
RESOLUTIONS = {"540p", "720p", "1080p", "4k"}
ASPECT_RATIOS = {"1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"}
_FIELDS = {
    "model",
    "prompt",
    "aspect_ratio",
    "duration",
    "resolution",
    "loop",
    "concepts",
    "generation_type",
    "keyframes",
    "callback_url",
}
_STATES = {
    "queued": "queued",
    "running": "dreaming",
    "succeeded": "completed",
    "failed": "failed",
}


def _detail(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _invalid(loc: list[str], msg: str) -> JSONResponse:
    return _detail(422, [{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


class FakeLuma(FakeUpstream):
    name = "luma"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.deleted: set[str] = set()
        self.auth_failures = 0
        self.reads = 0
        # Downloads refused because the URL had expired (the adapter must then re-read).
        self.expired_downloads = 0

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        merged = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            return InjectedError(
                429, {"detail": "Too many requests"}, {"retry-after": "1", **merged}
            )
        if status == 401:
            return InjectedError(401, {"detail": "Invalid API key"}, merged)
        return InjectedError(status, {"detail": f"injected {status}"}, merged)

    def routes(self) -> list[Route]:
        p = BASE_PATH
        return [
            Route(f"{p}/generations/video", self._create, methods=["POST"]),
            Route(f"{p}/generations/{{id}}", self._get, methods=["GET"]),
            Route(f"{p}/generations/{{id}}", self._delete, methods=["DELETE"]),
            Route(f"{p}/credits", self._credits, methods=["GET"]),
        ]

    # --- helpers -------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if request.headers.get("authorization") == f"Bearer {API_KEY}":
            return True
        self.auth_failures += 1
        return False

    def _unauthorized(self) -> Response:
        # Never echo the key that was sent.
        return _detail(401, "Invalid API key")

    def _generation(self, task: FakeTask) -> dict[str, Any]:
        state = _STATES.get(task.state, "failed")
        video = self.result_url(task) if task.state == "succeeded" else None
        return {
            "id": task.id,
            "generation_type": "video",
            "state": state,
            "failure_reason": task.error_message if task.state == "failed" else None,
            "created_at": dt.datetime.fromtimestamp(task.created_at, dt.UTC).isoformat(),
            "model": task.request.get("model"),
            "request": task.request,
            "assets": {"video": video, "image": None, "progress_video": None}
            if state != "queued"
            else None,
        }

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        return self._generation(task)

    def _check_keyframe(self, name: str, frame: Any) -> Response | None:
        if not isinstance(frame, dict):
            return _invalid(["keyframes", name], "must be an object")
        kind = frame.get("type")
        fields = {"image": {"type", "url"}, "generation": {"type", "id"}}.get(str(kind))
        if fields is not None and set(frame) != fields:
            return _invalid(["keyframes", name], f"must have exactly {', '.join(sorted(fields))}")
        if kind == "image":
            url = frame.get("url")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                return _invalid(["keyframes", name, "url"], "must be an http(s) URL")
            return None
        if kind == "generation":
            source = self.tasks.get(str(frame.get("id")))
            if source is None or source.id in self.deleted:
                return _detail(400, f"generation {frame.get('id')} not found")
            if source.state != "succeeded":
                return _detail(400, "only a completed generation can be extended")
            return None
        return _invalid(["keyframes", name, "type"], "must be 'image' or 'generation'")

    def _validate(self, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return _invalid([], "must be a JSON object")
        extra = sorted(set(body) - _FIELDS)
        if extra:
            return _invalid([extra[0]], "extra fields not permitted")
        checks: list[tuple[str, set[str], bool]] = [
            ("model", MODELS, True),
            ("duration", DURATIONS, False),
            ("resolution", RESOLUTIONS, False),
            ("aspect_ratio", ASPECT_RATIOS, False),
        ]
        for field, allowed, required in checks:
            value = body.get(field)
            if value is None and not required:
                continue
            if value not in allowed:
                return _invalid([field], f"must be one of {', '.join(sorted(allowed))}")
        if "prompt" in body and not isinstance(body["prompt"], str):
            return _invalid(["prompt"], "must be a string")
        if "callback_url" in body and not is_http_url(body["callback_url"]):
            return _invalid(["callback_url"], "must be an http(s) URL")
        if body.get("generation_type", "video") != "video":
            return _invalid(["generation_type"], "must be 'video'")
        keyframes = body.get("keyframes")
        if keyframes is not None:
            if not isinstance(keyframes, dict) or set(keyframes) - {"frame0", "frame1"}:
                return _invalid(["keyframes"], "only frame0 and frame1 are allowed")
            for name, frame in keyframes.items():
                refused = self._check_keyframe(name, frame)
                if refused is not None:
                    return refused
        return None

    def _task(self, request: Request) -> FakeTask | None:
        task = self.tasks.get(request.path_params["id"])
        return None if task is None or task.id in self.deleted else task

    async def _serve_file(self, request: Request) -> Response:
        response = await super()._serve_file(request)
        if response.status_code == 403:
            self.expired_downloads += 1
        return response

    # --- endpoints -------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            body = await request.json()
        except ValueError:
            return _detail(400, "invalid JSON body")
        refused = self._validate(body)
        if refused is not None:
            return refused
        self.requests.append(body)
        task = self.accept(body, task_id=str(uuid.uuid4()))
        if body.get("callback_url"):
            self.remember_callback(task, body["callback_url"])
        return JSONResponse(self._generation(task), status_code=201)

    async def _get(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.reads += 1
        task = self._task(request)
        if task is None:
            return _detail(404, "Generation not found")
        return JSONResponse(self._generation(self.advance(task)))

    async def _delete(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        task = self._task(request)
        if task is None:
            return _detail(404, "Generation not found")
        self.cancel(task)
        self.deleted.add(task.id)
        return Response(status_code=204)

    async def _credits(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        return JSONResponse({"credit_balance": 100000})
