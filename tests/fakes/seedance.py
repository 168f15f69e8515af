"""A fake BytePlus ModelArk video-generation API (reference section 9).

- ``POST /contents/generations/tasks``: Bearer auth; checks ``model``, ``content``
  (text, ``image_url`` with role first_frame | last_frame | reference_image, as an
  https URL or a base64 ``data:image/...`` URI), ``resolution``, ``ratio``,
  ``duration`` (an integer; 1.x 2-12 s, 2.0 4-15 s or -1), ``frames`` (exclusive with
  duration), ``seed``, ``service_tier``, ``execution_expires_after``; answers ``{id}``.
- ``image_url`` roles per model: at most one first_frame and one last_frame, and a
  last_frame needs a first_frame; reference_image 1-4 on lite-i2v, up to 9 on 2.0
  (section 9), none elsewhere, and never beside a first or last frame. The last-frame
  models (``LAST_FRAME_MODELS``) and the no-mixing rule are UNVERIFIED (the reference
  names the roles, not the models); an ``ep-`` endpoint id is not checked per model.
- ``GET /contents/generations/tasks/{id}``: ``queued`` -> ``running`` -> ``succeeded``
  with ``content.video_url`` and ``usage``; ``failed`` with ``error{code,message}``;
  ``expired`` when ``expire_tasks`` is set; no progress field.
- ``DELETE /contents/generations/tasks/{id}``: queued -> cancelled; succeeded, failed,
  expired -> record deleted; running and cancelled are refused. Empty 200.

``video_url`` is fixed per task and valid 24 h from generation. ``expire_urls`` means
those 24 h have passed: every result URL answers 403 and no read hands out a new one.
Whether a later read re-signs the URL is UNVERIFIED: ``resign_urls`` models an API that
does (each read signs a fresh URL; with ``expire_urls``, the ones handed out before
``refresh_urls()`` stop working).

Error codes and ``type`` values follow Ark's ``{"error": {"code", "message", "param",
"type"}}`` shape; the codes are from third-party sources (AuthenticationError,
InvalidParameter, InvalidEndpointOrModel.NotFound, RateLimitExceeded.*,
InternalServiceError, ServerOverloaded) and the rest, including which HTTP status a
refused DELETE gets and whether unknown fields are refused, are UNVERIFIED.

``callback_url``: remembered at create; ``finish()`` / ``send_callback()`` POST the task
object there (section 9: "POST of the task object on status change"; the exact payload
and any signing are UNVERIFIED).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError, is_http_url
from vidgate.core.spec import dimensions

API_KEY = "ark-test-key-0123456789"
# Where the API lives on the host, as on ark.ap-southeast.bytepluses.com.
BASE_PATH = "/api/v3"
DEPLOYMENT: dict[str, Any] = {
    "provider": "seedance",
    "credentials": {"api_key": API_KEY},
    "options": {},
}
UPSTREAM_MODEL = "seedance-1-0-pro-250528"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = True
REFRESHES_URLS = False
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = (
    "InternalServiceError",
    "The service encountered an unexpected internal error.",
)
CONTENT_REFUSAL = (
    "OutputVideoSensitiveContentDetected",
    "The request failed because the output video may contain sensitive information.",
)

MODELS = {
    "seedance-1-0-pro-250528",
    "seedance-1-0-pro-fast-251015",
    "seedance-1-0-lite-t2v-250428",
    "seedance-1-0-lite-i2v-250428",
    "seedance-1-5-pro-251215",
    "dreamina-seedance-2-0-260128",
}
# UNVERIFIED: which models take role last_frame (section 9 does not say).
LAST_FRAME_MODELS = {
    "seedance-1-0-pro-250528",
    "seedance-1-0-lite-i2v-250428",
    "seedance-1-5-pro-251215",
    "dreamina-seedance-2-0-260128",
}
# role reference_image: lite-i2v 1-4, Seedance 2.0 up to 9 (section 9); others none.
MAX_REFERENCE_IMAGES = {"seedance-1-0-lite-i2v-250428": 4, "dreamina-seedance-2-0-260128": 9}
_RESOLUTIONS = {"480p", "720p", "1080p"}
_RATIOS = {"16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"}
_ROLES = {"first_frame", "last_frame", "reference_image"}
_TOP_LEVEL = {
    "model",
    "content",
    "resolution",
    "ratio",
    "duration",
    "frames",
    "seed",
    "camera_fixed",
    "watermark",
    "generate_audio",
    "draft",
    "return_last_frame",
    "service_tier",
    "execution_expires_after",
    "callback_url",
}
_DATA_URI = re.compile(r"data:image/(png|jpeg|jpg|webp|bmp|tiff|gif|heic|heif);base64,(.+)", re.S)
_ERROR_TYPES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}


def ark_error(
    status: int, code: str, message: str, param: str = "", headers: dict[str, str] | None = None
) -> InjectedError:
    request_id = secrets.token_hex(16)
    body = {
        "error": {
            "code": code,
            "message": f"{message} Request id: {request_id}",
            "param": param,
            "type": _ERROR_TYPES.get(status, "InternalServerError"),
        }
    }
    return InjectedError(status, body, headers or {})


class _Invalid(Exception):
    def __init__(self, param: str, why: str) -> None:
        super().__init__(why)
        self.param = param
        self.why = why


class FakeSeedance(FakeUpstream):
    name = "seedance"

    def __init__(self) -> None:
        super().__init__()
        self.api_key = API_KEY
        self.resign_urls = False
        self.expire_tasks = False
        self.deleted: set[str] = set()
        self.last_body: dict[str, Any] | None = None
        self.reads = 0
        self.expired_downloads = 0
        self._pinned: dict[str, str] = {}

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        if status == 401:
            return self._unauthorized(headers)
        if status == 429:
            # UNVERIFIED whether Ark sends Retry-After; tests pass it explicitly.
            return ark_error(
                429,
                "RateLimitExceeded.EndpointRPMExceeded",
                "The request has exceeded the RPM rate limit of the endpoint.",
                headers=headers,
            )
        if status == 503:
            return ark_error(503, "ServerOverloaded", "The service is overloaded.", headers=headers)
        if status >= 500:
            return ark_error(
                status, "InternalServiceError", "The service encountered an error.", headers=headers
            )
        return ark_error(status, "InvalidParameter", f"Injected error {status}.", headers=headers)

    def _unauthorized(self, headers: dict[str, str] | None = None) -> InjectedError:
        return ark_error(
            401,
            "AuthenticationError",
            "The API key or AK/SK in the request is missing or invalid.",
            headers=headers,
        )

    def _auth(self, request: Request) -> Response | None:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or secret.strip() != self.api_key:
            return self._unauthorized().response()
        return None

    def advance(self, task: FakeTask) -> FakeTask:
        if self.expire_tasks and task.state in ("queued", "running"):
            task.state = "expired"  # not run within execution_expires_after
            return task
        return super().advance(task)

    def routes(self) -> list[Route]:
        return [
            Route(f"{BASE_PATH}/contents/generations/tasks", self._create, methods=["POST"]),
            Route(f"{BASE_PATH}/contents/generations/tasks", self._list, methods=["GET"]),
            Route(
                f"{BASE_PATH}/contents/generations/tasks/{{task_id}}", self._get, methods=["GET"]
            ),
            Route(
                f"{BASE_PATH}/contents/generations/tasks/{{task_id}}",
                self._delete,
                methods=["DELETE"],
            ),
        ]

    # --- create ----------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            body = json.loads(await request.body())
        except ValueError:
            return ark_error(400, "InvalidParameter", "The request body is not JSON.").response()
        if not isinstance(body, dict):
            return ark_error(400, "InvalidParameter", "The request body is invalid.").response()
        self.last_body = body
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._invalid(_Invalid("model", "model is required"))
        if model not in MODELS and not model.startswith("ep-"):
            return ark_error(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {model} does not exist or you do not have access to it.",
            ).response()
        try:
            _check(body, model)
        except _Invalid as exc:
            return self._invalid(exc)
        stamp = time.strftime("%Y%m%d%H%M%S")
        task = self.accept(body, task_id=f"cgt-{stamp}-{secrets.token_hex(3)}")
        if body.get("callback_url"):
            self.remember_callback(task, body["callback_url"])
        return JSONResponse({"id": task.id})

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        return self._render(task)

    def _invalid(self, exc: _Invalid) -> Response:
        message = f"The parameter `{exc.param}` specified in the request is not valid: {exc.why}."
        return ark_error(400, "InvalidParameter", message, param=exc.param).response()

    # --- status ----------------------------------------------------------------

    def _find(self, request: Request) -> FakeTask | None:
        task = self.tasks.get(request.path_params["task_id"])
        return None if task is None or task.id in self.deleted else task

    def _not_found(self, task_id: str) -> Response:
        return ark_error(
            404, "ResourceNotFound", f"The specified task {task_id} is not found."
        ).response()

    async def _list(self, request: Request) -> Response:
        """``GET /contents/generations/tasks?page_num=&page_size=``: ``{items, total}``,
        newest first (filters not covered)."""
        denied = self._auth(request)
        if denied is not None:
            return denied
        size = int(request.query_params.get("page_size") or 10)
        page = int(request.query_params.get("page_num") or 1)
        tasks = list(reversed(self.tasks.values()))
        items = [self._render(t) for t in tasks[(page - 1) * size : page * size]]
        return JSONResponse({"items": items, "total": len(tasks)})

    async def _get(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        self.reads += 1
        task = self._find(request)
        if task is None:
            return self._not_found(request.path_params["task_id"])
        return JSONResponse(self._render(self.advance(task)))

    def _render(self, task: FakeTask) -> dict[str, Any]:
        body = task.request
        ratio = body.get("ratio", "16:9")
        ratio = "16:9" if ratio == "adaptive" else ratio
        resolution = body.get("resolution", "1080p")
        duration = body.get("duration", 5)
        seed = body.get("seed", -1)
        view: dict[str, Any] = {
            "id": task.id,
            "model": body["model"],
            "status": task.state,
            "error": None,
            "created_at": int(task.created_at),
            "updated_at": int(time.time()),
            "seed": seed if seed != -1 else 1 + int(task.url_token[:6], 16),
            "resolution": resolution,
            "ratio": ratio,
            "duration": duration,
            "framespersecond": 24,
            "service_tier": body.get("service_tier", "default"),
            "execution_expires_after": body.get("execution_expires_after", 172800),
        }
        if task.state == "failed":
            view["error"] = {"code": task.error_code, "message": task.error_message}
        if task.state == "succeeded":
            if self.resign_urls:
                url = self.result_url(task)
            else:
                url = self._pinned.setdefault(task.id, self.result_url(task))
            width, height = dimensions(resolution, ratio)
            # Section 9 pricing: tokens ~ width x height x fps x duration / 1024.
            tokens = width * height * 24 * duration // 1024
            view["content"] = {"video_url": url}
            view["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        return view

    async def _serve_file(self, request: Request) -> Response:
        if self.expire_urls and not self.resign_urls:
            self.expired_downloads += 1
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                status_code=403,
            )
        return await super()._serve_file(request)

    # --- cancel / delete -----------------------------------------------------------

    async def _delete(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        task = self._find(request)
        if task is None:
            return self._not_found(request.path_params["task_id"])
        if task.state in ("running", "cancelled"):
            # The documented rule; the status and code of this refusal are UNVERIFIED.
            return ark_error(
                400,
                "InvalidParameter",
                f"The task in {task.state} status cannot be cancelled or deleted.",
                param="id",
            ).response()
        if task.state == "queued":
            self.cancel(task)
        else:  # succeeded, failed, expired: the record is deleted
            self.cancelled.append(task.id)
            self.deleted.add(task.id)
        return Response(status_code=200)


def _check(body: dict[str, Any], model: str) -> None:
    unknown = sorted(set(body) - _TOP_LEVEL)
    if unknown:
        raise _Invalid(unknown[0], "unknown parameter")
    _check_content(body.get("content"), model)
    if "resolution" in body and body["resolution"] not in _RESOLUTIONS:
        raise _Invalid("resolution", f"must be one of {sorted(_RESOLUTIONS)}")
    if "ratio" in body and body["ratio"] not in _RATIOS:
        raise _Invalid("ratio", f"must be one of {sorted(_RATIOS)}")
    if "duration" in body and "frames" in body:
        raise _Invalid("frames", "duration and frames are mutually exclusive")
    if "duration" in body:
        duration = body["duration"]
        low, high = (4, 15) if "seedance-2-0" in model else (2, 12)
        if not _is_int(duration) or not (low <= duration <= high or (duration == -1 and low == 4)):
            raise _Invalid("duration", f"must be an integer in [{low}, {high}]")
    if "frames" in body:
        frames = body["frames"]
        if not _is_int(frames) or not 29 <= frames <= 289 or (frames - 25) % 4:
            raise _Invalid("frames", "must be 25+4n in [29, 289]")
    if "seed" in body and (not _is_int(body["seed"]) or not -1 <= body["seed"] <= 2**32 - 1):
        raise _Invalid("seed", "must be an integer in [-1, 4294967295]")
    for flag in ("camera_fixed", "watermark", "generate_audio", "draft", "return_last_frame"):
        if flag in body and not isinstance(body[flag], bool):
            raise _Invalid(flag, "must be a boolean")
    if body.get("service_tier", "default") not in ("default", "flex"):
        raise _Invalid("service_tier", "must be default or flex")
    if "callback_url" in body and not is_http_url(body["callback_url"]):
        raise _Invalid("callback_url", "must be an http(s) URL")
    expires = body.get("execution_expires_after", 172800)
    if not _is_int(expires) or not 3600 <= expires <= 259200:
        raise _Invalid("execution_expires_after", "must be an integer in [3600, 259200]")


def _check_content(content: Any, model: str) -> None:
    if not isinstance(content, list) or not content:
        raise _Invalid("content", "must be a non-empty list")
    roles: list[str] = []
    texts = 0
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                raise _Invalid("content.text", "must be a non-empty string")
            texts += 1
        elif kind == "image_url":
            image_url = item.get("image_url")
            _check_image_url(image_url.get("url") if isinstance(image_url, dict) else None)
            role = item.get("role", "first_frame")
            if role not in _ROLES:
                raise _Invalid("content.role", f"must be one of {sorted(_ROLES)}")
            roles.append(role)
        elif kind == "video_url" and "seedance-2-0" in model:
            continue
        else:
            raise _Invalid("content.type", f"unsupported content type {kind!r}")
    if texts > 1:
        raise _Invalid("content.text", "at most one text item")
    if not texts and not roles:
        raise _Invalid("content", "needs a text prompt or an image")
    for role in ("first_frame", "last_frame"):
        if roles.count(role) > 1:
            raise _Invalid("content.role", f"at most one {role}")
    if "last_frame" in roles and "first_frame" not in roles:
        raise _Invalid("content.role", "last_frame needs a first_frame")
    if not model.startswith("ep-"):
        _check_roles(roles, model)
    if roles and "-t2v-" in model:
        raise _Invalid("content.image_url", f"{model} does not take images")
    if not roles and "-i2v-" in model:
        raise _Invalid("content.image_url", f"{model} needs an image")


def _check_roles(roles: list[str], model: str) -> None:
    if "last_frame" in roles and model not in LAST_FRAME_MODELS:
        raise _Invalid("content.role", f"{model} does not support role last_frame")
    refs = roles.count("reference_image")
    if not refs:
        return
    limit = MAX_REFERENCE_IMAGES.get(model, 0)
    if not limit:
        raise _Invalid("content.role", f"{model} does not support role reference_image")
    if refs > limit:
        raise _Invalid("content.role", f"{model} takes at most {limit} reference images")
    if {"first_frame", "last_frame"} & set(roles):
        raise _Invalid("content.role", "reference_image cannot be mixed with first or last frames")


def _check_image_url(url: Any) -> None:
    if not isinstance(url, str):
        raise _Invalid("content.image_url.url", "must be a string")
    if url.startswith("https://"):
        return
    match = _DATA_URI.fullmatch(url)
    if match is None:
        raise _Invalid(
            "content.image_url.url", "must be an https URL or data:image/<format>;base64,<data>"
        )
    try:
        base64.b64decode(match[2], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Invalid("content.image_url.url", "invalid base64") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
