"""A fake OpenAI Videos API (``/v1/videos``), as the official SDK and its docs describe it
(reference section 1): multipart create, ``openai-poll-after-ms``, ``/content`` only
once completed, OpenAI error bodies and rate-limit headers. An ``input_reference``
image must be exactly the requested ``size``, as the API enforced (reference 11)."""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError

API_KEY = "sk-test-openai-videos"
DEPLOYMENT: dict[str, Any] = {"provider": "openai_videos", "credentials": {"api_key": API_KEY}}
UPSTREAM_MODEL = "sora-2"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = True
REFRESHES_URLS = False
SECONDS = 4
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("server_error", "The server had an error while processing your request.")
CONTENT_REFUSAL = ("moderation_blocked", "Your request was blocked by our moderation system.")
# Where the API lives under the fake server (the deployment's base_url).
BASE_PATH = "/v1"

_STATUS = {
    "queued": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
}


def _error(
    status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


class FakeOpenAIVideos(FakeUpstream):
    name = "openai_videos"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.idempotency: dict[str, str] = {}

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        if status == 429:
            headers = {"retry-after": "1", "x-ratelimit-remaining-requests": "0", **headers}
            return InjectedError(
                429,
                {
                    "error": {
                        "message": "Rate limit reached",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                headers,
            )
        return InjectedError(
            status,
            {
                "error": {
                    "message": f"injected {status}",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            },
            headers,
        )

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {API_KEY}"

    def _video(self, task: FakeTask) -> dict[str, Any]:
        status = _STATUS[task.state]
        error = None
        if task.state == "failed":
            error = {"code": task.error_code, "message": task.error_message}
        elif task.state == "cancelled":
            error = {"code": "cancelled", "message": "cancelled"}
        return {
            "id": task.id,
            "object": "video",
            "model": task.request.get("model", "sora-2"),
            "status": status,
            "progress": {"queued": 0, "in_progress": 50}.get(status, 100),
            "created_at": int(task.created_at),
            "completed_at": int(time.time()) if status in ("completed", "failed") else None,
            "expires_at": int(task.created_at) + 3600,
            "prompt": task.request.get("prompt"),
            "seconds": task.request.get("seconds", "4"),
            "size": task.request.get("size", "720x1280"),
            "remixed_from_video_id": task.request.get("remixed_from_video_id"),
            "error": error,
        }

    async def create(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        injected = self.check_create()
        if injected is not None:
            return injected
        key = request.headers.get("idempotency-key")
        if key and key in self.idempotency:
            return JSONResponse(self._video(self.tasks[self.idempotency[key]]))
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _error(400, "Expected multipart/form-data", "invalid_request_error", None)
        async with request.form() as form:
            fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
            upload = form.get("input_reference")
            if upload is not None and not isinstance(upload, str):
                data = await upload.read()
                fields["input_reference"] = {
                    "content_type": upload.content_type,
                    "size": len(data),
                    "dimensions": _dimensions(data),
                }
        if not fields.get("prompt"):
            return _error(
                400,
                "Missing required parameter: 'prompt'.",
                "invalid_request_error",
                "missing_required_parameter",
            )
        if fields.get("seconds") not in (None, "4", "8", "12"):
            return _error(
                400,
                f"Invalid value: '{fields['seconds']}'. Supported values are: '4', '8', and '12'.",
                "invalid_request_error",
                "invalid_value",
            )
        reference = fields.get("input_reference")
        size = fields.get("size", "720x1280")
        if reference is not None and reference["dimensions"] != size:
            return _error(
                400,
                "Inpaint image must match the requested width and height",
                "invalid_request_error",
                "invalid_value",
            )
        self.requests.append(fields)
        task = self.accept(fields, task_id=f"video_{len(self.tasks) + 1:04d}")
        if key:
            self.idempotency[key] = task.id
        return JSONResponse(self._video(task))

    async def retrieve(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        task = self.tasks.get(request.path_params["video_id"])
        if task is None:
            return _error(404, "Video not found", "invalid_request_error", "not_found")
        self.advance(task)
        headers = (
            {}
            if task.state in ("succeeded", "failed", "cancelled")
            else {"openai-poll-after-ms": "200"}
        )
        return JSONResponse(self._video(task), headers=headers)

    async def content(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        task = self.tasks.get(request.path_params["video_id"])
        if task is None or task.state != "succeeded":
            return _error(404, "Video content not found", "invalid_request_error", "not_found")
        if self.expire_urls:
            return _error(404, "Video content has expired", "invalid_request_error", "expired")
        self.downloads += 1
        return Response(self.video_of(task), media_type="video/mp4")

    async def delete(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        task = self.tasks.get(request.path_params["video_id"])
        if task is None:
            return _error(404, "Video not found", "invalid_request_error", "not_found")
        self.cancel(task)
        return JSONResponse({"id": task.id, "object": "video.deleted", "deleted": True})

    async def remix(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(
                401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"
            )
        injected = self.check_create()
        if injected is not None:
            return injected
        source = self.tasks.get(request.path_params["video_id"])
        if source is None or source.state != "succeeded":
            return _error(
                400, "Video is not ready to remix", "invalid_request_error", "invalid_value"
            )
        body = await request.json()
        fields = {
            **source.request,
            "prompt": body.get("prompt"),
            "remixed_from_video_id": source.id,
        }
        self.requests.append(fields)
        return JSONResponse(
            self._video(self.accept(fields, task_id=f"video_{len(self.tasks) + 1:04d}"))
        )

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.create, methods=["POST"]),
            Route("/v1/videos/{video_id}", self.retrieve, methods=["GET"]),
            Route("/v1/videos/{video_id}", self.delete, methods=["DELETE"]),
            Route("/v1/videos/{video_id}/content", self.content, methods=["GET"]),
            Route("/v1/videos/{video_id}/remix", self.remix, methods=["POST"]),
        ]


def _dimensions(data: bytes) -> str | None:
    """``"WxH"`` of an uploaded image; None if it is not one."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"{image.width}x{image.height}"
    except (UnidentifiedImageError, OSError):
        return None
