"""A fake MiniMax Hailuo video API (reference section 8): Bearer auth, business errors
on HTTP 200 in ``base_resp``, ``POST /v1/video_generation`` validated like the real API,
``GET /v1/query/video_generation`` moving ``Queueing -> Processing -> Success | Fail``
with a ``file_id``, and ``GET /v1/files/retrieve`` handing out a fresh ``download_url``
each time (the real one lasts 9 hours).

Frames and subjects (section 8): ``last_frame_image`` follows the first frame's rules, is
taken by ``MiniMax-Hailuo-02`` alone (the only model listed with first+last frame) and
needs ``first_frame_image``; ``subject_reference`` is ``[{type: "character", image:
[url]}]``, one subject, for ``S2V-01`` alone (which needs it). That the real API refuses
these elsewhere rather than ignoring them is UNVERIFIED (the fake refuses, so a dropped
input shows); the 2013 wording is the fake's own.

Fake-only guesses, marked UNVERIFIED in the reference: 1026 for a refused prompt, 2013
for invalid parameters and unknown ids, where a failed task's reason is (``base_resp``
of the query), and 2049 for a wrong key (seen in GitHub issues).

Callbacks (section 8): a create with ``callback_url`` is answered at once, and the URL
is then validated as MiniMax does: the fake POSTs ``{"challenge": X}`` and expects
``{"challenge": X}`` back within 3 s (``challenges`` records whether it came back).
Only a validated URL gets callbacks: ``finish()`` / ``send_callback()`` POST the
query-shaped body with the lowercase ``status`` the docs' text uses (``processing`` |
``success`` | ``failed``). Whether the real challenge comes before or after the create
answer is not documented.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import secrets
import time
from typing import Any

import httpx
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError, is_http_url

API_KEY = "minimax-test-key"
DEPLOYMENT: dict[str, Any] = {
    "provider": "minimax",
    "credentials": {"api_key": API_KEY},
    "options": {},
}
UPSTREAM_MODEL = "MiniMax-Hailuo-02"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = False
REFRESHES_URLS = True
SECONDS = 6
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("1024", "internal error")
CONTENT_REFUSAL = ("1027", "output new_sensitive")

MODELS = {
    "MiniMax-Hailuo-2.3",
    "MiniMax-Hailuo-2.3-Fast",
    "MiniMax-Hailuo-02",
    "T2V-01-Director",
    "T2V-01",
    "I2V-01-Director",
    "I2V-01",
    "I2V-01-live",
    "S2V-01",
}
LAST_FRAME_MODELS = {"MiniMax-Hailuo-02"}
# A prompt with one of these is refused like MiniMax's input check would (1026).
BLOCKED_WORDS = ("forbidden",)

_STATUS = {"queued": "Queueing", "running": "Processing", "succeeded": "Success"}
# Callbacks spell the status in lower case (section 8).
_CALLBACK_STATUS = {
    "queued": "processing",
    "running": "processing",
    "succeeded": "success",
    "failed": "failed",
    "cancelled": "failed",
}
CHALLENGE_TIMEOUT_S = 3.0
# HTTP status -> (HTTP status sent, status_code, status_msg) for injected errors: most
# ride on HTTP 200 (errorcode.md); server failures also come as real 5xx.
_INJECTED = {
    400: (200, 2013, "invalid params"),
    401: (200, 1004, "login fail: Please carry the API secret key in the 'Authorization' field"),
    403: (200, 1004, "login fail: Please carry the API secret key in the 'Authorization' field"),
    422: (200, 2013, "invalid params"),
    429: (200, 1002, "rate limit exceeded(RPM)"),
}


def _invalid_subject(model: str, subject: Any) -> str | None:
    if model != "S2V-01":
        if subject is not None:
            return f"invalid params, model {model} does not support subject_reference"
        return None
    if not isinstance(subject, list) or len(subject) != 1 or not isinstance(subject[0], dict):
        return "invalid params, subject_reference must hold exactly one subject"
    item = subject[0]
    images = item.get("image")
    if item.get("type") != "character" or not isinstance(images, list) or len(images) != 1:
        return 'invalid params, subject_reference needs type "character" and one image'
    problem = image_problem(images[0]) if isinstance(images[0], str) else "must be a string"
    return f"invalid params, subject_reference image {problem}" if problem else None


def _ok() -> dict[str, Any]:
    return {"status_code": 0, "status_msg": "success"}


def image_problem(value: str) -> str | None:
    """The first-frame rules (fl2v page): a public URL or a base64 data URL of a
    JPG/PNG/WebP under 20 MB, short side over 300 px, aspect ratio 2:5 to 5:2."""
    if value.startswith(("http://", "https://")):
        return None
    head, sep, payload = value.partition(";base64,")
    if not sep or not head.startswith("data:image/"):
        return "must be a URL or a base64 data URL"
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except (ValueError, binascii.Error, OSError):
        return "is not a readable image"
    if fmt not in ("JPEG", "PNG", "WEBP") or len(data) >= 20 * 1024 * 1024:
        return "must be a JPG, PNG or WebP under 20MB"
    if min(width, height) <= 300 or not 2 / 5 <= width / height <= 5 / 2:
        return "needs a short side over 300px and an aspect ratio from 2:5 to 5:2"
    return None


class FakeMiniMax(FakeUpstream):
    name = "minimax"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.queries = 0
        self.retrieves = 0
        self.files: dict[str, str] = {}  # file_id -> task id
        # Task id -> whether its callback URL echoed the challenge (absent until known).
        self.challenges: dict[str, bool] = {}
        self._handshakes: set[asyncio.Task[None]] = set()

    # --- controls ----------------------------------------------------------------

    def fail_next_with_code(
        self, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        """The next create answers HTTP 200 with ``base_resp.status_code`` = ``code``."""
        self._next_create_errors.append(
            InjectedError(
                200, {"task_id": "", "base_resp": self._resp(code, message)}, headers or {}
            )
        )

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        sent, code, message = _INJECTED.get(status, (status, 1000, "unknown error"))
        # MiniMax documents no Retry-After; a test may add one through ``headers``.
        return InjectedError(sent, {"task_id": "", "base_resp": self._resp(code, message)}, headers)

    # --- callbacks ---------------------------------------------------------------

    async def _handshake(self, task_id: str, url: str) -> None:
        challenge = secrets.token_urlsafe(16)
        try:
            async with httpx.AsyncClient(timeout=CHALLENGE_TIMEOUT_S) as client:
                response = await client.post(url, json={"challenge": challenge})
            echoed = response.status_code == 200 and response.json() == {"challenge": challenge}
        except (httpx.HTTPError, ValueError):
            echoed = False
        self.challenges[task_id] = echoed

    def callback_wanted(self, task: FakeTask) -> bool:
        # The handshake runs beside the create answer: wait for its outcome.
        deadline = time.monotonic() + CHALLENGE_TIMEOUT_S + 1
        while task.id not in self.challenges and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.challenges.get(task.id, False)

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        body = self._query_body(task)
        body["status"] = _CALLBACK_STATUS[task.state]
        return body

    # --- rendering ---------------------------------------------------------------

    @staticmethod
    def _resp(code: int, message: str) -> dict[str, Any]:
        return {"status_code": code, "status_msg": message}

    def _refuse(self, code: int, message: str, **fields: Any) -> JSONResponse:
        return JSONResponse({**fields, "base_resp": self._resp(code, message)})

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if not header or not header.startswith("Bearer "):
            return self._refuse(
                1004,
                "login fail: Please carry the API secret key in the 'Authorization' field"
                " of the request header",
            )
        if header != f"Bearer {API_KEY}":
            return self._refuse(2049, "invalid api key")
        return None

    def _file_id(self, task: FakeTask) -> str:
        file_id = task.request.setdefault("_file_id", str(300_000_000_000 + len(self.files)))
        self.files[file_id] = task.id
        return str(file_id)

    def _query_body(self, task: FakeTask) -> dict[str, Any]:
        body: dict[str, Any] = {"task_id": task.id, "base_resp": _ok()}
        if task.state in ("failed", "cancelled"):
            # UNVERIFIED: the failure reason in the query's base_resp.
            code = task.error_code or "1000"
            body["status"] = "Fail"
            body["file_id"] = ""
            body["base_resp"] = self._resp(
                int(code) if code.isdigit() else 1000, task.error_message or "task failed"
            )
            return body
        body["status"] = _STATUS[task.state]
        body["file_id"] = self._file_id(task) if task.state == "succeeded" else ""
        if task.state == "succeeded":
            resolution = task.request.get("resolution", "768P")
            body["video_width"], body["video_height"] = (
                (1920, 1080) if resolution == "1080P" else (1366, 768)
            )
        return body

    # --- validation --------------------------------------------------------------

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        model = body.get("model")
        if model not in MODELS:
            return f"invalid params, model {model!r} is not supported"
        prompt = body.get("prompt")
        image = body.get("first_frame_image")
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 2000):
            return "invalid params, prompt must be a string of at most 2000 characters"
        if not image and not prompt:
            return "invalid params, prompt is required"
        duration = body.get("duration", 6)
        if not isinstance(duration, int) or isinstance(duration, bool) or duration not in (6, 10):
            return "invalid params, duration must be 6 or 10"
        resolution = body.get("resolution", "768P")
        if resolution not in ("512P", "768P", "1080P"):
            return "invalid params, resolution must be 768P or 1080P"
        if resolution == "1080P" and duration != 6:
            return "invalid params, 1080P supports 6s only"
        needs_image = str(model).startswith("I2V-") or str(model).endswith("-Fast")
        if needs_image and not image:
            return "invalid params, first_frame_image is required"
        if "callback_url" in body and not is_http_url(body["callback_url"]):
            return "invalid params, callback_url must be an http(s) URL"
        for field in ("first_frame_image", "last_frame_image"):
            value = body.get(field)
            if value is None:
                continue
            problem = image_problem(value) if isinstance(value, str) else "must be a string"
            if problem is not None:
                return f"invalid params, {field} {problem}"
        if "last_frame_image" in body:
            if model not in LAST_FRAME_MODELS:
                return f"invalid params, model {model} does not support last_frame_image"
            if not image:
                return "invalid params, last_frame_image requires first_frame_image"
        return _invalid_subject(str(model), body.get("subject_reference"))

    # --- endpoints ---------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        refusal = self._auth(request)
        if refusal is not None:
            return refusal
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(2013, "invalid params, body is not JSON", task_id="")
        if not isinstance(body, dict):
            return self._refuse(2013, "invalid params, body is not an object", task_id="")
        problem = self._invalid(body)
        if problem is not None:
            return self._refuse(2013, problem, task_id="")
        if any(word in str(body.get("prompt", "")).lower() for word in BLOCKED_WORDS):
            return self._refuse(1026, "input new_sensitive", task_id="")
        self.requests.append(body)
        task = self.accept(dict(body), task_id=str(360_000_000_000_000 + secrets.randbelow(10**12)))
        if body.get("callback_url"):
            self.remember_callback(task, body["callback_url"])
            handshake = asyncio.create_task(self._handshake(task.id, body["callback_url"]))
            self._handshakes.add(handshake)
            handshake.add_done_callback(self._handshakes.discard)
        return JSONResponse({"task_id": task.id, "base_resp": _ok()})

    async def query(self, request: Request) -> Response:
        refusal = self._auth(request)
        if refusal is not None:
            return refusal
        self.queries += 1
        task = self.tasks.get(request.query_params.get("task_id", ""))
        if task is None:
            return self._refuse(2013, "invalid params, task not found", task_id="", status="")
        self.advance(task)
        return JSONResponse(self._query_body(task))

    async def retrieve(self, request: Request) -> Response:
        refusal = self._auth(request)
        if refusal is not None:
            return refusal
        self.retrieves += 1
        file_id = request.query_params.get("file_id", "")
        task = self.tasks.get(self.files.get(file_id, ""))
        if task is None:
            return self._refuse(2013, "invalid params, file not found")
        return JSONResponse(
            {
                "file": {
                    "file_id": int(file_id),
                    "bytes": len(self.video),
                    "created_at": int(time.time()),
                    "filename": "output.mp4",
                    "purpose": "video_generation",
                    # The current pre-signed link: after refresh_urls() a new one, while
                    # links handed out before stop working (with expire_urls).
                    "download_url": self.result_url(task),
                },
                "base_resp": _ok(),
            }
        )

    def routes(self) -> list[Route]:
        return [
            Route("/v1/video_generation", self.create, methods=["POST"]),
            Route("/v1/query/video_generation", self.query, methods=["GET"]),
            Route("/v1/files/retrieve", self.retrieve, methods=["GET"]),
        ]
