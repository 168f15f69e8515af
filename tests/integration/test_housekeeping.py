"""Housekeeping (engine/housekeeping.py) on a real PostgreSQL, time-travelled: rows are
written with old times, one pass runs, and exactly the rows past their retention went.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration.conftest import add_caller, runtime_on

from vidgate.engine.housekeeping import housekeep_once
from vidgate.runtime import Runtime

DAY_S = 86400.0
BATCH = 3


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path, housekeeping_batch=BATCH) as rt:
        async with rt.db.begin() as conn:
            await add_caller(conn, "k")
        yield rt


async def _sql(rt: Runtime, statement: str, **params: Any) -> list[Any]:
    async with rt.db.begin() as conn:
        result = await conn.execute(sa.text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def _job(rt: Runtime, job_id: str, state: str, *, ended_days_ago: float | None) -> None:
    await _sql(
        rt,
        "INSERT INTO jobs (id, tenant_id, api_key_id, mode, model, kind, spec, state, provider,"
        " created_at, completed_at) VALUES (:id, 'tenant_k', 'key_k', 'test', 'sandbox',"
        " 'text_to_video', '{}', :state, 'sandbox', now() - interval '40 days',"
        " now() - make_interval(secs => :ended))",
        id=job_id,
        state=state,
        ended=(ended_days_ago or 0) * DAY_S,
    )
    if ended_days_ago is None:
        await _sql(rt, "UPDATE jobs SET completed_at = NULL WHERE id = :id", id=job_id)


async def _ids(rt: Runtime, statement: str) -> set[str]:
    return {str(row[0]) for row in await _sql(rt, statement)}


async def test_one_pass_removes_exactly_the_rows_past_their_retention(runtime: Runtime) -> None:
    rt = runtime
    # Jobs: ended long ago, ended lately, failed long ago but watched for a late result,
    # still waiting upstream.
    await _job(rt, "job_old", "completed", ended_days_ago=9)
    await _job(rt, "job_new", "completed", ended_days_ago=1)
    await _job(rt, "job_watched", "failed", ended_days_ago=9)
    await _sql(rt, "UPDATE jobs SET late_check_at = now() WHERE id = 'job_watched'")
    await _job(rt, "job_waiting", "waiting", ended_days_ago=None)

    # procrastinate's steps, each as old as its last event.
    steps = {
        "failed_old": ("failed", 8),
        "cancelled_old": ("cancelled", 8),
        "aborted_old": ("aborted", 8),
        "succeeded_old": ("succeeded", 8),
        "failed_new": ("failed", 1),
        "todo_old": ("todo", 8),
        "doing_old": ("doing", 8),
    }
    for name, (status, days) in steps.items():
        await _sql(
            rt,
            "WITH j AS (INSERT INTO procrastinate_jobs (queue_name, task_name, status, args)"
            " VALUES ('media', 'vidgate:finalize', :status,"
            " jsonb_build_object('name', CAST(:name AS text)))"
            " RETURNING id)"
            " INSERT INTO procrastinate_events (job_id, type, at)"
            " SELECT id, 'deferred'::procrastinate_job_event_type, now() - interval '20 days'"
            " FROM j UNION ALL"
            " SELECT id, 'started'::procrastinate_job_event_type,"
            " now() - make_interval(secs => :age) FROM j",
            status=status,
            name=name,
            age=days * DAY_S,
        )

    # Idempotency keys: a day is their window.
    for i in range(7):
        await _sql(
            rt,
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id, created_at)"
            " VALUES ('tenant_k', :key, 'h', 'job_old', now() - interval '25 hours')",
            key=f"old-{i}",
        )
    await _sql(
        rt,
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id, created_at)"
        " VALUES ('tenant_k', 'recent', 'h', 'job_new', now() - interval '23 hours')",
    )

    # The sandbox's tasks, all created 10 days ago, but one: keyed by the job's id.
    for task, key, age_days in (
        ("sbx_old", "job_old", 10),
        ("sbx_new_job", "job_new", 10),
        ("sbx_watched", "job_watched", 10),
        ("sbx_waiting", "job_waiting", 10),
        ("sbx_orphan", "no_such_job", 10),
        ("sbx_fresh_orphan", "another_job", 1),
    ):
        await _sql(
            rt,
            "INSERT INTO sandbox_tasks (id, idempotency_key, request, latency_s, created_at)"
            " VALUES (:id, :key, '{}', 0, now() - make_interval(secs => :age))",
            id=task,
            key=key,
            age=age_days * DAY_S,
        )

    # Webhook endpoints' deliveries, with an attempt each.
    await _sql(
        rt,
        "INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret)"
        " VALUES ('we_1', 'tenant_k', 'https://example.com/h', '{video.completed}', 'whsec_x')",
    )
    for delivery, status, age_days in (
        ("whd_delivered_old", "delivered", 31),
        ("whd_failed_old", "failed", 31),
        ("whd_delivered_new", "delivered", 29),
        ("whd_pending_old", "pending", 31),
    ):
        await _sql(
            rt,
            "INSERT INTO webhook_deliveries (id, endpoint_id, job_id, event_id, event_type,"
            " payload, status, updated_at) VALUES (:id, 'we_1', 'job_old', :id,"
            " 'video.completed', '{}', :status, now() - make_interval(secs => :age))",
            id=delivery,
            status=status,
            age=age_days * DAY_S,
        )
        await _sql(
            rt,
            "INSERT INTO webhook_delivery_attempts (delivery_id, attempt, attempted_at,"
            " latency_ms) VALUES (:id, 1, now() - make_interval(secs => :age), 5)",
            id=delivery,
            age=age_days * DAY_S,
        )

    pruned = await housekeep_once(rt.engine)

    assert pruned == {
        "finished_steps": 4,
        "idempotency_keys": 7,
        "sandbox_tasks": 2,
        "webhook_deliveries": 2,
    }
    assert await _ids(rt, "SELECT args->>'name' FROM procrastinate_jobs") == {
        "failed_new",
        "todo_old",
        "doing_old",
    }
    assert await _ids(rt, "SELECT key FROM idempotency_keys") == {"recent"}
    assert await _ids(rt, "SELECT id FROM sandbox_tasks") == {
        "sbx_new_job",
        "sbx_watched",
        "sbx_waiting",
        "sbx_fresh_orphan",
    }
    assert await _ids(rt, "SELECT id FROM webhook_deliveries") == {
        "whd_delivered_new",
        "whd_pending_old",
    }
    assert await _ids(rt, "SELECT delivery_id FROM webhook_delivery_attempts") == {
        "whd_delivered_new",
        "whd_pending_old",
    }
    # The jobs themselves are never pruned.
    assert len(await _ids(rt, "SELECT id FROM jobs")) == 4
    assert await housekeep_once(rt.engine) == dict.fromkeys(pruned, 0)


async def test_a_pass_is_bounded_and_workers_pruning_together_share_the_backlog(
    runtime: Runtime,
) -> None:
    rt = runtime
    await _job(rt, "job_old", "completed", ended_days_ago=9)
    backlog = 75
    await _sql(
        rt,
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id, created_at)"
        " SELECT 'tenant_k', 'k' || i, 'h', 'job_old', now() - interval '2 days'"
        " FROM generate_series(1, :n) AS i",
        n=backlog,
    )
    # Two workers at once: ten statements of three rows each at most, per pass.
    first = await asyncio.gather(housekeep_once(rt.engine), housekeep_once(rt.engine))
    removed = [p["idempotency_keys"] for p in first]
    assert all(n <= 10 * BATCH for n in removed) and sum(removed) == 2 * 10 * BATCH
    assert await _ids(rt, "SELECT count(*) FROM idempotency_keys") == {str(backlog - 60)}
    assert (await housekeep_once(rt.engine))["idempotency_keys"] == backlog - 60
    assert await _ids(rt, "SELECT count(*) FROM idempotency_keys") == {"0"}
