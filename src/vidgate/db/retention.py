"""A project's retention: how many days its videos' media is kept after completion."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import jobs, tenants


class _Missing:
    """No such project."""


MISSING = _Missing()


async def read_retention(conn: AsyncConnection, project_id: str) -> int | _Missing | None:
    row = (
        await conn.execute(sa.select(tenants.c.retention_days).where(tenants.c.id == project_id))
    ).first()
    return MISSING if row is None else row.retention_days


async def write_retention(conn: AsyncConnection, project_id: str, days: int | None) -> bool:
    """Set it (None: keep forever), and move the expiry of the project's completed
    videos whose media is still kept to match. False when there is no such project."""
    changed = await conn.scalar(
        sa.update(tenants)
        .where(tenants.c.id == project_id)
        .values(retention_days=days)
        .returning(tenants.c.id)
    )
    if changed is None:
        return False
    expires = (
        sa.null() if days is None else jobs.c.completed_at + sa.func.make_interval(0, 0, 0, days)
    )
    await conn.execute(
        sa.update(jobs)
        .where(
            jobs.c.tenant_id == project_id,
            jobs.c.state == "completed",
            jobs.c.media_deleted_at.is_(None),
        )
        .values(expires_at=expires)
    )
    return True
