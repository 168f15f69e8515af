"""Status reads of a job about to complete wait for it (engine/status_hold.py): the
read answers ``completed`` as soon as the finalizer's write-back is in, jobs not
finishing are never held, the window and the cap bound it, and 0 turns it off. Real
PostgreSQL, the real finalizer, a scripted provider; the routes over ASGI."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from tests.integration.conftest import runtime_on
from tests.integration.test_job_runner import ScriptedProvider, _with_deployments

from vidgate.accounts.keys import hash_secret
from vidgate.api.app import create_app
from vidgate.core.jobs import JobRecord, JobState
from vidgate.core.spec import VideoRequest
from vidgate.db.keys import ensure_tenant, insert_api_key
from vidgate.engine import status_hold
from vidgate.engine.context import EngineContext
from vidgate.engine.finalizer import Finalizer
from vidgate.engine.poller import Poller
from vidgate.engine.service import JobService, Principal
from vidgate.engine.submitter import Submitter
from vidgate.providers.base import UpstreamStatus
from vidgate.runtime import Runtime

SECRET = "vg_live_statushold"


@dataclasses.dataclass
class Setup:
    runtime: Runtime
    ctx: EngineContext
    service: JobService
    principal: Principal
    job_ids: list[str]


async def _setup(database_url: str, tmp_path: Path, n: int, **settings: Any) -> Setup:
    """``n`` live jobs taken to ``finalizing`` by the submitter and the poller."""
    runtime = await _open(database_url, tmp_path, **settings)
    provider = ScriptedProvider()
    ctx = _with_deployments(runtime, {"scripted": provider})
    async with runtime.db.begin() as conn:
        tenant = await ensure_tenant(conn, "tenant_h", "h")
        await insert_api_key(
            conn,
            key_id="key_h",
            tenant_id=tenant,
            name="h",
            prefix="p",
            secret_hash=hash_secret(SECRET),
            mode="live",
            role="member",
        )
    principal = Principal("key_h", tenant, "live")
    service = JobService(ctx)
    request = VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    for _ in range(n):
        await service.create(principal, request)
    assert await Submitter(ctx, concurrency=n).run_due_once() == n
    _sql(runtime, "UPDATE jobs SET next_poll_at = now()")
    provider.statuses = [UpstreamStatus("succeeded") for _ in range(n)]
    assert await Poller(ctx, concurrency=n).run_due_once() == n
    ids = [row[0] for row in _sql(runtime, "SELECT id FROM jobs ORDER BY id")]
    return Setup(runtime, ctx, service, principal, ids)


_OPEN: list[Any] = []


async def _open(database_url: str, tmp_path: Path, **settings: Any) -> Runtime:
    manager = runtime_on(database_url, tmp_path, **settings)
    runtime = await manager.__aenter__()
    _OPEN.append(manager)
    return runtime


@pytest.fixture(autouse=True)
async def _close_runtimes() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().__aexit__(None, None, None)


def _sql(runtime: Runtime, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(runtime.database_url, autocommit=True) as conn:
        cursor = conn.execute(query, args)
        return cursor.fetchall() if cursor.description else []


async def _held(s: Setup, job_id: str) -> asyncio.Task[JobRecord]:
    """A status read of the job, started and waiting (or answered)."""
    job = await s.service.get(s.principal, job_id)
    task = asyncio.create_task(s.service.hold(s.principal, job))
    await asyncio.sleep(0)  # runs up to its wait
    return task


async def test_a_read_during_finalizing_answers_completed_as_soon_as_the_write_back_is_in(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await _setup(database_url, tmp_path, 1, status_hold_ms=5000)
    finalizer = Finalizer(s.ctx, concurrency=1)  # in this process: its write-back wakes
    # The write-back alone wakes the read: no re-read of the row comes in between.
    monkeypatch.setattr(status_hold, "LOCAL_RECHECK_S", 10.0)
    [job_id] = s.job_ids
    read = await _held(s, job_id)
    assert not read.done() and s.ctx.holds.held == 1
    assert await finalizer.run_due_once() == 1
    completed_at = time.monotonic()
    job = await read
    # Woken by the write-back, long before the window's end.
    assert job.state == JobState.COMPLETED
    assert time.monotonic() - completed_at < 0.2
    assert s.ctx.holds.held == 0


async def test_the_routes_answer_completed_when_the_job_completes_within_the_window(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = await _setup(database_url, tmp_path, 2, status_hold_ms=5000)
    finalizer = Finalizer(s.ctx, concurrency=2)
    services = dataclasses.replace(s.runtime.services, jobs=s.service)
    app = create_app(services, s.runtime.settings)
    headers = {"authorization": f"Bearer {SECRET}"}
    holds, hold, both_held = s.ctx.holds, s.ctx.holds.hold, asyncio.Event()

    async def counted(job: JobRecord, reread: Callable[[], Awaitable[JobRecord]]) -> JobRecord:
        held = hold(job, reread)
        if holds.held == 1:  # the second read: both are held once it waits
            both_held.set()
        return await held

    monkeypatch.setattr(holds, "hold", counted)
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://vidgate") as client:
        # The edge's video read and the task shape's read, both of a finalizing job.
        video = asyncio.create_task(client.get(f"/v1/videos/{s.job_ids[0]}", headers=headers))
        task = asyncio.create_task(
            client.get(f"/v1/videos/generations/{s.job_ids[1]}", headers=headers)
        )
        async with asyncio.timeout(5):
            await both_held.wait()
        assert s.ctx.holds.held == 2
        started = time.monotonic()
        assert await finalizer.run_due_once() == 2
        answers = await asyncio.gather(video, task)
    assert time.monotonic() - started < 2.0
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["status"] == "completed"
    assert "openai-poll-after-ms" not in answers[0].headers
    assert answers[1].status_code == 200, answers[1].text
    body = answers[1].json()
    assert body["status"] == "completed", body
    assert len(body["data"]) == 1, body


async def test_a_read_of_a_job_not_yet_expected_to_end_is_not_held(
    database_url: str, tmp_path: Path
) -> None:
    s = await _setup(database_url, tmp_path, 1, status_hold_ms=5000)
    [job_id] = s.job_ids
    _sql(
        s.runtime,
        "UPDATE jobs SET state = 'waiting', expected_end_at = now() + interval '10 seconds'"
        " WHERE id = %s",
        job_id,
    )
    started = time.monotonic()
    job = await (await _held(s, job_id))
    assert job.state == JobState.WAITING
    assert time.monotonic() - started < 0.2
    # Just past its expected end, the same job is held (and answers when it moves on).
    _sql(s.runtime, "UPDATE jobs SET expected_end_at = now() WHERE id = %s", job_id)
    read = await _held(s, job_id)
    assert not read.done() and s.ctx.holds.held == 1
    # No finalizer in this process: the row is read again every tenth of a second.
    _sql(s.runtime, "UPDATE jobs SET state = 'failed' WHERE id = %s", job_id)
    assert (await read).state == JobState.FAILED
    assert time.monotonic() - started < 1.5


async def test_the_window_bounds_a_hold_and_zero_turns_it_off(
    database_url: str, tmp_path: Path
) -> None:
    s = await _setup(database_url, tmp_path, 1, status_hold_ms=300)
    [job_id] = s.job_ids
    started = time.monotonic()
    job = await (await _held(s, job_id))
    waited = time.monotonic() - started
    assert job.state == JobState.FINALIZING
    assert 0.3 <= waited < 1.0

    settings = s.runtime.settings.model_copy(update={"status_hold_ms": 0})
    s.service = JobService(dataclasses.replace(s.ctx, settings=settings))
    started = time.monotonic()
    job = await (await _held(s, job_id))
    assert job.state == JobState.FINALIZING
    assert time.monotonic() - started < 0.1


async def test_reads_beyond_the_cap_answer_at_once(database_url: str, tmp_path: Path) -> None:
    s = await _setup(database_url, tmp_path, 2, status_hold_ms=5000, status_hold_max_reads=1)
    first = await _held(s, s.job_ids[0])
    assert not first.done() and s.ctx.holds.held == 1
    started = time.monotonic()
    job = await (await _held(s, s.job_ids[1]))
    assert job.state == JobState.FINALIZING
    assert time.monotonic() - started < 0.1
    _sql(s.runtime, "UPDATE jobs SET state = 'failed' WHERE id = %s", s.job_ids[0])
    assert (await first).state == JobState.FAILED
