"""A fake task-shape upstream: vidgate's own ``/v1/videos/generations`` (docs/api.md).

It validates requests with vidgate's real request model and catalogue
(``CreateGenerationBody``, ``normalize``), so unknown fields, bad durations and
sizes get exactly the 400s a vidgate upstream would send, in the OpenAI error shape.

- ``POST /v1/videos/generations``: Bearer auth, ``Idempotency-Key`` (same key and body:
  the same generation; same key, other body: 409 ``idempotency_key_reused``).
- ``GET /v1/videos/generations/{id}``: ``queued`` -> ``processing`` -> ``completed``
  with one ``data[]`` entry per ``n``, links signed again on every read; failures as
  ``failed`` with ``error: {code, message}``.
- ``DELETE /v1/videos/{id}``: cancels and deletes; the id answers 404 afterwards.
  ``supports_delete = False`` makes it a 405, as on a router without that route.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError
from vidgate.api.inputs import parse_model
from vidgate.api.schemas import CreateGenerationBody
from vidgate.core.catalog import load_catalog
from vidgate.core.errors import (
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    VidgateError,
)
from vidgate.core.spec import ImageRef, JobSpec, VideoRequest, normalize
from vidgate.media.images import inspect_image, parse_data_url

API_KEY = "vg_live_task-api-test-key"
DEPLOYMENT: dict[str, Any] = {
    "provider": "task_api",
    "credentials": {"api_key": API_KEY},
    "options": {},
}
# kling-2.0 in vidgate's catalogue: 5 or 10 s, 720p/1080p, 16:9/9:16/1:1, 24 fps, n <= 4.
UPSTREAM_MODEL = "kling-2.0"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = True
REFRESHES_URLS = True
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("internal_error", "vidgate could not complete the job")
CONTENT_REFUSAL = ("upstream_content_refused", "runway: The prompt was flagged (SAFETY.INPUT.TEXT)")

_CATALOG = load_catalog()
_LINK_TTL_S = 3600


def _error(exc: VidgateError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)


class FakeTaskApi(FakeUpstream):
    name = "task_api"

    def __init__(self) -> None:
        super().__init__()
        self.api_key = API_KEY
        self.supports_delete = True
        self.idempotency: dict[str, tuple[str, str]] = {}  # key -> (fingerprint, task id)
        self.idempotency_keys: list[str | None] = []
        self.deleted: set[str] = set()
        self.last_body: dict[str, Any] | None = None
        self.reads = 0

    # --- the OpenAI error shape, as vidgate's error handlers write it --------------

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        exc: VidgateError
        if status == 401:
            exc = AuthenticationError("invalid API key")
        elif status == 429:
            exc = RateLimited("rate limit reached for requests")
            if not any(name.lower() == "retry-after" for name in headers):
                headers = {**headers, "Retry-After": "1"}
        elif status == 503:
            exc = ServiceUnavailable("no deployment can serve the model right now")
        elif status >= 500:
            exc = VidgateError("internal server error", code="internal_error")
        else:
            exc = InvalidRequest(f"injected {status}", code=f"http_{status}")
        body = exc.to_body()
        return InjectedError(status, body, headers)

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization")
        if not header:
            return _error(
                AuthenticationError(
                    "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
                )
            )
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or secret.strip() != self.api_key:
            return _error(AuthenticationError("invalid API key"))
        return None

    # --- routes ----------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos/generations", self._create, methods=["POST"]),
            Route("/v1/videos/generations/{task_id}", self._get, methods=["GET"]),
            Route("/v1/videos/{task_id}", self._delete, methods=["DELETE"]),
        ]

    async def _create(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            raw = json.loads(await request.body())
        except ValueError:
            return _error(InvalidRequest("the request body is not valid JSON", code="invalid_json"))
        if not isinstance(raw, dict):
            return _error(
                InvalidRequest("the request body must be a JSON object", code="invalid_json")
            )
        self.last_body = raw
        key = request.headers.get("idempotency-key")
        self.idempotency_keys.append(key)
        try:
            spec = self._normalize(raw)
        except VidgateError as exc:
            return _error(exc)
        fingerprint = json.dumps(raw, sort_keys=True)
        if key is not None and key in self.idempotency:
            held, task_id = self.idempotency[key]
            if held != fingerprint:
                return _error(
                    Conflict(
                        "this Idempotency-Key was used with a different request",
                        code="idempotency_key_reused",
                    )
                )
            return JSONResponse(self._render(self.tasks[task_id]))
        task = self.accept(
            {"body": raw, "spec": spec.model_dump(mode="json")},
            task_id=f"video_{secrets.token_hex(10)}",
        )
        if key is not None:
            self.idempotency[key] = (fingerprint, task.id)
        return JSONResponse(self._render(task))

    def _normalize(self, raw: dict[str, Any]) -> JobSpec:
        body = parse_model(CreateGenerationBody, raw)
        if body.model not in _CATALOG:
            raise NotFound(f"model {body.model!r} not found", code="model_not_found")
        image = None
        if body.image is not None:
            if not body.image.startswith("data:"):
                # vidgate would fetch an https URL; this fake has no network.
                raise InvalidRequest("this fake takes data: URLs only", param="image")
            _, data = parse_data_url(body.image, param="image")
            info = inspect_image(data, max_bytes=20 * 1024 * 1024, param="image")
            image = ImageRef(
                sha256="0" * 64,
                width=info.width,
                height=info.height,
                content_type=info.content_type,
            )
        request = VideoRequest(
            model=body.model,
            prompt=body.prompt,
            seconds=body.duration,
            size=body.size,
            resolution=body.resolution,
            aspect_ratio=body.aspect_ratio,
            fps=body.fps,
            n=body.n,
            seed=body.seed,
            negative_prompt=body.negative_prompt,
            metadata=body.metadata,
            image=image,
        )
        return normalize(request, _CATALOG.get(body.model))

    async def _get(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        self.reads += 1
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.id in self.deleted:
            return _error(NotFound("video not found", code="video_not_found"))
        return JSONResponse(self._render(self.advance(task)))

    async def _delete(self, request: Request) -> Response:
        if not self.supports_delete:
            exc = InvalidRequest("Method Not Allowed", code="http_405")
            exc.status_code = 405
            return _error(exc)
        denied = self._auth(request)
        if denied is not None:
            return denied
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.id in self.deleted:
            return _error(NotFound("video not found", code="video_not_found"))
        self.cancel(task)
        self.deleted.add(task.id)
        return JSONResponse({"id": task.id, "object": "video.deleted", "deleted": True})

    async def _serve_file(self, request: Request) -> Response:
        # ``expire_first_download`` (declared by the harness): the first download of a
        # task's result fails like an expired signed link, and the next read of the
        # generation signs a new one, as vidgate does on every read.
        task = self.tasks.get(request.path_params["task_id"])
        if self.expire_first_download and task is not None and task.id not in self._expired_once:
            self._expired_once.add(task.id)
            task.url_token = secrets.token_hex(6)
            return _error(NotFound("video not found", code="video_not_found"))
        return await super()._serve_file(request)

    # --- the Generation object ---------------------------------------------------

    def _render(self, task: FakeTask) -> dict[str, Any]:
        spec = JobSpec.model_validate(task.request["spec"])
        estimate = _CATALOG.get(spec.model).pricing.estimate(spec.resolution, spec.seconds)
        cost = float(estimate * spec.n)
        status = {
            "queued": "queued",
            "running": "processing",
            "succeeded": "completed",
            "failed": "failed",
            "cancelled": "failed",
        }[task.state]
        error = None
        if task.state == "failed":
            error = {"code": task.error_code or "failed", "message": task.error_message or ""}
        elif task.state == "cancelled":
            error = {"code": "cancelled", "message": "the job was cancelled"}
        done = task.state in ("succeeded", "failed", "cancelled")
        data = []
        if task.state == "succeeded":
            expires = int(time.time()) + _LINK_TTL_S
            data = [
                {
                    "index": i,
                    "url": f"{self.result_url(task)}?variant=video&index={i}&expires={expires}",
                    "thumbnail_url": f"{self.base_url}/_thumbs/{task.id}/{i}.webp",
                    "spritesheet_url": f"{self.base_url}/_sprites/{task.id}/{i}.jpg",
                    "content_type": "video/mp4",
                    "width": spec.width,
                    "height": spec.height,
                    "duration": float(spec.seconds),
                    "fps": float(spec.fps),
                    "size_bytes": len(self.video),
                    "expires_at": expires,
                }
                for i in range(spec.n)
            ]
        return {
            "id": task.id,
            "object": "video.generation",
            "model": spec.model,
            "status": status,
            "progress": {"queued": 0, "processing": 50, "completed": 100}.get(status, 0),
            "created_at": int(task.created_at),
            "completed_at": int(time.time()) if done else None,
            "prompt": spec.prompt,
            "duration": spec.seconds,
            "resolution": spec.resolution,
            "aspect_ratio": spec.aspect_ratio,
            "size": spec.size,
            "fps": spec.fps,
            "n": spec.n,
            "seed": spec.seed,
            "metadata": spec.metadata,
            "webhook_url": None,
            "error": error,
            "data": data,
            "estimated_cost": cost,
            # Billed at completion; a failed or cancelled job costs nothing.
            "cost": cost if task.state == "succeeded" else (0 if done else None),
            "currency": "USD",
        }
