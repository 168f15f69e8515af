"""The step queue under a burst: migration 0005's lock index and the statistics keeper
(engine/queue_stats.py), against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from tests.integration.conftest import runtime_on

from vidgate.db.queue import QueueRows, queue_rows
from vidgate.engine.queue_stats import MIN_LIVE_STEPS, is_stale, refresh_queue_stats
from vidgate.runtime import Runtime

BURST = MIN_LIVE_STEPS + 500


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


def _burst(url: str, n: int) -> None:
    """What the planner last saw is an empty queue; then ``n`` steps arrive, each with
    its own lock, as a burst of finished jobs defers its webhooks."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_jobs")
        conn.execute("ANALYZE procrastinate_jobs")
        conn.execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, args)"
            " SELECT 'jobs', 'vidgate:webhook', 'webhook:' || g, jsonb_build_object('job_id', g)"
            " FROM generate_series(1, %s) AS g",
            (n,),
        )


def _fetch_plan(url: str) -> str:
    """The plan of procrastinate's fetch (procrastinate_fetch_job_v2's candidate query)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "EXPLAIN SELECT jobs.id FROM procrastinate_jobs AS jobs"
            " WHERE NOT EXISTS (SELECT 1 FROM procrastinate_jobs AS other_jobs"
            "   WHERE jobs.lock IS NOT NULL AND other_jobs.lock = jobs.lock"
            "   AND (other_jobs.status = 'doing' OR (other_jobs.status = 'todo'"
            "   AND (other_jobs.priority > jobs.priority"
            "   OR (other_jobs.priority = jobs.priority AND other_jobs.id < jobs.id)))))"
            " AND jobs.status = 'todo' AND jobs.queue_name = ANY(ARRAY['jobs'])"
            " AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())"
            " ORDER BY jobs.priority DESC, jobs.id ASC LIMIT 1 FOR UPDATE OF jobs SKIP LOCKED"
        ).fetchall()
    return "\n".join(row[0] for row in rows)


async def test_a_burst_of_steps_is_analyzed_once_and_fetched_by_index(runtime: Runtime) -> None:
    _burst(runtime.database_url, BURST)
    async with runtime.db.connect() as conn:
        before = await queue_rows(conn)
    assert before.live == BURST and before.planned < 100  # the planner's stale idea

    assert await refresh_queue_stats(runtime.engine) is True

    async with runtime.db.connect() as conn:
        after = await queue_rows(conn)
    assert after.live == BURST and after.planned == pytest.approx(BURST, rel=0.2)
    plan = _fetch_plan(runtime.database_url)
    # One row from the priority index, its lock checked through migration 0005's index.
    assert "Sort" not in plan
    assert "procrastinate_jobs_priority_idx_v1" in plan
    assert "vidgate_procrastinate_jobs_lock_idx" in plan
    # Nothing more to do until the queue outgrows the estimate again.
    assert await refresh_queue_stats(runtime.engine) is False


async def test_a_small_queue_is_left_alone(runtime: Runtime) -> None:
    _burst(runtime.database_url, MIN_LIVE_STEPS - 1)
    assert await refresh_queue_stats(runtime.engine) is False
    async with runtime.db.connect() as conn:
        assert (await queue_rows(conn)).planned < 100


def test_stale_means_far_more_live_steps_than_planned() -> None:
    assert is_stale(QueueRows(live=5000, planned=10))
    assert is_stale(QueueRows(live=MIN_LIVE_STEPS, planned=MIN_LIVE_STEPS / 2 - 1))
    assert not is_stale(QueueRows(live=MIN_LIVE_STEPS - 1, planned=0))
    assert not is_stale(QueueRows(live=5000, planned=4000))
    # An estimate above the truth (the queue drained) is harmless.
    assert not is_stale(QueueRows(live=1500, planned=90000))
