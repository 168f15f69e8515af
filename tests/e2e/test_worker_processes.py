"""Workers limited to queues (``vidgate worker --queues``), and SIGTERM: a process stops
taking work, finishes or hands back its steps, and exits within its bound; the next
worker takes a handed-back step at once, without the sweeper.

One job through four processes, in front of the fake OpenAI Videos server, whose
create and result download the test holds:

1. ``serve`` (API and worker) gets SIGTERM while its submitter waits on the create: it
   finishes the submission (written back, ``waiting``) and exits 0.
2. ``worker --queues poll`` reads the job to ``finalizing`` and never finalizes it.
3. ``worker --queues media`` (a 2 s bound) gets SIGTERM while its finalize waits on the
   download: the step is ``todo`` again when it has exited 0, within the bound.
4. Another ``worker --queues media`` completes the job. The upstream saw one create.

The sweeper could not have helped: steps are stalled after 30 s here, sweeps 60 s apart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import Response
from tests.conftest import VIDGATE, ServerProcess, fast_env, make_database
from tests.fakes import openai_videos
from tests.fakes.harness import FakeServer

pytestmark = pytest.mark.slow


class HeldUpstream(openai_videos.FakeOpenAIVideos):
    """Holds each create until ``go_create``, each result download until ``go_download``."""

    def __init__(self) -> None:
        super().__init__()
        self.go_create = threading.Event()
        self.go_download = threading.Event()
        self.creates_held = 0
        self.downloads_held = 0

    async def create(self, request: Request) -> Response:
        self.creates_held += 1
        await anyio.to_thread.run_sync(self.go_create.wait)
        return await super().create(request)

    async def content(self, request: Request) -> Response:
        self.downloads_held += 1
        await anyio.to_thread.run_sync(self.go_download.wait)
        return await super().content(request)


@pytest.fixture
def upstream() -> Iterator[tuple[HeldUpstream, str]]:
    fake = HeldUpstream()
    with FakeServer(fake) as server:
        yield fake, server.url
    fake.go_create.set()
    fake.go_download.set()


class Worker:
    """A ``vidgate worker`` process, its output in a log file."""

    def __init__(self, tmp_path: Path, name: str, env: dict[str, str], *args: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [*VIDGATE, "worker", "--data-dir", str(tmp_path / name), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_started(self) -> None:
        _wait_for(lambda: "worker.started" in self.log(), "the worker to start", self.log)

    def terminate(self, within_s: float) -> float:
        """SIGTERM; the seconds it took to exit (asserted within ``within_s``, status 0)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(within_s + 10)
        took = time.monotonic() - started
        assert status == 0, self.log()
        assert took < within_s, (took, self.log())
        return took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _wait_for(check: Callable[[], bool], what: str, log: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log()}"
        time.sleep(0.05)


def test_queues_and_sigterm_hand_over_one_job_between_workers(
    upstream: tuple[HeldUpstream, str], pg_server: str, tmp_path: Path
) -> None:
    fake, url = upstream
    database = make_database(pg_server)
    env = fast_env(
        VIDGATE_DATABASE_URL=database,
        OPENAI_API_KEY=openai_videos.API_KEY,
        OPENAI_BASE_URL=url + openai_videos.BASE_PATH,
        VIDGATE_STALLED_AFTER_S="30",
        VIDGATE_SWEEP_INTERVAL_S="60",
    )

    def job() -> tuple[str, str | None]:
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT state, upstream_id FROM jobs").fetchone()
        assert row is not None
        return row[0], row[1]

    def finalize_due() -> bool:
        """Whether the job's finalize is due and no finalizer holds it (engine/finalizer.py:
        a claim moves its row's ``next_poll_at`` a lease ahead)."""
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT next_poll_at <= now() FROM jobs").fetchone()
        assert row is not None
        return bool(row[0])

    api = ServerProcess(data_dir=tmp_path / "api", env=env)
    workers: list[Worker] = []
    try:
        api.start()
        # The poll-only worker starts beside it (both migrate under one lock).
        poller = Worker(tmp_path, "poller", env, "--queues", "poll")
        workers.append(poller)
        key = api.create_key("procs", "--live", "--tenant", "procs")
        created = httpx.post(
            f"{api.base_url}/v1/videos",
            json={"model": "sora-2", "prompt": "a handover", "seconds": "4", "size": "1280x720"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert created.status_code == 200, created.text

        # 1. SIGTERM while serve's submitter waits on the upstream's create.
        _wait_for(lambda: fake.creates_held == 1, "the submission", api.log)
        api.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        _wait_for(lambda: "shutdown.requested" in api.log(), "serve to start its shutdown")
        fake.go_create.set()
        assert api.proc.wait(30) == 0, api.log()  # type: ignore[union-attr]
        state, upstream_id = job()
        assert state in ("waiting", "finalizing") and upstream_id is not None, api.log()

        # 2. Polled to finalizing by a worker without `media`, where it stays: all the
        # while the media worker of step 3 starts up (seconds), nothing takes it.
        poller.wait_started()
        _wait_for(lambda: job()[0] == "finalizing", "finalizing", poller.log)
        media = Worker(
            tmp_path, "media", {**env, "VIDGATE_SHUTDOWN_TIMEOUT_S": "2"}, "--queues=media"
        )
        workers.append(media)
        looks = 0
        while True:
            due, state = finalize_due(), job()[0]
            if "worker.started" in media.log():
                break
            # Read before the media worker had started: only the poll worker could act.
            assert (due, state) == (True, "finalizing"), poller.log()
            looks += 1
            time.sleep(0.05)
        assert looks >= 5 and fake.downloads_held == 0

        # 3. The media worker, with a 2 s bound, SIGTERM mid-finalize: handed back.
        _wait_for(lambda: fake.downloads_held == 1, "the download", media.log)
        media.terminate(within_s=2.5)
        # Its claim given up (due again at once), not left to its 30 s lease.
        assert finalize_due(), media.log()
        assert job()[0] == "finalizing"
        assert "finalizer.released" in media.log()

        # 4. The next media worker takes it at once (no sweeper in sight).
        fake.go_download.set()
        started = time.monotonic()
        again = Worker(tmp_path, "media2", env, "--queues", "media")
        workers.append(again)
        _wait_for(lambda: job()[0] == "completed", "the job to complete", again.log)
        assert time.monotonic() - started < 30
        assert "sweeper.requeued" not in again.log()
        assert (fake.create_calls, fake.submissions) == (1, 1)
        for worker in (poller, again):
            worker.terminate(within_s=30)
    finally:
        for worker in workers:
            worker.kill()
        api.stop()
