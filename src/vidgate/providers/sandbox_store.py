"""The sandbox provider's task store (providers/sandbox.py): the table that plays the
remote service's database (``sandbox_tasks`` in db/schema.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import sandbox_tasks


@dataclass(frozen=True, slots=True)
class SandboxTaskRecord:
    id: str
    idempotency_key: str
    request: dict[str, Any]
    latency_s: float
    fail_code: str | None
    submit_calls: int
    created_at: dt.datetime
    cancelled_at: dt.datetime | None


async def submit(
    conn: AsyncConnection,
    *,
    task_id: str,
    idempotency_key: str,
    request: dict[str, Any],
    latency_s: float,
    fail_code: str | None,
) -> SandboxTaskRecord:
    """Create the task, or count another call for the same idempotency key and return it."""
    stmt = pg_insert(sandbox_tasks).values(
        id=task_id,
        idempotency_key=idempotency_key,
        request=request,
        latency_s=latency_s,
        fail_code=fail_code,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[sandbox_tasks.c.idempotency_key],
        set_={"submit_calls": sandbox_tasks.c.submit_calls + 1},
    ).returning(*sandbox_tasks.c)
    row = (await conn.execute(upsert)).one()
    return SandboxTaskRecord(**row._mapping)


async def get(conn: AsyncConnection, task_id: str) -> SandboxTaskRecord | None:
    row = (
        await conn.execute(sa.select(sandbox_tasks).where(sandbox_tasks.c.id == task_id))
    ).first()
    return SandboxTaskRecord(**row._mapping) if row else None


async def cancel(conn: AsyncConnection, task_id: str) -> None:
    await conn.execute(
        sandbox_tasks.update()
        .where(sandbox_tasks.c.id == task_id, sandbox_tasks.c.cancelled_at.is_(None))
        .values(cancelled_at=sa.func.now())
    )
