"""Usage: a project's completed jobs summed by mode and the groups asked for
(``core/usage.py`` says which jobs count and by which day)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.usage import UsageQuery, UsageRow
from vidgate.db.schema import jobs


async def usage_rows(conn: AsyncConnection, tenant_id: str, query: UsageQuery) -> list[UsageRow]:
    """One row per mode and group, in day, model, key, mode order."""
    day = sa.cast(sa.func.timezone("UTC", jobs.c.completed_at), sa.Date)
    groups: dict[str, Any] = {
        "model": jobs.c.model,
        "key": jobs.c.api_key_id,
        "day": day,
    }
    chosen = [groups[name].label(name) for name in query.group_by]
    seconds = sa.cast(jobs.c.spec["seconds"].astext, sa.Integer) * sa.cast(
        jobs.c.spec["n"].astext, sa.Integer
    )
    stmt = (
        sa.select(
            jobs.c.mode,
            *chosen,
            sa.func.count().label("count"),
            sa.func.coalesce(sa.func.sum(seconds), 0).label("seconds"),
            # A test job is charged nothing (its cost is 0): what it shows is its price.
            sa.func.sum(
                sa.case((jobs.c.mode == "test", jobs.c.estimated_cost), else_=jobs.c.cost)
            ).label("cost"),
        )
        .where(
            jobs.c.tenant_id == tenant_id,
            jobs.c.state == "completed",
            jobs.c.completed_at >= query.since,
            jobs.c.completed_at < query.until,
        )
        .group_by(jobs.c.mode, *(groups[name] for name in query.group_by))
        .order_by(*(groups[name] for name in ("day", "model", "key") if name in query.group_by))
        .order_by(jobs.c.mode)
    )
    rows = (await conn.execute(stmt)).mappings().all()
    return [
        UsageRow(
            model=row.get("model"),
            key_id=row.get("key"),
            day=row.get("day"),
            mode=row["mode"],
            count=int(row["count"]),
            seconds=int(row["seconds"]),
            cost=row["cost"],
        )
        for row in rows
    ]
