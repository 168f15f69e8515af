"""A fake Kling API (reference section 5): HS256 JWT auth checked like the docs say
(401 with 1000-1004), the ``{code, message, request_id, data}`` envelope, text2video /
image2video / video-extend creates validated like the real API, per-kind query paths,
``submitted -> processing -> succeed | failed``, static result URLs that are never
re-issued, and Kling's error codes with their HTTP statuses.

image2video: ``image`` and ``image_tail`` (the last frame) are each a URL or raw base64
with no ``data:`` prefix under the same rules, at least one of them is required, and
``image+image_tail``, the motion masks (``static_mask``/``dynamic_masks``) and
``camera_control`` are mutually exclusive (section 5). The fake's own strictness: an
image field on text2video, and ``image_list`` anywhere but multi-image2video (not
served here), are refused rather than ignored, so a dropped input shows.

Fake-only guesses, marked where the reference calls them UNVERIFIED: the duplicate
``external_task_id`` refusal (400/1201), lookup by ``external_task_id`` on the query
path, 1301 for a prompt refused by the content filter, and the unit counts.

``callback_url``: remembered at create; ``finish()`` / ``send_callback()`` POST the
task's ``data`` object (no envelope) there, as Kling does on each status change. No
signature scheme is documented.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import secrets
import time
import uuid
from typing import Any

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError, is_http_url

ACCESS_KEY = "kling-test-access-key"
SECRET_KEY = "kling-test-secret-key"
DEPLOYMENT: dict[str, Any] = {
    "provider": "kling",
    "credentials": {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
    "options": {},
}
UPSTREAM_MODEL = "kling-v2-master"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = False
REFRESHES_URLS = False
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("x", "Internal server error, please try again later")
CONTENT_REFUSAL = ("risk", "Failure to pass the risk control system")

MODELS = {
    "kling-v1",
    "kling-v1-5",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
}
# A prompt with one of these is refused like Kling's content filter would (1301).
BLOCKED_WORDS = ("forbidden",)

_STATUS = {
    "queued": "submitted",
    "running": "processing",
    "succeeded": "succeed",
    "failed": "failed",
    "cancelled": "failed",
}
# HTTP status -> (code, message) for injected errors [DOC and UNVERIFIED, section 5].
_INJECTED = {
    400: (1201, "Invalid request parameters"),
    401: (1000, "Authentication failed"),
    403: (1000, "Authentication failed"),
    404: (1203, "Requested resource does not exist"),
    429: (1303, "parallel task over resource pack limit"),
    500: (5000, "Server internal error"),
    503: (5001, "Server temporarily unavailable"),
    504: (5002, "Server internal timeout"),
}


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_jwt(authorization: str | None, *, now: float | None = None) -> tuple[int, str] | None:
    """``(code, message)`` of Kling's 401 for a bad Authorization header, else None."""
    if not authorization:
        return 1001, "Authorization is empty"
    scheme, _, token = authorization.partition(" ")
    parts = token.split(".")
    if scheme != "Bearer" or len(parts) != 3:
        return 1002, "Authorization is invalid"
    try:
        header = json.loads(_b64url_decode(parts[0]))
        payload = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error):
        return 1002, "Authorization is invalid"
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return 1002, "Authorization is invalid"
    if not isinstance(payload, dict):
        return 1002, "Authorization is invalid"
    expected = hmac.new(
        SECRET_KEY.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256
    ).digest()
    if payload.get("iss") != ACCESS_KEY or not hmac.compare_digest(signature, expected):
        return 1000, "Authentication failed"
    now = time.time() if now is None else now
    exp, nbf = payload.get("exp"), payload.get("nbf")
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        return 1002, "Authorization is invalid"
    if nbf > now:
        return 1003, "Authorization is not yet valid"
    if exp <= now:
        return 1004, "Authorization has expired"
    return None


def image_problem(value: str) -> str | None:
    """Kling's image rules (image2video page): a URL, or raw base64 without a ``data:``
    prefix of a JPG/PNG of at most 10 MB, at least 300 px a side, aspect 1:2.5-2.5:1."""
    if value.startswith(("http://", "https://")):
        return None
    try:
        data = base64.b64decode(value, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            fmt, (width, height) = image.format, image.size
    except (ValueError, binascii.Error, OSError):
        return "image must be a URL or raw base64 without a data: prefix"
    if fmt not in ("JPEG", "PNG") or len(data) > 10 * 1024 * 1024:
        return "image must be a JPG or PNG of at most 10MB"
    if min(width, height) < 300 or not 1 / 2.5 <= width / height <= 2.5:
        return "image must be at least 300px a side with an aspect ratio of 1:2.5 to 2.5:1"
    return None


class FakeKling(FakeUpstream):
    name = "kling"

    def __init__(self) -> None:
        super().__init__()
        # (kind, body) of every accepted create, in order.
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.queries = 0
        self.kinds: dict[str, str] = {}
        self.external: dict[tuple[str, str], str] = {}
        # Per task: the result video {id, url, duration}, fixed once handed out.
        self.results: dict[str, dict[str, str]] = {}

    # --- controls ----------------------------------------------------------------

    def fail_next_with_code(
        self, code: int, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        """The next create answers HTTP ``status`` with Kling ``code``."""
        self._next_create_errors.append(
            InjectedError(status, self._envelope_error(code, message), headers or {})
        )

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        code, message = _INJECTED.get(status, (5000, "Server internal error"))
        # Kling documents no Retry-After; a test may add one through ``headers``.
        return InjectedError(status, self._envelope_error(code, message), headers)

    # --- rendering ---------------------------------------------------------------

    @staticmethod
    def _envelope_error(code: int, message: str) -> dict[str, Any]:
        return {"code": code, "message": message, "request_id": str(uuid.uuid4())}

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse(self._envelope_error(code, message), status_code=status)

    def _ok(self, data: dict[str, Any]) -> JSONResponse:
        return JSONResponse(
            {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}
        )

    def _auth(self, request: Request) -> Response | None:
        refusal = check_jwt(request.headers.get("authorization"))
        return None if refusal is None else self._error(401, *refusal)

    def _result(self, task: FakeTask) -> dict[str, str]:
        # Kling's result links are static CDN URLs kept 30 days: the first one handed out
        # is the only one, so after refresh_urls() (with expire_urls) it stays dead.
        if task.id not in self.results:
            url = self.result_url(task)
            if self.expire_urls:
                # With expiry on from the start, the task is past Kling's 30 days: its
                # link is already dead (the harness refuses a token that is not current).
                url = url.replace(f"/{task.url_token}/", "/expired/")
            self.results[task.id] = {
                "id": str(uuid.uuid4()),
                "url": url,
                "duration": f"{task.request.get('duration', '5')}.042",
            }
        return self.results[task.id]

    def _data(self, task: FakeTask) -> dict[str, Any]:
        millis = int(task.created_at * 1000)
        data: dict[str, Any] = {
            "task_id": task.id,
            "task_status": _STATUS[task.state],
            "task_status_msg": "",
            "task_info": {"external_task_id": task.request.get("external_task_id", "")},
            "created_at": millis,
            "updated_at": int(time.time() * 1000),
        }
        if task.state == "failed":
            data["task_status_msg"] = task.error_message or "task failed"
        elif task.state == "cancelled":
            data["task_status_msg"] = "task cancelled"
        elif task.state == "succeeded":
            data["task_result"] = {"videos": [self._result(task)]}
            # Illustrative only: real unit counts per model/mode are UNVERIFIED.
            units = max(1, int(task.request.get("duration", "5")) // 5)
            data["final_unit_deduction"] = str(
                units * (2 if task.request.get("mode") == "pro" else 1)
            )
        return data

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        return self._data(task)

    # --- validation --------------------------------------------------------------

    def _invalid(self, kind: str, body: dict[str, Any]) -> str | None:
        if "callback_url" in body and not is_http_url(body["callback_url"]):
            return "callback_url must be an http(s) URL"
        if kind == "video-extend":
            video_id = body.get("video_id")
            if not isinstance(video_id, str) or not video_id:
                return "video_id is required"
            if not any(r["id"] == video_id for r in self.results.values()):
                return "video_id does not exist"
            return None
        model = body.get("model_name", "kling-v1")
        if model not in MODELS:
            return f"model_name {model} is invalid"
        prompt = body.get("prompt")
        if kind == "text2video" and (not isinstance(prompt, str) or not prompt.strip()):
            return "prompt is required"
        for field in ("prompt", "negative_prompt"):
            if len(str(body.get(field) or "")) > 2500:
                return f"{field} is longer than 2500 characters"
        duration = body.get("duration", "5")
        allowed = [str(d) for d in range(3, 16)] if model == "kling-v3" else ["5", "10"]
        if not isinstance(duration, str) or duration not in allowed:
            return f"duration must be one of {', '.join(allowed)} (a string)"
        if body.get("mode", "std") not in ("std", "pro"):
            return "mode must be std or pro"
        if kind == "text2video" and body.get("aspect_ratio", "16:9") not in ("16:9", "9:16", "1:1"):
            return "aspect_ratio must be 16:9, 9:16 or 1:1"
        if kind == "text2video":
            for field in ("image", "image_tail", "static_mask", "dynamic_masks"):
                if field in body:
                    return f"{field} is not a text2video parameter; use image2video"
        if "image_list" in body:
            return "image_list is a multi-image2video parameter"
        if kind == "image2video":
            images = [body.get("image"), body.get("image_tail")]
            if not any(images):
                return "image or image_tail is required"
            for field, image in zip(("image", "image_tail"), images, strict=True):
                if image is None:
                    continue
                if not isinstance(image, str) or not image:
                    return f"{field} must be a non-empty string"
                problem = image_problem(image)
                if problem is not None:
                    return problem.replace("image", field, 1)
            both = all(images)
            masks = [f for f in ("static_mask", "dynamic_masks") if body.get(f)]
            with_camera = bool(body.get("camera_control"))
            if sum((both, bool(masks), with_camera)) > 1:
                return (
                    "image+image_tail, static_mask/dynamic_masks and camera_control"
                    " cannot be used together"
                )
        return None

    # --- endpoints ---------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        refusal = self._auth(request)
        if refusal is not None:
            return refusal
        injected = self.check_create()
        if injected is not None:
            return injected
        kind = request.url.path.rsplit("/", 1)[-1]
        try:
            body = await request.json()
        except ValueError:
            return self._error(400, 1200, "Invalid request body")
        if not isinstance(body, dict):
            return self._error(400, 1200, "Invalid request body")
        problem = self._invalid(kind, body)
        if problem is not None:
            return self._error(400, 1201, problem)
        if any(word in str(body.get("prompt", "")).lower() for word in BLOCKED_WORDS):
            # Code and wording UNVERIFIED (reference: 400 with 1301).
            return self._error(400, 1301, "Failure to pass the risk control system")
        external = body.get("external_task_id")
        if external and (kind, external) in self.external:
            # UNVERIFIED: the reference only says external_task_id is unique per account.
            return self._error(400, 1201, "external_task_id already exists")
        self.requests.append((kind, body))
        task = self.accept(body, task_id=str(800_000_000_000 + secrets.randbelow(10**11)))
        self.kinds[task.id] = kind
        if body.get("callback_url"):
            self.remember_callback(task, body["callback_url"])
        if external:
            self.external[(kind, external)] = task.id
        return self._ok(self._data(task))

    async def query(self, request: Request) -> Response:
        refusal = self._auth(request)
        if refusal is not None:
            return refusal
        self.queries += 1
        kind, key = request.path_params["kind"], request.path_params["task_id"]
        # The path takes a task id or an external_task_id [3P].
        task_id = key if self.kinds.get(key) == kind else self.external.get((kind, key))
        task = self.tasks.get(task_id or "")
        if task is None:
            return self._error(400, 1203, "Requested resource does not exist")
        self.advance(task)
        return self._ok(self._data(task))

    async def list_tasks(self, request: Request) -> Response:
        """``GET /v1/videos/{kind}?pageNum=&pageSize=``: the account's tasks of a kind,
        newest first, in the query's ``data`` shape (a list)."""
        refusal = self._auth(request)
        if refusal is not None:
            return refusal
        kind = request.path_params["kind"]
        size = int(request.query_params.get("pageSize") or 30)
        page = int(request.query_params.get("pageNum") or 1)
        mine = [t for t in reversed(self.tasks.values()) if self.kinds.get(t.id) == kind]
        return JSONResponse(
            {
                "code": 0,
                "message": "SUCCEED",
                "request_id": str(uuid.uuid4()),
                "data": [self._data(t) for t in mine[(page - 1) * size : page * size]],
            }
        )

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos/text2video", self.create, methods=["POST"]),
            Route("/v1/videos/image2video", self.create, methods=["POST"]),
            Route("/v1/videos/video-extend", self.create, methods=["POST"]),
            Route("/v1/videos/{kind}", self.list_tasks, methods=["GET"]),
            Route("/v1/videos/{kind}/{task_id}", self.query, methods=["GET"]),
        ]
