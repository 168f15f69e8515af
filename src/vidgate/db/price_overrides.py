"""Per-project price overrides set through the admin API (table ``price_overrides``)."""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.pricing import PriceOverride, PriceTable
from vidgate.core.project_prices import PriceOverrideRecord
from vidgate.db.database import raw_connection
from vidgate.db.schema import price_overrides

_COLUMNS = (
    price_overrides.c.tenant_id,
    price_overrides.c.model,
    price_overrides.c.multiplier,
    price_overrides.c.pricing,
    price_overrides.c.updated_at,
)


def _override(multiplier: Any, pricing: Any) -> PriceOverride:
    if pricing is not None:
        return PriceOverride(pricing=PriceTable.model_validate(pricing))
    return PriceOverride(multiplier=multiplier)


def _record(row: Any) -> PriceOverrideRecord:
    return PriceOverrideRecord(
        project_id=row.tenant_id,
        model=row.model,
        override=_override(row.multiplier, row.pricing),
        source="api",
        updated_at=row.updated_at,
    )


# Every create runs it: a constant statement on the raw connection, which psycopg
# prepares once per connection (db/writes.py says why).
_LOOKUP = (
    "SELECT t.name, o.multiplier, o.pricing FROM tenants t"
    " LEFT JOIN price_overrides o ON o.tenant_id = t.id AND o.model = %s"
    " WHERE t.id = %s"
)


async def lookup(
    conn: AsyncConnection, tenant_id: str, model: str
) -> tuple[str | None, PriceOverride | None]:
    """The project's name (None: no such project) and its stored override of ``model``
    (a card id), in one statement: a create pays one primary-key read for both."""
    raw: psycopg.AsyncConnection[Any] = await raw_connection(conn)
    async with raw.cursor() as cur:
        await cur.execute(_LOOKUP, (model, tenant_id))
        row = await cur.fetchone()
    if row is None:
        return None, None
    name, multiplier, pricing = row
    if multiplier is None and pricing is None:
        return str(name), None
    return str(name), _override(multiplier, pricing)


async def list_overrides(conn: AsyncConnection, tenant_id: str) -> list[PriceOverrideRecord]:
    rows = await conn.execute(
        sa.select(*_COLUMNS)
        .where(price_overrides.c.tenant_id == tenant_id)
        .order_by(price_overrides.c.model)
    )
    return [_record(row) for row in rows]


async def put_override(
    conn: AsyncConnection, tenant_id: str, model: str, override: PriceOverride
) -> PriceOverrideRecord:
    """Set the project's override of ``model``, replacing the one it had."""
    values: dict[str, Any] = {
        "multiplier": override.multiplier,
        # SQL NULL: a None would be stored as the JSON value null.
        "pricing": sa.null()
        if override.pricing is None
        else override.pricing.model_dump(mode="json"),
    }
    insert = pg_insert(price_overrides).values(tenant_id=tenant_id, model=model, **values)
    stmt = insert.on_conflict_do_update(
        index_elements=[price_overrides.c.tenant_id, price_overrides.c.model],
        set_={**values, "updated_at": sa.func.now()},
    ).returning(*_COLUMNS)
    row = (await conn.execute(stmt)).one()
    return _record(row)


async def delete_override(conn: AsyncConnection, tenant_id: str, model: str) -> bool:
    result = await conn.execute(
        price_overrides.delete().where(
            price_overrides.c.tenant_id == tenant_id, price_overrides.c.model == model
        )
    )
    return result.rowcount > 0
