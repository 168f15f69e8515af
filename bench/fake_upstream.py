"""B3's upstream: the OpenAI Videos API (``/v1/videos``) with tasks that finish a fixed
time after they were created, whatever the gateway does in between.

It speaks the shape vidgate's ``openai_videos`` adapter calls (multipart create,
``GET /videos/{id}``, ``GET /videos/{id}/content``, ``DELETE``), and records per task
when it was created, when its result became available, every status read before that,
the first read that saw it completed, and the download. ``GET /_stats`` returns them.

By default it sends no ``openai-poll-after-ms`` header, so the gateway polls at its own
cadence; ``--poll-after-ms`` sends one while a task runs.

``progress`` grows linearly with the time from a task's creation to its end, which is
roughly what OpenAI's does. ``POST /_finish_at`` with ``{"at": <epoch seconds>}`` makes
every task created from then on finish at that instant (``{"at": null}``: back to the
fixed duration): B7's simultaneous finishes.

    python bench/fake_upstream.py --port 9000 --duration 60
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Task:
    id: str
    prompt: str
    seconds: str
    size: str
    model: str
    created: float
    available: float
    reads: int = 0
    last_read_before: float | None = None
    noticed: float | None = None
    downloaded: float | None = None
    cancelled: bool = False

    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "available": self.available,
            "reads": self.reads,
            "last_read_before": self.last_read_before,
            "noticed": self.noticed,
            "downloaded": self.downloaded,
        }


def tiny_mp4() -> bytes:
    """A real (small) H.264 MP4 for the gateway to store, probe and preview."""
    from vidgate.media.render import ClipRequest, render_clip

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fake.mp4"
        request = ClipRequest(
            width=160, height=96, fps=8, seconds=1, prompt="bench upstream", label="bench"
        )
        render_clip(request, out)
        return out.read_bytes()


class FakeVideos:
    def __init__(self, *, duration_s: float, api_key: str, poll_after_ms: int | None) -> None:
        self.duration_s = duration_s
        self.api_key = api_key
        self.poll_after_ms = poll_after_ms
        self.tasks: dict[str, Task] = {}
        self.idempotency: dict[str, str] = {}
        self.ids = itertools.count(1)
        self.video = tiny_mp4()
        # When set, tasks created from now on finish at this instant (epoch seconds).
        self.finish_at: float | None = None

    def _auth(self, request: Request) -> Response | None:
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        body = {
            "error": {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        }
        return JSONResponse(body, status_code=401)

    def _video(self, task: Task, now: float) -> dict[str, Any]:
        if task.cancelled:
            status, progress = "failed", 0
        elif now >= task.available:
            status, progress = "completed", 100
        else:
            status = "in_progress"
            span = max(task.available - task.created, 1e-6)
            progress = min(99, int(100 * (now - task.created) / span))
        return {
            "id": task.id,
            "object": "video",
            "model": task.model,
            "status": status,
            "progress": progress,
            "created_at": int(task.created),
            "completed_at": int(task.available) if status == "completed" else None,
            "expires_at": int(task.created) + 86400,
            "prompt": task.prompt,
            "seconds": task.seconds,
            "size": task.size,
            "remixed_from_video_id": None,
            "error": {"code": "cancelled", "message": "cancelled"} if task.cancelled else None,
        }

    def _missing(self) -> Response:
        body = {
            "error": {
                "message": "Video not found",
                "type": "invalid_request_error",
                "param": None,
                "code": "not_found",
            }
        }
        return JSONResponse(body, status_code=404)

    async def create(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        key = request.headers.get("idempotency-key")
        now = time.time()
        if key and key in self.idempotency:
            return JSONResponse(self._video(self.tasks[self.idempotency[key]], now))
        async with request.form() as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        task = Task(
            id=f"video_bench_{next(self.ids):07d}",
            prompt=fields.get("prompt", ""),
            seconds=fields.get("seconds", "4"),
            size=fields.get("size", "1280x720"),
            model=fields.get("model", "sora-2"),
            created=now,
            available=self.finish_at if self.finish_at is not None else now + self.duration_s,
        )
        self.tasks[task.id] = task
        if key:
            self.idempotency[key] = task.id
        return JSONResponse(self._video(task, now))

    async def retrieve(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["video_id"])
        if task is None:
            return self._missing()
        now = time.time()
        task.reads += 1
        if now < task.available:
            task.last_read_before = now
        elif task.noticed is None:
            task.noticed = now
        body = self._video(task, now)
        headers = {}
        if body["status"] == "in_progress" and self.poll_after_ms is not None:
            headers["openai-poll-after-ms"] = str(self.poll_after_ms)
        return JSONResponse(body, headers=headers)

    async def content(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["video_id"])
        if task is None or task.cancelled or time.time() < task.available:
            return self._missing()
        task.downloaded = time.time()
        return Response(self.video, media_type="video/mp4")

    async def delete(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["video_id"])
        if task is None:
            return self._missing()
        task.cancelled = True
        return JSONResponse({"id": task.id, "object": "video.deleted", "deleted": True})

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"tasks": [t.stats() for t in self.tasks.values()]})

    async def set_finish_at(self, request: Request) -> Response:
        at = (await request.json()).get("at")
        self.finish_at = None if at is None else float(at)
        return JSONResponse({"at": self.finish_at})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/videos", self.create, methods=["POST"]),
                Route("/v1/videos/{video_id}", self.retrieve, methods=["GET"]),
                Route("/v1/videos/{video_id}", self.delete, methods=["DELETE"]),
                Route("/v1/videos/{video_id}/content", self.content, methods=["GET"]),
                Route("/_stats", self.stats, methods=["GET"]),
                Route("/_finish_at", self.set_finish_at, methods=["POST"]),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds until done")
    parser.add_argument("--api-key", default="sk-bench-fake")
    parser.add_argument("--poll-after-ms", type=int, default=None)
    args = parser.parse_args()
    fake = FakeVideos(
        duration_s=args.duration, api_key=args.api_key, poll_after_ms=args.poll_after_ms
    )
    uvicorn.run(
        fake.app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
