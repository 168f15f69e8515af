"""A project named by id or by name, for the routes and commands that take either."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import tenants


async def find_project(conn: AsyncConnection, id_or_name: str) -> tuple[str, str] | None:
    """``(id, name)`` of the project with that id or that name; an id wins over a name
    that happens to equal it."""
    row = (
        await conn.execute(
            sa.select(tenants.c.id, tenants.c.name)
            .where(sa.or_(tenants.c.id == id_or_name, tenants.c.name == id_or_name))
            .order_by((tenants.c.id == id_or_name).desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (row.id, row.name)
