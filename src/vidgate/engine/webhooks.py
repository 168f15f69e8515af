"""Signed webhooks (Standard Webhooks) when a job ends: ``video.completed`` / ``video.failed``.

The event is enqueued in the same transaction as the terminal state, so it is sent at
least once even across a crash. Every attempt for one event carries the same
``webhook-id``, so a receiver can drop duplicates. Each tenant signs with its own
secret, which its keys can read at ``GET /v1/webhooks/secret``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from vidgate.core.errors import InvalidParameter
from vidgate.core.urls import check_outbound_url
from vidgate.db import repo
from vidgate.engine import steps
from vidgate.engine.backoff import backoff_s
from vidgate.engine.context import EngineContext
from vidgate.net import public_http

log = structlog.get_logger("vidgate.webhooks")

EVENTS = {"completed": "video.completed", "failed": "video.failed"}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def tenant_secret(conn: AsyncConnection, tenant_id: str) -> str:
    return await repo.webhook_secret(conn, tenant_id, new_secret())


async def enqueue_event(
    ctx: EngineContext, conn: AsyncConnection, job: repo.JobRecord, state: str
) -> None:
    """Call from the transaction that moves ``job`` to a terminal ``state``."""
    if job.webhook_url and state in EVENTS:
        await steps.enqueue(
            ctx.app, conn, steps.WEBHOOK, job.id, lock=f"webhook:{job.id}", attempt=1
        )


def event_body(job: repo.JobRecord) -> dict[str, Any]:
    error = (
        {"code": job.error_code, "message": job.error_message} if job.state == "failed" else None
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


async def deliver(ctx: EngineContext, job_id: str, attempt: int) -> None:
    async with ctx.db.begin() as conn:
        job = await repo.get_job(conn, job_id, include_deleted=True)
        if job is None or not job.webhook_url or job.state not in EVENTS:
            return
        secret = await tenant_secret(conn, job.tenant_id)
    url = job.webhook_url
    body = event_body(job)
    payload = json.dumps(body, separators=(",", ":"))
    message_id = str(body["id"])
    try:
        # Checked again at call time: the setting may have changed since the job was
        # created, and a URL stored before the check was strict may not be usable.
        target = check_outbound_url(
            url, allow_insecure=ctx.settings.allow_insecure_urls, param="webhook_url"
        )
    except InvalidParameter as exc:
        log.warning("webhook.refused", job_id=job_id, reason=exc.message)
        return
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
        ok = 200 <= status < 300
        outcome = f"HTTP {status}"
    except public_http.OutboundError as exc:
        if exc.final:
            # A non-public address: no retry, as for a URL refused above.
            log.warning("webhook.refused", job_id=job_id, reason=exc.reason, detail=exc.detail)
            return
        ok, outcome = False, exc.reason
    if ok:
        log.info("webhook.delivered", job_id=job_id, attempt=attempt, event=body["type"])
        return
    if attempt >= ctx.settings.webhook_max_attempts:
        log.warning("webhook.gave_up", job_id=job_id, attempt=attempt, outcome=outcome)
        return
    delay = backoff_s(attempt, base=2.0, cap=600.0)
    log.info(
        "webhook.retry", job_id=job_id, attempt=attempt, outcome=outcome, delay_s=round(delay, 2)
    )
    async with ctx.db.begin() as conn:
        await steps.enqueue(
            ctx.app,
            conn,
            steps.WEBHOOK,
            job_id,
            delay_s=delay,
            lock=f"webhook:{job_id}",
            attempt=attempt + 1,
        )
