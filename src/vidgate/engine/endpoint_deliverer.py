"""Sends the events of projects' webhook endpoints (``/v1/webhook_endpoints``).

A trigger on ``jobs`` writes one delivery per subscribed endpoint in the transaction of
each state change (migration 0016); this loop claims the due ones in batches (the
delivery row is the queue, as the job row is for the submitter and the poller:
engine/due.py), sends each signed per Standard Webhooks, and records every attempt:
when, the status or what went wrong, the latency, the start of the answer.

- Same rules as the per-request ``webhook_url`` (engine/webhooks.py): the URL is
  checked again at send time, the request goes only to public addresses
  (net/public_http.py, unless ``allow_insecure_urls``), within ``webhook_timeout_s``,
  redirects not followed, under the same caps per destination and per tenant
  (engine/delivery_gate.py; a delivery that finds one full is due again a moment later,
  no attempt counted).
- A failed attempt is retried on ``RETRY_DELAYS_S`` (core/webhook_endpoints.py): the
  8th and last comes 27.6 h after the first. A refused URL or address is not retried.
- Every attempt of an event carries the same ``webhook-id``; after a secret's rotation
  both secrets sign for 24 h (``webhook-signature`` holds both, space-separated).
- An endpoint whose attempts have all failed for ``DISABLE_AFTER`` (3 days) is
  disabled, with the reason, and its pending deliveries end as failed; the audit log
  records it (actor ``vidgate``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from contextlib import AbstractContextManager

from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from vidgate.core.errors import InvalidParameter
from vidgate.core.urls import check_outbound_url
from vidgate.core.webhook_endpoints import (
    DISABLE_AFTER,
    SNIPPET_BYTES,
    AttemptOutcome,
    DeliveryClaim,
    DeliveryStatus,
    retry_delay_s,
)
from vidgate.db import audit
from vidgate.db import endpoint_deliveries as deliveries
from vidgate.db.database import autocommit
from vidgate.engine.context import EngineContext
from vidgate.engine.delivery_gate import DeliveryGate
from vidgate.engine.due import DueWorker
from vidgate.metrics import WEBHOOK_DELIVERIES
from vidgate.net import public_http

# The actor of what the deliverer itself does in the audit log (disabling an endpoint).
SYSTEM_ACTOR = "vidgate"


def signature(claim: DeliveryClaim, at: dt.datetime) -> str:
    """``webhook-signature``: one ``v1,...`` per live secret, space-separated."""
    return " ".join(Webhook(s).sign(claim.event_id, at, claim.payload) for s in claim.secrets)


def disabled_reason(since: dt.datetime, last_error: str | None) -> str:
    days = DISABLE_AFTER.days
    start = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"every delivery attempt failed for {days} days (since {start});"
        f" the last: {last_error or 'unknown'}"
    )


class EndpointDeliverer(DueWorker[DeliveryClaim, AttemptOutcome]):
    channel = deliveries.CHANNEL
    name = "endpoint_deliverer"

    def __init__(
        self,
        ctx: EngineContext,
        *,
        concurrency: int,
        gate: DeliveryGate | None = None,
        batch: int = 50,
        idle_s: float = 1.0,
    ) -> None:
        super().__init__(ctx, concurrency=concurrency, batch=batch, idle_s=idle_s)
        self.gate = gate

    async def claim(self, limit: int) -> list[DeliveryClaim]:
        async with autocommit(self.ctx.db) as conn:
            return await deliveries.claim_due(conn, limit=limit, lease_s=self.lease_s)

    def job_id(self, claim: DeliveryClaim) -> str:
        return claim.delivery_id

    def log_context(self, claim: DeliveryClaim) -> dict[str, str]:
        return {"delivery_id": claim.delivery_id, "endpoint_id": claim.endpoint_id}

    async def next_due_in(self) -> float | None:
        async with self.ctx.db.connect() as conn:
            return await deliveries.next_due_in(conn)

    async def renew(self, claims: list[DeliveryClaim]) -> None:
        async with autocommit(self.ctx.db) as conn:
            await deliveries.set_due(conn, claims, in_s=self.lease_s)

    async def release(self, claims: list[DeliveryClaim]) -> None:
        async with autocommit(self.ctx.db) as conn:
            await deliveries.set_due(conn, claims, in_s=0.0)

    async def work(self, claim: DeliveryClaim) -> AttemptOutcome:
        settings = self.ctx.settings
        now = dt.datetime.now(dt.UTC)
        try:
            target = check_outbound_url(
                claim.url, allow_insecure=settings.allow_insecure_urls, param="url"
            )
        except InvalidParameter as exc:
            return AttemptOutcome(claim, now, 0, None, f"refused: {exc.message}", None, final=True)
        slot: AbstractContextManager[object] = contextlib.nullcontext()
        if self.gate is not None:
            dest = f"{target.host}:{target.port}"
            entered = self.gate.try_enter(dest, claim.tenant_id)
            if entered is None:
                delay = self.gate.defer_s(
                    dest, claim.tenant_id, deferred=0, timeout_s=settings.webhook_timeout_s
                )
                return AttemptOutcome(claim, now, 0, None, None, None, defer_s=delay)
            slot = entered
        headers = {
            "content-type": "application/json",
            "user-agent": "vidgate-webhooks",
            "webhook-id": claim.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature(claim, now),
        }
        started = time.monotonic()
        with slot:
            try:
                status, snippet = await public_http.post_reading(
                    target,
                    body=claim.payload.encode(),
                    headers=headers,
                    deadline_s=settings.webhook_timeout_s,
                    allow_private=settings.allow_insecure_urls,
                    max_bytes=SNIPPET_BYTES,
                )
            except public_http.OutboundError as exc:
                latency = int((time.monotonic() - started) * 1000)
                return AttemptOutcome(claim, now, latency, None, exc.reason, None, final=exc.final)
        latency = int((time.monotonic() - started) * 1000)
        error = None if 200 <= status < 300 else f"HTTP {status}"
        text = snippet.decode("utf-8", errors="replace").replace("\x00", "")
        return AttemptOutcome(claim, now, latency, status, error, text)

    async def write_back(self, results: list[AttemptOutcome]) -> None:
        # One transaction each: an endpoint deleted meanwhile fails only its own.
        for outcome in results:
            try:
                await self._write_one(outcome)
            except Exception as exc:
                self.log.warning(
                    "endpoint_delivery.write_failed",
                    delivery_id=outcome.claim.delivery_id,
                    error=type(exc).__name__,
                )

    async def _write_one(self, outcome: AttemptOutcome) -> None:
        claim = outcome.claim
        if outcome.defer_s is not None:
            async with autocommit(self.ctx.db) as conn:
                await deliveries.set_due(conn, [claim], in_s=outcome.defer_s)
            return
        attempt = claim.attempts + 1
        status: DeliveryStatus = "delivered" if outcome.delivered else "failed"
        next_in = None
        if not outcome.delivered and not outcome.final and claim.retry:
            next_in = retry_delay_s(attempt, random.random())
            if next_in is not None:
                status = "pending"
        async with self.ctx.db.begin() as conn:
            if not await deliveries.record_attempt(conn, outcome, status=status, next_in_s=next_in):
                return
            if outcome.delivered:
                await deliveries.endpoint_answered(conn, claim.endpoint_id)
            else:
                await self._failed(conn, outcome)
        outcome_name = "retry" if status == "pending" else status
        WEBHOOK_DELIVERIES.labels("endpoint", outcome_name).inc()
        self.log.info(
            f"endpoint_delivery.{outcome_name}",
            delivery_id=claim.delivery_id,
            endpoint_id=claim.endpoint_id,
            attempt=attempt,
            outcome=outcome.error,
            retry_in_s=None if next_in is None else round(next_in, 1),
        )

    async def _failed(self, conn: AsyncConnection, outcome: AttemptOutcome) -> None:
        claim = outcome.claim
        since = await deliveries.endpoint_failed(
            conn, claim.endpoint_id, at=outcome.attempted_at, disable_after=DISABLE_AFTER
        )
        if since is None:
            return
        reason = disabled_reason(since, outcome.error)
        tenant_id = await deliveries.disable_endpoint(conn, claim.endpoint_id, reason)
        if tenant_id is None:
            return
        await audit.record(
            conn,
            actor=SYSTEM_ACTOR,
            action="webhook_endpoints.disable",
            tenant_id=tenant_id,
            target=claim.endpoint_id,
            detail={"reason": reason},
        )
        self.log.warning("endpoint.disabled", endpoint_id=claim.endpoint_id, reason=reason)
