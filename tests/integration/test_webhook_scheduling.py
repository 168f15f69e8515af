"""Webhook deliveries against a real PostgreSQL and real receivers on loopback: the total
deadline, the caps per destination and per tenant (a delivery over one is put back,
without an attempt), and webhooks left on the shared ``jobs`` queue by an older version.

Steps are called directly (no worker); what a step put back on the queue is read from
procrastinate's own table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
import pytest
from tests.e2e.test_webhooks import Receiver
from tests.integration.conftest import add_caller, runtime_on
from tests.peers import Peer, trickle_headers

from vidgate.core.spec import VideoRequest
from vidgate.db.jobs import db_now, update_job
from vidgate.engine import steps, tasks, webhooks
from vidgate.engine.delivery_gate import DeliveryGate
from vidgate.engine.service import JobService, Principal
from vidgate.runtime import Runtime

TENANT = "tenant_w"


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(
        database_url, tmp_path, allow_insecure_urls=True, webhook_timeout_s=1.0
    ) as rt:
        async with rt.db.begin() as conn:
            await add_caller(conn, "w")
        yield rt


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


async def _finished_job(runtime: Runtime, webhook_url: str) -> str:
    """A completed job whose event is to be sent to ``webhook_url`` (its own enqueued
    delivery is removed: the test plays the worker)."""
    principal = Principal("key_w", TENANT, "test")
    job = await JobService(runtime.engine).create(
        principal,
        VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240"),
        webhook_url=webhook_url,
    )
    async with runtime.db.begin() as conn:
        await update_job(conn, job.id, state="completed", completed_at=db_now())
    return job.id


def _destination(url: str) -> str:
    """The gate's key for a loopback URL: ``127.0.0.1:port``."""
    return url.split("://", 1)[1].split("/", 1)[0]


def _queued(url: str, job_id: str) -> list[tuple[str, str, str, dict[str, Any], float]]:
    """(queue, lock, task, args, seconds until due) of the job's queued steps."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT queue_name, lock, task_name, args,"
            " EXTRACT(EPOCH FROM (COALESCE(scheduled_at, now()) - now()))"
            " FROM procrastinate_jobs WHERE args->>'job_id' = %s AND status = 'todo'"
            " ORDER BY id",
            (job_id,),
        ).fetchall()
        conn.execute("DELETE FROM procrastinate_jobs WHERE args->>'job_id' = %s", (job_id,))
    return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]


async def test_a_delivery_over_a_cap_is_put_back_without_an_attempt(
    runtime: Runtime, receiver: Receiver
) -> None:
    ctx = runtime.engine
    job_id = await _finished_job(runtime, receiver.url)
    _queued(runtime.database_url, job_id)
    dest = _destination(receiver.url)

    # The destination is full (another tenant's deliveries to the same receiver).
    gate = DeliveryGate(per_destination=1, per_tenant=8)
    held = gate.try_enter(dest, "someone else")
    assert held is not None
    await webhooks.deliver(ctx, job_id, 3, gate=gate)
    assert receiver.calls == []
    [(queue, lock, task, args, due_in)] = _queued(runtime.database_url, job_id)
    assert (queue, lock, task) == (steps.WEBHOOK_QUEUE, f"webhook:{job_id}", steps.WEBHOOK)
    # The same attempt, one deferral more, a moment later.
    assert (args["attempt"], args["deferred"]) == (3, 1)
    assert 0 < due_in <= 1.0

    # The tenant is full (its deliveries to other host names).
    with held:
        pass
    gate = DeliveryGate(per_destination=8, per_tenant=1)
    held = gate.try_enter("elsewhere.example:443", TENANT)
    assert held is not None
    await webhooks.deliver(ctx, job_id, 3, gate=gate, deferred=1)
    assert receiver.calls == []
    [(_, _, _, args, _)] = _queued(runtime.database_url, job_id)
    assert (args["attempt"], args["deferred"]) == (3, 2)

    # A slot is free: sent, nothing put back, the slot given back.
    with held:
        pass
    await webhooks.deliver(ctx, job_id, 3, gate=gate, deferred=2)
    assert len(receiver.calls) == 1
    assert receiver.calls[0][0]["webhook-id"] == f"evt_{job_id}_completed"
    assert _queued(runtime.database_url, job_id) == []
    assert gate.in_flight(dest, TENANT) == (0, 0)


async def test_a_receiver_that_never_finishes_its_answer_is_given_up_at_the_deadline(
    runtime: Runtime,
) -> None:
    async with Peer(trickle_headers(interval_s=0.5)) as slow:
        url = f"http://127.0.0.1:{slow.port}"
        job_id = await _finished_job(runtime, f"{url}/hook")
        _queued(runtime.database_url, job_id)
        gate = DeliveryGate(per_destination=4, per_tenant=8)
        started = time.monotonic()
        # The bound only keeps a regression from hanging the suite.
        await asyncio.wait_for(webhooks.deliver(runtime.engine, job_id, 1, gate=gate), 15)
        # webhook_timeout_s is 1 s; bytes every 0.5 s never trip a per-read timeout.
        assert time.monotonic() - started < 5
        assert slow.connections == 1
    # Retried later as the next attempt, like any failed delivery.
    [(queue, _, _, args, _)] = _queued(runtime.database_url, job_id)
    assert (queue, args["attempt"]) == (steps.WEBHOOK_QUEUE, 2)
    assert "deferred" not in args
    assert gate.in_flight(_destination(url), TENANT) == (0, 0)


async def test_a_webhook_left_on_the_jobs_queue_moves_to_its_own_unsent(
    runtime: Runtime, receiver: Receiver
) -> None:
    """A delivery enqueued on ``jobs`` by a version before the split runs on a cancel
    worker: it goes to ``webhooks`` without taking that slot for a delivery."""
    job_id = await _finished_job(runtime, receiver.url)
    _queued(runtime.database_url, job_id)
    gate = DeliveryGate(per_destination=4, per_tenant=8)
    context = procrastinate.JobContext(
        app=runtime.engine.app,
        job=procrastinate.jobs.Job(
            id=1,
            queue=steps.QUEUE,
            lock=f"webhook:{job_id}",
            queueing_lock=None,
            task_name=steps.WEBHOOK,
            task_kwargs={"job_id": job_id, "attempt": 2},
        ),
        start_timestamp=time.time(),
        additional_context={tasks.CONTEXT_KEY: runtime.engine, tasks.GATE_KEY: gate},
        abort_reason=lambda: None,
    )
    await tasks.webhook.func(context, job_id=job_id, attempt=2)
    assert receiver.calls == []
    [(queue, lock, _, args, due_in)] = _queued(runtime.database_url, job_id)
    assert (queue, lock, args["attempt"]) == (steps.WEBHOOK_QUEUE, f"webhook:{job_id}", 2)
    assert due_in <= 0
