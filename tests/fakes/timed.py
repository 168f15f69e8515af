"""Fakes that take time like real providers, for the cluster test (tests/e2e/test_cluster.py).

``timed(FakeX, latency)`` is FakeX (the provider's own API, unchanged) with:

- wall-clock latency: a create's answer comes ``create_s`` after the task was accepted,
  a task succeeds ``run_s`` after its create (however often it is read), a result
  download starts ``download_s`` after the request; each drawn per task from its range;
- a result of its own per task (the fake's tiny MP4 with the task id in a trailing
  ``free`` box, which players skip), except tasks whose id hashes into ``shared``: those
  all get the same bytes, so several jobs store one object;
- counters per job: each create call by the job id vidgate sends (``Idempotency-Key``,
  or a body's ``external_task_id``), each result download by task id;
- the requests in flight with the client's TCP port, so a test can tell which process
  holds which work when it kills one.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import random
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from tests.fakes.harness import FakeTask, FakeUpstream

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Latency:
    """Ranges in seconds, each drawn per task (or per request) uniformly."""

    create_s: tuple[float, float]
    run_s: tuple[float, float]
    download_s: tuple[float, float]
    # One task in ``shared`` (by a hash of its id) returns the common video.
    shared: int = 25


@dataclass(frozen=True)
class InFlight:
    """A request the fake is handling: what it is and who asked."""

    kind: str  # "create" | "download"
    key: str  # the job id of a create, the task id of a download
    client_port: int


def _draw(bounds: tuple[float, float], seed: str) -> float:
    return random.Random(seed).uniform(*bounds)


class TimedFake(FakeUpstream):
    """The mixin; ``timed`` puts it in front of a provider's fake."""

    latency = Latency((0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    # A result download's path, its task id in group 1 (the harness's result URLs).
    download_path = re.compile(r"/_files/([^/]+)/")

    def __init__(self) -> None:
        super().__init__()
        self.creates_by_job: Counter[str] = Counter()
        self.downloads_by_task: Counter[str] = Counter()
        self.in_flight: dict[int, InFlight] = {}
        self._flight_ids = itertools.count()
        self._flight_lock = threading.Lock()

    # --- time, not status reads, finishes a task ---------------------------------

    def advance(self, task: FakeTask) -> FakeTask:
        with self._lock:
            task.polls += 1
            if task.state in ("queued", "running"):
                ran = time.time() - task.created_at
                if ran >= _draw(self.latency.run_s, f"run:{task.id}"):
                    task.state = "succeeded"
                elif ran > 0.2:
                    task.state = "running"
        return task

    def video_of(self, task: FakeTask) -> bytes:
        if self.is_shared(task.id):
            tag = b"vidgate cluster test: shared"
        else:
            tag = f"vidgate cluster test: {self.name} {task.id}".encode()
        return self.video + struct.pack(">I4s", 8 + len(tag), b"free") + tag

    def is_shared(self, task_id: str) -> bool:
        digest = hashlib.sha256(task_id.encode()).digest()
        return int.from_bytes(digest[:4], "big") % self.latency.shared == 0

    # --- what vidgate sent: a create's job id ------------------------------------

    def job_of_create(self, headers: dict[str, str], body: bytes) -> str:
        key = headers.get("idempotency-key")
        if key:
            return key
        try:
            parsed = json.loads(body)
        except ValueError:
            return "?"
        found = parsed.get("external_task_id") if isinstance(parsed, dict) else None
        return str(found) if found else "?"

    def held_by(self, ports: set[int]) -> list[InFlight]:
        """The requests in flight from any of the client ``ports``."""
        with self._flight_lock:
            return [f for f in self.in_flight.values() if f.client_port in ports]

    # --- the app, wrapped --------------------------------------------------------

    def app(self) -> Starlette:
        app = super().app()
        app.add_middleware(_Timing, fake=self)
        return app

    def download_task(self, path: str) -> str | None:
        """The task id of a result download's path; None for any other path."""
        found = self.download_path.match(path)
        return found.group(1) if found else None

    def flying(self, flight: InFlight) -> _Flying:
        return _Flying(self, flight)


class _Timing:
    """Pure ASGI middleware: the delays, the counters and the in-flight table."""

    def __init__(self, app: Asgi, fake: TimedFake) -> None:
        self.app, self.fake = app, fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        port = int((scope.get("client") or ("", 0))[1])
        task_id = self.fake.download_task(scope["path"]) if scope["method"] == "GET" else None
        if scope["method"] == "POST":
            await self._create(scope, receive, send, port)
        elif task_id is not None:
            fake = self.fake
            with fake.flying(InFlight("download", task_id, port)):
                await asyncio.sleep(_draw(fake.latency.download_s, f"dl:{random.random()}"))
                with fake._lock:
                    fake.downloads_by_task[task_id] += 1
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send, port: int) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        fake = self.fake
        job = fake.job_of_create(headers, body)
        with fake._lock:
            fake.creates_by_job[job] += 1
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def delayed(message: Message) -> None:
            # The task is accepted before the answer leaves: a submitter killed in this
            # window has made an upstream task it never hears of.
            if message["type"] == "http.response.start":
                await asyncio.sleep(_draw(fake.latency.create_s, f"create:{job}"))
            await send(message)

        with fake.flying(InFlight("create", job, port)):
            await self.app(scope, replay, delayed)


class _Flying:
    def __init__(self, fake: TimedFake, flight: InFlight) -> None:
        self.fake, self.flight = fake, flight
        self.id = 0

    def __enter__(self) -> None:
        with self.fake._flight_lock:
            self.id = next(self.fake._flight_ids)
            self.fake.in_flight[self.id] = self.flight

    def __exit__(self, *exc: object) -> None:
        with self.fake._flight_lock:
            self.fake.in_flight.pop(self.id, None)


def timed(
    cls: type[FakeUpstream], latency: Latency, download_path: str = r"/_files/([^/]+)/"
) -> TimedFake:
    """An instance of ``cls`` (a provider's fake) with ``latency`` and the counters;
    ``download_path`` matches its result downloads, the task id in group 1."""
    kind = type(
        f"Timed{cls.__name__}",
        (TimedFake, cls),
        {"latency": latency, "download_path": re.compile(download_path)},
    )
    fake: TimedFake = kind()
    return fake
