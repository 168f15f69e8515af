"""kill -9 of the worker between the upstream's completion and the job's settlement,
then a restart: the job completes and is charged once, at its real cost.

A real ``vidgate serve`` (API and worker) with a live key, in front of the fake OpenAI
Videos server, whose result download is held so that the job waits in ``finalizing``
(upstream done, nothing settled) for the kill.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import Response
from tests.conftest import ServerProcess, fast_env, make_database
from tests.fakes import openai_videos
from tests.fakes.harness import FakeServer

pytestmark = pytest.mark.slow


class HeldDownloads(openai_videos.FakeOpenAIVideos):
    """Holds every result download until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.held = 0

    async def content(self, request: Request) -> Response:
        self.held += 1
        await anyio.to_thread.run_sync(self.go.wait)
        return await super().content(request)


@pytest.fixture
def fake() -> Iterator[tuple[HeldDownloads, str]]:
    upstream = HeldDownloads()
    with FakeServer(upstream) as server:
        yield upstream, server.url


def _wait_for(check: object, what: str, timeout: float = 30) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_worker_killed_before_settlement_charges_the_job_once(
    fake: tuple[HeldDownloads, str], pg_server: str, tmp_path: Path
) -> None:
    upstream, url = fake
    database = make_database(pg_server)
    srv = ServerProcess(
        data_dir=tmp_path / "vidgate",
        env=fast_env(
            VIDGATE_DATABASE_URL=database,
            OPENAI_API_KEY=openai_videos.API_KEY,
            OPENAI_BASE_URL=url + openai_videos.BASE_PATH,
        ),
    )

    def state() -> str:
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()
        assert row is not None
        return str(row[0])

    def ledger() -> dict[str, Decimal]:
        with psycopg.connect(database) as conn:
            rows = conn.execute(
                "SELECT step, amount FROM ledger WHERE job_id = %s", (job_id,)
            ).fetchall()
        return {step: amount for step, amount in rows}

    try:
        # The key is made while the server starts (both migrate under one lock).
        with ThreadPoolExecutor(1) as pool:
            made = pool.submit(srv.create_key, "settle", "--live", "--tenant", "settle")
            srv.start()
            key = made.result()
        created = httpx.post(
            f"{srv.base_url}/v1/videos",
            json={"model": "sora-2", "prompt": "a lighthouse", "seconds": "4", "size": "1280x720"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        # $0.10 a second at 720p: 4 s reserved at $0.40.
        assert created.json()["estimated_cost"] == 0.4
        with psycopg.connect(database) as conn:
            # The create's reservation, where create does not make it yet (a no-op once
            # it does).
            conn.execute(
                "INSERT INTO ledger (job_id, step, tenant_id, api_key_id, amount, booked_at)"
                " SELECT id, 'reserve', tenant_id, api_key_id, estimated_cost, created_at"
                " FROM jobs WHERE id = %s ON CONFLICT DO NOTHING",
                (job_id,),
            )

        _wait_for(lambda: upstream.held >= 1, "the result download")
        assert state() == "finalizing"
        srv.kill()
        # Upstream done, nothing settled: the job holds its reservation only.
        assert state() == "finalizing" and set(ledger()) == {"reserve"}

        upstream.go.set()
        srv.start()
        _wait_for(lambda: state() == "completed", "the job to complete after the restart")

        # The fake's clip lasts 1 s: charged the one second produced, once.
        rows = ledger()
        assert set(rows) == {"reserve", "settle"}
        assert sum(rows.values()) == Decimal("0.1")
        video = httpx.get(
            f"{srv.base_url}/v1/videos/{job_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).json()
        assert (video["status"], video["cost"]) == ("completed", 0.1)
        assert upstream.submissions == 1 and upstream.held >= 2
    finally:
        upstream.go.set()
        srv.stop()
