"""Webhook endpoints of a project and their deliveries, as the admin API reads and
changes them. Every read and write is scoped to a tenant (``tenant_id=None``: an
operator's, any tenant). What the deliverer claims and writes back is in
db/endpoint_deliveries.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.webhook_endpoints import (
    ROTATION_GRACE,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
)
from vidgate.db.schema import (
    tenants,
    webhook_deliveries,
    webhook_delivery_attempts,
    webhook_endpoints,
)

_E = webhook_endpoints.c
_D = webhook_deliveries.c
_A = webhook_delivery_attempts.c
_ENDPOINT_COLUMNS = (
    _E.id,
    _E.tenant_id,
    _E.url,
    _E.events,
    _E.created_at,
    _E.failing_since,
    _E.disabled_at,
    _E.disabled_reason,
    # A grace period that has run out is no grace period.
    sa.case(
        (_E.previous_secret_expires_at > sa.func.now(), _E.previous_secret_expires_at),
        else_=None,
    ).label("previous_secret_expires_at"),
)


def _endpoint(row: Any) -> EndpointRecord:
    return EndpointRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        events=tuple(row.events),
        created_at=row.created_at,
        failing_since=row.failing_since,
        disabled_at=row.disabled_at,
        disabled_reason=row.disabled_reason,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


def _scoped(stmt: Any, endpoint_id: str, tenant_id: str | None) -> Any:
    stmt = stmt.where(_E.id == endpoint_id)
    return stmt if tenant_id is None else stmt.where(_E.tenant_id == tenant_id)


async def count_endpoints(conn: AsyncConnection, tenant_id: str) -> int:
    """How many endpoints the tenant has, its row locked so that two creates at once
    count one after the other."""
    await conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id).with_for_update())
    return int(
        await conn.scalar(
            sa.select(sa.func.count())
            .select_from(webhook_endpoints)
            .where(_E.tenant_id == tenant_id)
        )
        or 0
    )


async def insert_endpoint(
    conn: AsyncConnection,
    *,
    endpoint_id: str,
    tenant_id: str,
    url: str,
    events: Sequence[str],
    secret: str,
) -> EndpointRecord:
    row = (
        await conn.execute(
            webhook_endpoints.insert()
            .values(
                id=endpoint_id, tenant_id=tenant_id, url=url, events=list(events), secret=secret
            )
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).one()
    return _endpoint(row)


async def list_endpoints(conn: AsyncConnection, tenant_id: str) -> list[EndpointRecord]:
    rows = await conn.execute(
        sa.select(*_ENDPOINT_COLUMNS).where(_E.tenant_id == tenant_id).order_by(_E.id)
    )
    return [_endpoint(row) for row in rows]


async def get_endpoint(
    conn: AsyncConnection, endpoint_id: str, *, tenant_id: str | None, for_update: bool = False
) -> EndpointRecord | None:
    stmt = _scoped(sa.select(*_ENDPOINT_COLUMNS), endpoint_id, tenant_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return _endpoint(row) if row else None


async def delete_endpoint(
    conn: AsyncConnection, endpoint_id: str, *, tenant_id: str | None
) -> EndpointRecord | None:
    """Delete the endpoint and, with it, its deliveries and their attempts."""
    row = (
        await conn.execute(
            _scoped(webhook_endpoints.delete(), endpoint_id, tenant_id).returning(
                *_ENDPOINT_COLUMNS
            )
        )
    ).first()
    return _endpoint(row) if row else None


async def rotate_secret(
    conn: AsyncConnection, endpoint_id: str, secret: str, *, tenant_id: str | None
) -> EndpointRecord | None:
    """``secret`` signs from now on; the one it replaces signs too for
    ``ROTATION_GRACE``. A secret rotated out before that (a second rotation within
    the grace) stops signing at once."""
    row = (
        await conn.execute(
            _scoped(webhook_endpoints.update(), endpoint_id, tenant_id)
            .values(
                previous_secret=_E.secret,
                previous_secret_expires_at=sa.func.now() + ROTATION_GRACE,
                secret=secret,
            )
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).first()
    return _endpoint(row) if row else None


async def enable_endpoint(
    conn: AsyncConnection, endpoint_id: str, *, tenant_id: str | None
) -> EndpointRecord | None:
    """Enabled again, its failure streak forgotten."""
    row = (
        await conn.execute(
            _scoped(webhook_endpoints.update(), endpoint_id, tenant_id)
            .values(disabled_at=None, disabled_reason=None, failing_since=None)
            .returning(*_ENDPOINT_COLUMNS)
        )
    ).first()
    return _endpoint(row) if row else None


async def list_deliveries(
    conn: AsyncConnection, endpoint_id: str, *, after: str | None, limit: int
) -> list[DeliveryRecord]:
    """The endpoint's deliveries, newest first (ids sort by creation), with their
    attempts. Scope the endpoint first: this reads by endpoint id alone."""
    stmt = sa.select(webhook_deliveries).where(_D.endpoint_id == endpoint_id)
    if after is not None:
        stmt = stmt.where(_D.id < after)
    rows = (await conn.execute(stmt.order_by(_D.id.desc()).limit(limit))).all()
    attempts: dict[str, list[AttemptRecord]] = {row.id: [] for row in rows}
    if rows:
        found = await conn.execute(
            sa.select(webhook_delivery_attempts)
            .where(_A.delivery_id.in_(list(attempts)))
            .order_by(_A.delivery_id, _A.attempt)
        )
        for a in found:
            attempts[a.delivery_id].append(_attempt(a))
    return [_delivery(row, attempts[row.id]) for row in rows]


def _attempt(row: Any) -> AttemptRecord:
    return AttemptRecord(
        attempt=row.attempt,
        attempted_at=row.attempted_at,
        status_code=row.status_code,
        error=row.error,
        latency_ms=row.latency_ms,
        response_snippet=row.response_snippet,
    )


def _delivery(row: Any, attempts: list[AttemptRecord]) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        endpoint_id=row.endpoint_id,
        job_id=row.job_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        created_at=row.created_at,
        attempt_log=tuple(attempts),
    )


async def get_delivery(
    conn: AsyncConnection, endpoint_id: str, delivery_id: str
) -> DeliveryRecord | None:
    row = (
        await conn.execute(
            sa.select(webhook_deliveries).where(_D.endpoint_id == endpoint_id, _D.id == delivery_id)
        )
    ).first()
    if row is None:
        return None
    attempts = await conn.execute(
        sa.select(webhook_delivery_attempts)
        .where(_A.delivery_id == delivery_id)
        .order_by(_A.attempt)
    )
    return _delivery(row, [_attempt(a) for a in attempts])


async def resend_delivery(
    conn: AsyncConnection, endpoint_id: str, delivery_id: str
) -> dt.datetime | None:
    """Make the delivery due now. One that had ended (delivered or failed) gets one
    more attempt, not retried; a pending one keeps its retries. None: no such delivery."""
    due: dt.datetime | None = await conn.scalar(
        webhook_deliveries.update()
        .where(_D.endpoint_id == endpoint_id, _D.id == delivery_id)
        .values(
            retry=sa.case((_D.status == "pending", _D.retry), else_=sa.false()),
            status="pending",
            next_attempt_at=sa.func.now(),
            updated_at=sa.func.now(),
        )
        .returning(_D.next_attempt_at)
    )
    return due


async def notify_deliverers(conn: AsyncConnection) -> None:
    """Wake sleeping deliverers at commit (the trigger does the same for new events)."""
    await conn.execute(sa.text("SELECT pg_notify('vidgate_endpoint_deliveries', '')"))
