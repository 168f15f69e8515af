"""Signed webhooks (Standard Webhooks) when a job ends: ``video.completed`` / ``video.failed``.

The event is enqueued in the same transaction as the terminal state, so it is sent at
least once even across a crash. Every attempt for one event carries the same
``webhook-id``, so a receiver can drop duplicates. Each tenant signs with its own
secret, which its keys can read at ``GET /v1/webhooks/secret``.

Deliveries run on a queue of their own (``webhooks``), each within a total deadline
(``webhook_timeout_s``), and at most ``webhook_per_destination`` per destination and
``webhook_per_tenant`` per tenant at once in a worker process (engine/delivery_gate.py):
one tenant's slow receiver delays only that tenant's events.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import secrets
from contextlib import AbstractContextManager
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from vidgate.core.errors import InvalidParameter
from vidgate.core.jobs import JobRecord, JobState
from vidgate.core.urls import OutboundURL, check_outbound_url
from vidgate.db.jobs import get_job
from vidgate.db.keys import webhook_secret
from vidgate.engine import steps
from vidgate.engine.backoff import backoff_s
from vidgate.engine.context import EngineContext
from vidgate.engine.delivery_gate import DeliveryGate
from vidgate.metrics import WEBHOOK_DELIVERIES
from vidgate.net import public_http

log = structlog.get_logger("vidgate.webhooks")

EVENTS = {JobState.COMPLETED: "video.completed", JobState.FAILED: "video.failed"}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def tenant_secret(conn: AsyncConnection, tenant_id: str) -> str:
    return await webhook_secret(conn, tenant_id, new_secret())


def lock(job_id: str) -> str:
    """Every delivery of a job's event holds this lock: one at a time, even when a
    stalled one is retried or a deferred one is put back."""
    return f"webhook:{job_id}"


async def enqueue_event(ctx: EngineContext, conn: AsyncConnection, job: JobRecord) -> None:
    """Call from the transaction that moved ``job`` to the terminal state it holds."""
    if job.webhook_url and job.state in EVENTS:
        await steps.enqueue(ctx.app, conn, steps.WEBHOOK, job.id, lock=lock(job.id), attempt=1)


async def enqueue_events(ctx: EngineContext, conn: AsyncConnection, jobs: list[JobRecord]) -> None:
    """``enqueue_event`` for many jobs, in one statement (a finalize write-back)."""
    ids = [job.id for job in jobs if job.webhook_url and job.state in EVENTS]
    await steps.enqueue_many(ctx.app, conn, steps.WEBHOOK, ids, lock=lock, attempt=1)


async def requeue(
    ctx: EngineContext, job_id: str, *, attempt: int, delay_s: float = 0.0, deferred: int = 0
) -> None:
    """Put a delivery back on the ``webhooks`` queue. Called from the running task: the
    new task holds the same lock, so it starts only once this one is gone, and if the
    process dies before this one is marked done, the sweeper runs it again (a
    duplicate delivery, with the same ``webhook-id``, never a lost event)."""
    async with ctx.db.begin() as conn:
        await steps.enqueue(
            ctx.app,
            conn,
            steps.WEBHOOK,
            job_id,
            delay_s=delay_s,
            lock=lock(job_id),
            attempt=attempt,
            **({"deferred": deferred} if deferred else {}),
        )


def event_body(job: JobRecord) -> dict[str, Any]:
    error = (
        {"code": job.error_code, "message": job.error_message}
        if job.state == JobState.FAILED
        else None
    )
    return {
        "id": f"evt_{job.id}_{job.state}",
        "object": "event",
        "type": EVENTS[job.state],
        "created_at": int((job.completed_at or dt.datetime.now(dt.UTC)).timestamp()),
        "data": {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": job.state,
            "error": error,
        },
    }


async def deliver(
    ctx: EngineContext,
    job_id: str,
    attempt: int,
    *,
    gate: DeliveryGate | None = None,
    deferred: int = 0,
) -> None:
    """One delivery attempt of a job's event, if its destination and its tenant are
    under their caps (``gate``; None: no caps, for a direct call); otherwise the same
    attempt is put back a moment later.

    ``deferred`` counts the times in a row this attempt found a cap full: it lengthens
    the next wait, never the count of attempts.
    """
    async with ctx.db.begin() as conn:
        job = await get_job(conn, job_id, include_deleted=True)
    if job is None or not job.webhook_url or job.state not in EVENTS:
        return
    try:
        # Checked again at call time: the setting may have changed since the job was
        # created, and a URL stored before the check was strict may not be usable.
        target = check_outbound_url(
            job.webhook_url, allow_insecure=ctx.settings.allow_insecure_urls, param="webhook_url"
        )
    except InvalidParameter as exc:
        log.warning("webhook.refused", job_id=job_id, reason=exc.message)
        WEBHOOK_DELIVERIES.labels("request", "refused").inc()
        return
    slot: AbstractContextManager[object] = contextlib.nullcontext()
    if gate is not None:
        dest = f"{target.host}:{target.port}"
        entered = gate.try_enter(dest, job.tenant_id)
        if entered is None:
            delay = gate.defer_s(
                dest, job.tenant_id, deferred=deferred, timeout_s=ctx.settings.webhook_timeout_s
            )
            log.debug("webhook.deferred", job_id=job_id, attempt=attempt, delay_s=round(delay, 2))
            await requeue(ctx, job_id, attempt=attempt, delay_s=delay, deferred=deferred + 1)
            return
        slot = entered
    try:
        with slot:
            outcome = await _attempt(ctx, job, target)
    except public_http.OutboundError as exc:
        # Only final ones come here (a non-public address): no retry, as for a URL
        # refused above.
        log.warning("webhook.refused", job_id=job_id, reason=exc.reason, detail=exc.detail)
        WEBHOOK_DELIVERIES.labels("request", "refused").inc()
        return
    if outcome is None:
        log.info("webhook.delivered", job_id=job_id, attempt=attempt, event_type=EVENTS[job.state])
        WEBHOOK_DELIVERIES.labels("request", "delivered").inc()
        return
    if attempt >= ctx.settings.webhook_max_attempts:
        log.warning("webhook.gave_up", job_id=job_id, attempt=attempt, outcome=outcome)
        WEBHOOK_DELIVERIES.labels("request", "failed").inc()
        return
    WEBHOOK_DELIVERIES.labels("request", "retry").inc()
    delay = backoff_s(attempt, base=2.0, cap=600.0)
    log.info(
        "webhook.retry", job_id=job_id, attempt=attempt, outcome=outcome, delay_s=round(delay, 2)
    )
    await requeue(ctx, job_id, attempt=attempt + 1, delay_s=delay)


async def _attempt(ctx: EngineContext, job: JobRecord, target: OutboundURL) -> str | None:
    """Send the signed event once: None when the receiver answered 2xx, otherwise what
    went wrong, in words. A final ``OutboundError`` (a non-public address) is raised.

    ``webhook_timeout_s`` is a total deadline, from the lookup to the answer's status:
    per-read timeouts alone let a receiver that sends a byte every few seconds hold the
    delivery forever. The answer's body is never read.
    """
    # Read (or made) only once a slot is taken: a deferred delivery writes nothing but
    # its own task.
    async with ctx.db.begin() as conn:
        secret = await tenant_secret(conn, job.tenant_id)
    body = event_body(job)
    payload = json.dumps(body, separators=(",", ":"))
    message_id = str(body["id"])
    now = dt.datetime.now(dt.UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "vidgate-webhooks",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, payload),
    }
    try:
        status = await public_http.post(
            target,
            body=payload.encode(),
            headers=headers,
            deadline_s=ctx.settings.webhook_timeout_s,
            allow_private=ctx.settings.allow_insecure_urls,
        )
    except public_http.OutboundError as exc:
        if exc.final:
            raise
        return exc.reason
    return None if 200 <= status < 300 else f"HTTP {status}"
