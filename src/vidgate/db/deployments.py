"""Deployment health (circuit breakers) and the capacity count of capped deployments."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import INFLIGHT
from vidgate.db.schema import deployment_health, jobs


@dataclass(frozen=True, slots=True)
class HealthRecord:
    name: str
    consecutive_failures: int
    open_until: dt.datetime | None
    last_error: str | None
    unhealthy: bool


async def deployment_health_all(conn: AsyncConnection) -> dict[str, HealthRecord]:
    rows = await conn.execute(
        sa.select(
            deployment_health.c.name,
            deployment_health.c.consecutive_failures,
            deployment_health.c.open_until,
            deployment_health.c.last_error,
            deployment_health.c.unhealthy,
        )
    )
    return {r.name: HealthRecord(**r._mapping) for r in rows}


async def open_breakers(conn: AsyncConnection, names: list[str]) -> set[str]:
    rows = await conn.execute(
        sa.select(deployment_health.c.name).where(
            deployment_health.c.name.in_(names), deployment_health.c.open_until > sa.func.now()
        )
    )
    return {r[0] for r in rows}


async def record_deployment_failure(
    conn: AsyncConnection,
    name: str,
    error: str,
    *,
    threshold: int,
    cooldown_s: float,
    unhealthy: bool,
) -> None:
    """Count a failure; at ``threshold`` in a row (or at once when ``unhealthy``), open
    the breaker for ``cooldown_s``."""
    failures = deployment_health.c.consecutive_failures + 1
    stmt = pg_insert(deployment_health).values(
        name=name,
        consecutive_failures=1,
        last_error=error,
        unhealthy=unhealthy,
        open_until=(
            sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, cooldown_s)
            if unhealthy or threshold <= 1
            else None
        ),
    )
    opens = sa.or_(sa.literal(unhealthy), failures >= threshold)
    stmt = stmt.on_conflict_do_update(
        index_elements=[deployment_health.c.name],
        set_={
            "consecutive_failures": failures,
            "last_error": error,
            "unhealthy": sa.literal(unhealthy),
            "open_until": sa.case(
                (opens, sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, cooldown_s)),
                else_=deployment_health.c.open_until,
            ),
            "updated_at": sa.func.now(),
        },
    )
    await conn.execute(stmt)


async def record_deployment_success(conn: AsyncConnection, name: str) -> None:
    await conn.execute(
        deployment_health.update()
        .where(deployment_health.c.name == name, deployment_health.c.consecutive_failures > 0)
        .values(
            consecutive_failures=0,
            open_until=None,
            unhealthy=False,
            updated_at=sa.func.now(),
        )
    )


async def lock_deployment(conn: AsyncConnection, name: str) -> None:
    """Serialize capacity checks for one deployment until the transaction ends."""
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext("deploy:" + name))))


async def count_inflight(conn: AsyncConnection, provider: str) -> int:
    value = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(jobs)
        .where(jobs.c.provider == provider, jobs.c.state.in_(sorted(INFLIGHT)))
    )
    return int(value or 0)
