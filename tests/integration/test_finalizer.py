"""The finalizer (engine/finalizer.py): finalizing jobs claimed from their rows in
batches, written back in one transaction, and taken up again when a claim's lease runs
out. Real PostgreSQL, a scripted provider (tests/integration/test_job_runner.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from tests.integration.conftest import add_caller, runtime_on
from tests.integration.test_job_runner import ScriptedProvider, _with_deployments

from vidgate.core.spec import VideoRequest
from vidgate.db.finalize_claims import lock_finalizing, renew_finalizes
from vidgate.engine import steps, tasks, webhooks
from vidgate.engine.context import EngineContext
from vidgate.engine.finalizer import Finalizer
from vidgate.engine.poller import Poller
from vidgate.engine.service import JobService
from vidgate.engine.submitter import Submitter
from vidgate.providers.base import ProviderError, UpstreamStatus, UpstreamTask
from vidgate.runtime import Runtime


class _Failing(ScriptedProvider):
    """Fetches fail for the upstream tasks named in ``errors``."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: dict[str, ProviderError] = {}

    async def fetch(self, task: UpstreamTask, dest_dir: Path, progress: Any = None) -> list[Path]:
        if task.id in self.errors:
            raise self.errors[task.id]
        return await super().fetch(task, dest_dir, progress)


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path, max_step_attempts=3) as rt:
        yield rt


async def _finalizing(runtime: Runtime, provider: ScriptedProvider, n: int) -> EngineContext:
    """``n`` live jobs taken to ``finalizing`` by the submitter and the poller."""
    ctx = _with_deployments(runtime, {"scripted": provider})
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "f", mode="live")
    service = JobService(ctx)
    request = VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    for _ in range(n):
        await service.create(principal, request)
    assert await Submitter(ctx, concurrency=n).run_due_once() == n
    _sql(runtime, "UPDATE jobs SET next_poll_at = now()")
    provider.statuses = [UpstreamStatus("succeeded") for _ in range(n)]
    assert await Poller(ctx, concurrency=n).run_due_once() == n
    return ctx


def _sql(runtime: Runtime, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(runtime.database_url, autocommit=True) as conn:
        cursor = conn.execute(query, args)
        return cursor.fetchall() if cursor.description else []


async def test_a_batch_is_written_back_in_one_transaction_and_a_failure_holds_none_back(
    runtime: Runtime,
) -> None:
    provider = _Failing()
    await _finalizing(runtime, provider, 6)
    ids = [row[0] for row in _sql(runtime, "SELECT id FROM jobs ORDER BY id")]
    broken, flaky = ids[1], ids[4]
    provider.errors = {
        f"up-{broken}": ProviderError("upstream_failed", "gone", retryable=False),
        f"up-{flaky}": ProviderError("download_failed", "reset", retryable=True, retry_after_s=30),
    }
    ctx = _with_deployments(runtime, {"scripted": provider})

    assert await Finalizer(ctx, concurrency=8).run_due_once() == 6

    rows = {
        row[0]: row[1:]
        for row in _sql(
            runtime,
            "SELECT id, state, error_code, step_attempts, completed_at,"
            " next_poll_at > now() + interval '20 s' FROM jobs",
        )
    }
    done = [job_id for job_id in ids if job_id not in (broken, flaky)]
    # The final failure fails its job at once, with its code; the retryable one is due
    # again later on its row (its Retry-After), counted; neither held the others back.
    assert rows[broken][:2] == ("failed", "upstream_failed")
    assert rows[flaky][:3] == ("finalizing", None, 1) and rows[flaky][4] is True
    assert [rows[job_id][0] for job_id in done] == ["completed"] * 4
    # One transaction for the whole batch: its now() is every completion's time.
    assert len({rows[job_id][3] for job_id in done}) == 1
    assert _sql(runtime, "SELECT job_id FROM job_outputs ORDER BY 1") == [(j,) for j in done]
    settled = _sql(runtime, "SELECT job_id FROM ledger WHERE step = 'settle' ORDER BY 1")
    assert settled == [(j,) for j in done]
    # The previews steps of the batch, each under its own lock.
    queued = _sql(
        runtime,
        "SELECT args->>'job_id', lock, queue_name FROM procrastinate_jobs"
        " WHERE task_name = %s ORDER BY 1",
        steps.PREVIEWS,
    )
    assert queued == [(j, steps.previews_lock(j), steps.PREVIEWS_QUEUE) for j in done]
    # No scratch left behind, by the completed jobs or the failed ones.
    assert not any((runtime.settings.data_dir / "tmp").glob("video_*"))


async def test_a_dead_finalizers_claim_is_taken_up_once_its_lease_runs_out(
    runtime: Runtime,
) -> None:
    provider = ScriptedProvider()
    ctx = await _finalizing(runtime, provider, 1)
    [(job_id,)] = _sql(runtime, "SELECT id FROM jobs")
    dead = Finalizer(ctx, concurrency=2)
    dead.lease_s = 0.5
    [claim] = await dead.claim(10)
    # Its claim is renewed by nobody (the process died); until the lease runs out,
    # nobody else takes the job.
    live = Finalizer(ctx, concurrency=2)
    assert await live.run_due_once() == 0
    await asyncio.sleep(0.6)
    assert await live.run_due_once() == 1
    [(state, completed_at)] = _sql(runtime, "SELECT state, completed_at FROM jobs")
    assert state == "completed"

    # The claim that outlived its lease finishes after all: it completes nothing twice.
    result = await dead.work(claim)
    assert result is not None
    await dead.write_back([result])
    assert _sql(runtime, "SELECT state, completed_at FROM jobs") == [("completed", completed_at)]
    assert _sql(runtime, "SELECT count(*) FROM job_outputs") == [(1,)]
    assert _sql(runtime, "SELECT step FROM ledger ORDER BY 1") == [("reserve",), ("settle",)]
    assert _sql(runtime, "SELECT count(*) FROM procrastinate_jobs") == [(1,)]  # one previews
    assert not (runtime.settings.data_dir / "tmp" / job_id).exists()


async def test_a_finalize_task_queued_by_an_older_version_still_completes_its_job(
    runtime: Runtime,
) -> None:
    provider = ScriptedProvider()
    ctx = await _finalizing(runtime, provider, 1)
    [(job_id,)] = _sql(runtime, "SELECT id FROM jobs")
    # As an older version left it: no due time on the row, a task queued instead.
    _sql(runtime, "UPDATE jobs SET next_poll_at = NULL")
    async with runtime.db.begin() as conn:
        await steps.enqueue(ctx.app, conn, steps.FINALIZE, job_id)
    finalizer = Finalizer(ctx, concurrency=2)
    assert await finalizer.run_due_once() == 0
    context = SimpleNamespace(additional_context={tasks.CONTEXT_KEY: ctx})
    await tasks.finalize.func(context, job_id)  # type: ignore[arg-type]
    assert await finalizer.run_due_once() == 1
    assert _sql(runtime, "SELECT state FROM jobs") == [("completed",)]


async def test_a_job_whose_media_was_released_while_it_finalized_records_nothing(
    runtime: Runtime,
) -> None:
    provider = ScriptedProvider()
    ctx = await _finalizing(runtime, provider, 2)
    finalizer = Finalizer(ctx, concurrency=2)
    claims = await finalizer.claim(10)
    results = [await finalizer.work(claim) for claim in claims]
    released = claims[0].job.id
    _sql(runtime, "UPDATE jobs SET media_deleted_at = now() WHERE id = %s", released)
    await finalizer.write_back([r for r in results if r is not None])
    # The other job of the batch completes; the released one records no output, and its
    # video is queued for deletion (engine/media_gc.py).
    assert _sql(runtime, "SELECT id, state FROM jobs ORDER BY id") == sorted(
        [(released, "finalizing"), (claims[1].job.id, "completed")]
    )
    assert _sql(runtime, "SELECT job_id FROM job_outputs") == [(claims[1].job.id,)]
    [video] = [r.new[0].blob.sha256 for r in results if r is not None and r.claim is claims[0]]
    assert _sql(runtime, "SELECT sha256 FROM blob_deletions") == [(video,)]


async def test_a_lease_renewal_skips_the_rows_a_write_back_holds(runtime: Runtime) -> None:
    await _finalizing(runtime, ScriptedProvider(), 2)
    ids = [row[0] for row in _sql(runtime, "SELECT id FROM jobs ORDER BY id")]
    before = dict(_sql(runtime, "SELECT id, next_poll_at FROM jobs"))
    async with runtime.db.begin() as held:
        # A write-back under way holds the first row: the renewal neither waits for it
        # (nor, taking rows in its own order, deadlocks with it) and renews the other.
        assert await lock_finalizing(held, ids[:1]) == {ids[0]}
        async with asyncio.timeout(5):
            async with runtime.db.begin() as conn:
                await renew_finalizes(conn, ids, lease_s=60)
    after = dict(_sql(runtime, "SELECT id, next_poll_at FROM jobs"))
    assert after[ids[0]] == before[ids[0]] and after[ids[1]] > before[ids[1]]


async def test_a_write_back_costs_the_same_statements_for_two_jobs_or_six(
    runtime: Runtime,
) -> None:
    provider = ScriptedProvider()
    ctx = await _finalizing(runtime, provider, 8)
    # Half of them with a webhook: their events are queued by the batch too.
    _sql(
        runtime,
        "UPDATE jobs SET webhook_url = 'https://example.com/hook' WHERE id IN"
        " (SELECT id FROM jobs ORDER BY id LIMIT 4)",
    )
    finalizer = Finalizer(ctx, concurrency=8)
    claims = await finalizer.claim(8)
    results = [r for r in [await finalizer.work(c) for c in claims] if r is not None]
    assert len(results) == 8
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(runtime.db.sync_engine, "before_cursor_execute", count)
    try:
        await finalizer.write_back(results[:2])
        two = len(statements)
        statements.clear()
        await finalizer.write_back(results[2:])
        six = len(statements)
    finally:
        sa.event.remove(runtime.db.sync_engine, "before_cursor_execute", count)
    # A statement per table for the whole batch, not a few per job.
    assert two == six
    ids = sorted(r.claim.job.id for r in results)
    assert _sql(runtime, "SELECT id, state, progress FROM jobs ORDER BY id") == [
        (job_id, "completed", 100) for job_id in ids
    ]
    assert _sql(runtime, "SELECT job_id FROM job_outputs ORDER BY 1") == [(j,) for j in ids]
    # Settled at the real cost: 1 s of the sandbox, less the reservation already held.
    sums = _sql(
        runtime,
        "SELECT j.id, j.cost, sum(l.amount), count(*) FILTER (WHERE l.step = 'settle')"
        " FROM jobs j JOIN ledger l ON l.job_id = j.id GROUP BY j.id, j.cost ORDER BY 1",
    )
    assert [(job_id, n) for job_id, _, _, n in sums] == [(j, 1) for j in ids]
    assert all(cost is not None and total == cost for _, cost, total, _ in sums)
    hooked = sorted(ids[:4])
    queued = _sql(
        runtime,
        "SELECT args->>'job_id', (args->>'attempt')::int, lock, queue_name"
        " FROM procrastinate_jobs WHERE task_name = %s ORDER BY 1",
        steps.WEBHOOK,
    )
    assert queued == [(j, 1, webhooks.lock(j), steps.WEBHOOK_QUEUE) for j in hooked]


async def test_a_job_the_batch_statements_cannot_write_fails_alone(runtime: Runtime) -> None:
    provider = ScriptedProvider()
    ctx = await _finalizing(runtime, provider, 3)
    finalizer = Finalizer(ctx, concurrency=3)
    claims = await finalizer.claim(3)
    results = [r for r in [await finalizer.work(c) for c in claims] if r is not None]
    # An output no column can hold (a width past int4): the batch's insert fails.
    bad = results[1]
    item = bad.new[0]
    results[1] = dataclasses.replace(
        bad, new=[dataclasses.replace(item, output=dataclasses.replace(item.output, width=2**40))]
    )
    await finalizer.write_back(results)
    rows = dict(_sql(runtime, "SELECT id, state FROM jobs"))
    others = [r.claim.job.id for r in results if r is not results[1]]
    assert [rows[job_id] for job_id in others] == ["completed", "completed"]
    # The bad one is retried later on its row, counted, as a failed write-back was.
    assert _sql(
        runtime, "SELECT state, step_attempts FROM jobs WHERE id = %s", bad.claim.job.id
    ) == [("finalizing", 1)]
    assert _sql(runtime, "SELECT job_id FROM job_outputs ORDER BY 1") == [
        (j,) for j in sorted(others)
    ]
