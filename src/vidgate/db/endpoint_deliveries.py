"""Due deliveries to webhook endpoints: the deliverer's claims (engine/endpoint_deliverer.py),
the attempts it writes back, and the endpoint's failure streak.

A delivery row is its own queue entry, as a job row is for its submission and polls
(engine/due.py): a claim moves ``next_attempt_at`` a lease ahead, so the claims of a
process that dies become due again when the lease runs out. A write-back applies only
while the delivery is still pending with the attempts the claim saw, and the attempt's
number is its key: a delivery's attempt is recorded once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.webhook_endpoints import AttemptOutcome, DeliveryClaim, DeliveryStatus

# Notified by the trigger that writes new deliveries (migration 0016) and by a resend.
CHANNEL = "vidgate_endpoint_deliveries"

_CLAIM = sa.text(
    "UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => :lease),"
    " updated_at = now()"
    " FROM webhook_endpoints e"
    " WHERE e.id = d.endpoint_id AND d.id IN ("
    "  SELECT dd.id FROM webhook_deliveries dd JOIN webhook_endpoints ee"
    "  ON ee.id = dd.endpoint_id"
    "  WHERE dd.status = 'pending' AND dd.next_attempt_at <= now() AND ee.disabled_at IS NULL"
    "  ORDER BY dd.next_attempt_at LIMIT :limit FOR UPDATE OF dd SKIP LOCKED)"
    " RETURNING d.id, d.endpoint_id, e.tenant_id, e.url, d.event_id, d.payload, d.attempts,"
    " d.retry, e.secret,"
    " CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END AS previous"
)


def _claim(row: Any) -> DeliveryClaim:
    return DeliveryClaim(
        delivery_id=row.id,
        endpoint_id=row.endpoint_id,
        tenant_id=row.tenant_id,
        url=row.url,
        event_id=row.event_id,
        payload=row.payload,
        attempts=row.attempts,
        retry=row.retry,
        secrets=(row.secret, row.previous) if row.previous else (row.secret,),
    )


async def claim_due(conn: AsyncConnection, *, limit: int, lease_s: float) -> list[DeliveryClaim]:
    """Up to ``limit`` pending deliveries due now to enabled endpoints, oldest due first;
    rows other deliverers hold are skipped."""
    result = await conn.execute(_CLAIM, {"lease": lease_s, "limit": limit})
    return [_claim(row) for row in result]


async def next_due_in(conn: AsyncConnection) -> float | None:
    """Seconds until the earliest pending delivery is due (0 when overdue); None: none."""
    value = await conn.scalar(
        sa.text(
            "SELECT greatest(0, extract(epoch FROM min(next_attempt_at) - now()))"
            " FROM webhook_deliveries WHERE status = 'pending'"
        )
    )
    return None if value is None else float(value)


async def set_due(conn: AsyncConnection, claims: list[DeliveryClaim], *, in_s: float) -> None:
    """Move claimed deliveries' due time ``in_s`` from now (a lease renewed, or 0: given
    back), where they are still pending as claimed."""
    await conn.execute(
        sa.text(
            "UPDATE webhook_deliveries SET next_attempt_at = now() + make_interval(secs => :s)"
            " WHERE id = ANY(CAST(:ids AS text[])) AND status = 'pending'"
        ),
        {"s": in_s, "ids": [c.delivery_id for c in claims]},
    )


async def record_attempt(
    conn: AsyncConnection,
    outcome: AttemptOutcome,
    *,
    status: DeliveryStatus,
    next_in_s: float | None,
) -> bool:
    """Write one attempt and the delivery's new status (due again ``next_in_s`` from now
    while pending). False, writing nothing, when the delivery moved on since the claim
    (deleted, or an attempt recorded by a deliverer whose lease had run out)."""
    claim = outcome.claim
    attempt = claim.attempts + 1
    updated = await conn.scalar(
        sa.text(
            "UPDATE webhook_deliveries SET attempts = :attempt, status = :status,"
            " next_attempt_at = CASE WHEN :status = 'pending'"
            "  THEN now() + make_interval(secs => :next) END,"
            " updated_at = now()"
            " WHERE id = :id AND status = 'pending' AND attempts = :before RETURNING id"
        ),
        {
            "attempt": attempt,
            "status": status,
            "next": next_in_s or 0.0,
            "id": claim.delivery_id,
            "before": claim.attempts,
        },
    )
    if updated is None:
        return False
    await conn.execute(
        sa.text(
            "INSERT INTO webhook_delivery_attempts (delivery_id, attempt, attempted_at,"
            " status_code, error, latency_ms, response_snippet)"
            " VALUES (:id, :attempt, :at, :code, :error, :latency, :snippet)"
            " ON CONFLICT DO NOTHING"
        ),
        {
            "id": claim.delivery_id,
            "attempt": attempt,
            "at": outcome.attempted_at,
            "code": outcome.status_code,
            "error": outcome.error,
            "latency": outcome.latency_ms,
            "snippet": outcome.response_snippet,
        },
    )
    return True


async def endpoint_answered(conn: AsyncConnection, endpoint_id: str) -> None:
    """A delivery succeeded: the endpoint's failure streak ends."""
    await conn.execute(
        sa.text(
            "UPDATE webhook_endpoints SET failing_since = NULL"
            " WHERE id = :id AND failing_since IS NOT NULL"
        ),
        {"id": endpoint_id},
    )


async def endpoint_failed(
    conn: AsyncConnection, endpoint_id: str, *, at: dt.datetime, disable_after: dt.timedelta
) -> dt.datetime | None:
    """An attempt failed at ``at``: the streak starts then unless it had started. Returns
    when it started if that is ``disable_after`` ago or more (and the endpoint is still
    enabled), else None."""
    row = (
        await conn.execute(
            sa.text(
                "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, :at)"
                " WHERE id = :id AND disabled_at IS NULL"
                " RETURNING failing_since, failing_since <= now() - :after AS overdue"
            ),
            {"id": endpoint_id, "at": at, "after": disable_after},
        )
    ).first()
    return row.failing_since if row is not None and row.overdue else None


async def disable_endpoint(conn: AsyncConnection, endpoint_id: str, reason: str) -> str | None:
    """Disable the endpoint and end its pending deliveries as failed. Its tenant's id,
    or None when it was disabled already (or is gone)."""
    tenant_id = await conn.scalar(
        sa.text(
            "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = :reason"
            " WHERE id = :id AND disabled_at IS NULL RETURNING tenant_id"
        ),
        {"id": endpoint_id, "reason": reason},
    )
    if tenant_id is None:
        return None
    await conn.execute(
        sa.text(
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL,"
            " updated_at = now() WHERE endpoint_id = :id AND status = 'pending'"
        ),
        {"id": endpoint_id},
    )
    return str(tenant_id)
