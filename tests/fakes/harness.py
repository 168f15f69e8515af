"""What every fake provider shares: a real HTTP server on loopback, a tiny MP4 to serve,
and one set of controls so that the same contract tests can drive any fake.

A fake is a ``FakeUpstream`` subclass that builds a Starlette app speaking exactly the
provider's documented API (paths, auth, field names, enums, status progressions, error
bodies) and consults the shared controls at the documented points:

- ``check_create()`` at the start of every create call: it counts the call and returns
  an injected error response (``fail_next_creates`` / ``fail_all_creates``) or None;
- ``accept(task)`` once a create is accepted: counts the submission, returns a task id;
- ``advance(task)`` on every status read: moves the task one step toward success, or to
  failure when ``fail_tasks`` is set (with the provider's own failure shape);
- result URLs come from ``result_url(task)``; with ``expire_urls`` set, a URL handed out
  before ``refresh_urls()`` answers 403/404 like an expired pre-signed link, and a new
  status read hands out a fresh one;
- ``cancel(task)`` records cancellations;
- callbacks: a create that names a callback URL (each provider's own field) calls
  ``remember_callback(task, url)``. Tasks still advance only on status reads; the test
  calls ``finish()`` to make a task succeed upstream and POST the provider's documented
  callback body (``callback_payload``) to that URL, or ``send_callback()`` to POST the
  task's current state. ``callbacks_sent`` records vidgate's answers.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_http_url(value: Any) -> bool:
    """What a fake accepts as a callback URL."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


@functools.cache
def tiny_mp4(width: int = 160, height: int = 96, seconds: int = 1, fps: int = 8) -> bytes:
    """A real H.264 MP4 for fakes to serve as their "generated" video."""
    import tempfile

    from vidgate.media.render import ClipRequest, render_clip

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fake.mp4"
        render_clip(
            ClipRequest(
                width=width,
                height=height,
                fps=fps,
                seconds=seconds,
                prompt="fake upstream",
                label="fake",
            ),
            out,
        )
        return out.read_bytes()


TERMINAL_TASK_STATES = ("succeeded", "failed", "cancelled")


@dataclass
class FakeTask:
    id: str
    request: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    polls: int = 0
    state: str = "queued"  # queued -> running -> succeeded | failed | cancelled
    error_code: str | None = None
    error_message: str | None = None
    url_token: str = field(default_factory=lambda: secrets.token_hex(6))


@dataclass
class InjectedError:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        if isinstance(self.body, str):
            return Response(self.body, status_code=self.status, headers=self.headers)
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


class FakeUpstream:
    """Base of every fake: the controls and counters the contract tests use."""

    name = "fake"

    def __init__(self) -> None:
        self.tasks: dict[str, FakeTask] = {}
        self.create_calls = 0
        self.submissions = 0
        self.cancelled: list[str] = []
        self.downloads = 0
        # Status reads before a task succeeds (queued on the first, running after).
        self.polls_to_finish = 2
        self.fail_tasks: tuple[str, str] | None = None
        self.expire_urls = False
        # End-to-end form of expiry: the first download of each task's result fails as
        # an expired link would, and hands out a new URL on the next status read.
        self.expire_first_download = False
        self._expired_once: set[str] = set()
        self._next_create_errors: list[InjectedError] = []
        self._all_create_error: InjectedError | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # Task id -> the callback URL its create named.
        self.callback_urls: dict[str, str] = {}
        # (task id, HTTP status vidgate answered) of every callback POSTed.
        self.callbacks_sent: list[tuple[str, int]] = []
        self.base_url = ""
        self.video = tiny_mp4()

    # --- controls used by tests ------------------------------------------------

    def fail_next_creates(self, n: int, status: int, headers: dict[str, str] | None = None) -> None:
        self._next_create_errors = [self.error_for(status, headers or {}) for _ in range(n)]

    def fail_all_creates(self, status: int | None) -> None:
        self._all_create_error = None if status is None else self.error_for(status, {})

    def refresh_urls(self) -> None:
        for task in self.tasks.values():
            task.url_token = secrets.token_hex(6)

    def finish(self, task_id: str | None = None) -> list[int]:
        """Make the task (every unfinished one when None) succeed upstream, as if the
        provider had finished it between two status reads, and POST the provider's
        callback for it where its create named a URL. Returns vidgate's HTTP statuses."""
        with self._lock:
            if task_id is not None:
                finished = [self.tasks[task_id]]
            else:
                finished = [t for t in self.tasks.values() if t.state not in TERMINAL_TASK_STATES]
            for task in finished:
                task.state = "succeeded"
        sent = [self._post_callback(task) for task in finished]
        return [status for status in sent if status is not None]

    def send_callback(self, task_id: str) -> int | None:
        """POST the callback for the task's current state (as a provider does on each
        state change); None when its create named no URL."""
        return self._post_callback(self.tasks[task_id])

    # --- provider-specific shape, overridden by each fake ------------------------

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        """The provider's error body for an HTTP ``status`` (override per provider)."""
        return InjectedError(status, {"error": {"message": f"injected {status}"}}, headers)

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        """The JSON body the provider POSTs to a callback URL (fakes with callbacks)."""
        raise NotImplementedError(f"{self.name} sends no callbacks")

    def callback_headers(self, task: FakeTask, body: bytes) -> dict[str, str]:
        """Extra headers of a callback (a provider's signature, say)."""
        return {}

    def callback_wanted(self, task: FakeTask) -> bool:
        """Whether the provider would POST a callback for the task's state now."""
        return True

    # --- helpers for subclasses --------------------------------------------------

    def check_create(self) -> Response | None:
        with self._lock:
            self.create_calls += 1
            if self._next_create_errors:
                return self._next_create_errors.pop(0).response()
        if self._all_create_error is not None:
            return self._all_create_error.response()
        return None

    def accept(self, request: dict[str, Any], task_id: str | None = None) -> FakeTask:
        with self._lock:
            self.submissions += 1
            task = FakeTask(
                id=task_id or f"task-{next(self._ids)}-{secrets.token_hex(4)}", request=request
            )
            self.tasks[task.id] = task
        return task

    def advance(self, task: FakeTask) -> FakeTask:
        with self._lock:
            if task.state in ("succeeded", "failed", "cancelled"):
                return task
            task.polls += 1
            if task.polls >= self.polls_to_finish:
                if self.fail_tasks is not None:
                    task.state = "failed"
                    task.error_code, task.error_message = self.fail_tasks
                else:
                    task.state = "succeeded"
            else:
                task.state = "running" if task.polls > 1 else "queued"
        return task

    def remember_callback(self, task: FakeTask, url: str) -> None:
        with self._lock:
            self.callback_urls[task.id] = url

    def _post_callback(self, task: FakeTask) -> int | None:
        url = self.callback_urls.get(task.id)
        if url is None or not self.callback_wanted(task):
            return None
        body = json.dumps(self.callback_payload(task)).encode()
        headers = {"content-type": "application/json", **self.callback_headers(task, body)}
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        with self._lock:
            self.callbacks_sent.append((task.id, response.status_code))
        return response.status_code

    def cancel(self, task: FakeTask) -> None:
        with self._lock:
            if task.state not in ("succeeded", "failed"):
                task.state = "cancelled"
            self.cancelled.append(task.id)

    def video_of(self, task: FakeTask) -> bytes:
        """The bytes of ``task``'s result: the same tiny MP4 for every task, unless a
        subclass makes each its own (a test of content addressing, say)."""
        return self.video

    def result_url(self, task: FakeTask) -> str:
        return f"{self.base_url}/_files/{task.id}/{task.url_token}/video.mp4"

    async def _serve_file(self, request: Request) -> Response:
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.state != "succeeded":
            return Response(status_code=404)
        expired = Response(
            "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            status_code=403,
        )
        if self.expire_urls and request.path_params["token"] != task.url_token:
            return expired
        if self.expire_first_download and task.id not in self._expired_once:
            self._expired_once.add(task.id)
            task.url_token = secrets.token_hex(6)
            return expired
        self.downloads += 1
        return Response(self.video_of(task), media_type="video/mp4")

    def app(self) -> Starlette:
        files = Route("/_files/{task_id}/{token}/video.mp4", self._serve_file, methods=["GET"])
        return Starlette(routes=[*self.routes(), files])


@dataclass
class ReceivedCallback:
    path: str
    query: str
    headers: dict[str, str]
    body: Any


class CallbackSink:
    """Stands in for vidgate's callback route in adapter tests: records every POST and
    echoes a ``{"challenge": X}`` body the way MiniMax's validation expects."""

    def __init__(self) -> None:
        self.received: list[ReceivedCallback] = []
        self.base_url = ""

    def url(self, job_id: str) -> str:
        return f"{self.base_url}/v1/callbacks/{job_id}?signature=test-signature"

    async def _receive(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"null")
        if isinstance(body, dict) and set(body) == {"challenge"}:
            return JSONResponse({"challenge": body["challenge"]})
        self.received.append(
            ReceivedCallback(
                path=request.url.path,
                query=request.url.query,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
            )
        )
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])


class _QuickServer(uvicorn.Server):
    """uvicorn checks for shutdown every 0.1 s; a test suite starts and stops several
    hundred fakes, so this one checks every 5 ms."""

    async def main_loop(self) -> None:
        while not self.should_exit:  # noqa: ASYNC110 (set from the test thread)
            await asyncio.sleep(0.005)


class FakeServer:
    """Runs a fake's app (or a ``CallbackSink``) with uvicorn on 127.0.0.1 in a
    background thread."""

    def __init__(self, fake: FakeUpstream | CallbackSink) -> None:
        self.fake = fake
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fake.base_url = self.url
        config = uvicorn.Config(
            fake.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = _QuickServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        # Done once the port refuses connections (a "host down" test may connect next);
        # the thread ends by itself: uvicorn gives open connections another 0.1 s.
        self.server.should_exit = True
        deadline = time.monotonic() + 5
        while self.thread.is_alive() and time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.002)
