"""Budget rows, and the ledger sums they are checked against.

``applicable(lock=True)`` is the create's side (engine/budgets.py): it locks, in id order, the
budgets that apply to a key (its project's and its own), so that creates against the
same budget, in any process, check and reserve one after the other. ``spent`` then
sums the ledger in a statement of its own: under READ COMMITTED each statement reads
what was committed when it began, so it sees every reservation made under the lock
before. The rest is the admin side: set (one budget per scope and period), list, get,
delete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.budgets import Budget, Period, Window
from vidgate.db.schema import api_keys, budgets, ledger, tenants

_COLUMNS = (
    budgets.c.id,
    budgets.c.tenant_id,
    tenants.c.name,
    budgets.c.api_key_id,
    budgets.c.period,
    budgets.c.usd,
    budgets.c.created_at,
    budgets.c.updated_at,
)
_FROM = budgets.join(tenants, tenants.c.id == budgets.c.tenant_id)


def _budget(row: Sequence[Any]) -> Budget:
    return Budget(*row)


async def applicable(
    conn: AsyncConnection, tenant_id: str, api_key_id: str, *, lock: bool
) -> list[Budget]:
    """The project's budgets and the key's; with ``lock``, locked until the
    transaction ends."""
    stmt = (
        sa.select(*_COLUMNS)
        .select_from(_FROM)
        .where(
            budgets.c.tenant_id == tenant_id,
            sa.or_(budgets.c.api_key_id.is_(None), budgets.c.api_key_id == api_key_id),
        )
        # One order for every locker: two creates never wait on each other in a cycle.
        .order_by(budgets.c.id)
    )
    if lock:
        stmt = stmt.with_for_update(of=budgets)
    return [_budget(row) for row in await conn.execute(stmt)]


async def spent(conn: AsyncConnection, budget: Budget, window: Window) -> Decimal:
    """What counts against ``budget`` in ``window``: the sum of the ledger's rows of
    its project (or of its key) booked in it."""
    scope = (
        ledger.c.api_key_id == budget.api_key_id
        if budget.api_key_id is not None
        else ledger.c.tenant_id == budget.tenant_id
    )
    stmt = sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0)).where(scope)
    if window.start is not None and window.end is not None:
        stmt = stmt.where(ledger.c.booked_at >= window.start, ledger.c.booked_at < window.end)
    return Decimal(await conn.scalar(stmt) or 0)


async def set_budget(
    conn: AsyncConnection,
    *,
    new_id: str,
    tenant_id: str,
    api_key_id: str | None,
    period: Period,
    usd: Decimal,
) -> tuple[Budget, bool]:
    """The scope's budget for ``period`` set to ``usd`` (made under ``new_id`` if it
    has none): the budget, and whether it was made."""
    target = [budgets.c.api_key_id if api_key_id else budgets.c.tenant_id, budgets.c.period]
    where = budgets.c.api_key_id.isnot(None) if api_key_id else budgets.c.api_key_id.is_(None)
    stmt = (
        pg_insert(budgets)
        .values(id=new_id, tenant_id=tenant_id, api_key_id=api_key_id, period=period, usd=usd)
        .on_conflict_do_update(
            index_elements=target,
            index_where=where,
            set_={"usd": usd, "updated_at": sa.func.now()},
        )
        .returning(budgets.c.id)
    )
    budget_id = await conn.scalar(stmt)
    found = await get_budget(conn, str(budget_id), None)
    assert found is not None
    return found, found.id == new_id


async def list_budgets(conn: AsyncConnection, tenant_id: str | None) -> list[Budget]:
    """A project's budgets (every project's with None), the project's own first."""
    stmt = sa.select(*_COLUMNS).select_from(_FROM)
    if tenant_id is not None:
        stmt = stmt.where(budgets.c.tenant_id == tenant_id)
    stmt = stmt.order_by(
        tenants.c.name, budgets.c.api_key_id.nulls_first(), budgets.c.period, budgets.c.id
    )
    return [_budget(row) for row in await conn.execute(stmt)]


async def get_budget(conn: AsyncConnection, budget_id: str, tenant_id: str | None) -> Budget | None:
    """The budget, if it is ``tenant_id``'s (any project's with None)."""
    stmt = sa.select(*_COLUMNS).select_from(_FROM).where(budgets.c.id == budget_id)
    if tenant_id is not None:
        stmt = stmt.where(budgets.c.tenant_id == tenant_id)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _budget(row)


async def delete_budget(conn: AsyncConnection, budget_id: str, tenant_id: str | None) -> bool:
    stmt = budgets.delete().where(budgets.c.id == budget_id)
    if tenant_id is not None:
        stmt = stmt.where(budgets.c.tenant_id == tenant_id)
    return (await conn.execute(stmt)).rowcount > 0


async def key_tenant(conn: AsyncConnection, api_key_id: str) -> str | None:
    """The project of a key (revoked or not)."""
    found = await conn.scalar(sa.select(api_keys.c.tenant_id).where(api_keys.c.id == api_key_id))
    return None if found is None else str(found)


async def now(conn: AsyncConnection) -> dt.datetime:
    """The database's clock, which books the ledger (``now()``: the transaction's start)."""
    value = await conn.scalar(sa.select(sa.func.now()))
    assert isinstance(value, dt.datetime)
    return value
