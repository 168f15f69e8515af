"""Tenants, their API keys and webhook secrets, and the instance's own secrets."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.keys import KeyRecord
from vidgate.db.schema import api_keys, instance_secrets, tenants


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, name: str) -> str:
    stmt = pg_insert(tenants).values(id=tenant_id, name=name).on_conflict_do_nothing()
    await conn.execute(stmt)
    found = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
    assert found is not None
    return str(found)


async def webhook_secret(conn: AsyncConnection, tenant_id: str, candidate: str) -> str:
    """The tenant's webhook signing secret, set to ``candidate`` if it has none yet."""
    value = await conn.scalar(
        tenants.update()
        .where(tenants.c.id == tenant_id)
        .values(webhook_secret=sa.func.coalesce(tenants.c.webhook_secret, candidate))
        .returning(tenants.c.webhook_secret)
    )
    assert value is not None
    return str(value)


async def insert_api_key(
    conn: AsyncConnection,
    *,
    key_id: str,
    tenant_id: str,
    name: str,
    prefix: str,
    secret_hash: bytes,
    mode: str,
    role: str,
) -> None:
    await conn.execute(
        api_keys.insert().values(
            id=key_id,
            tenant_id=tenant_id,
            name=name,
            prefix=prefix,
            secret_hash=secret_hash,
            mode=mode,
            role=role,
        )
    )


_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    tenants.c.name.label("tenant_name"),
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.mode,
    api_keys.c.role,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)


def _key(row: sa.Row[*tuple[Any, ...]]) -> KeyRecord:
    return KeyRecord(**row._mapping)


async def find_active_key(conn: AsyncConnection, secret_hash: bytes) -> KeyRecord | None:
    row = (
        await conn.execute(
            sa.select(*_KEY_COLUMNS)
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .where(api_keys.c.secret_hash == secret_hash, api_keys.c.revoked_at.is_(None))
        )
    ).first()
    return _key(row) if row else None


async def list_keys(conn: AsyncConnection) -> list[KeyRecord]:
    rows = await conn.execute(
        sa.select(*_KEY_COLUMNS)
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .order_by(api_keys.c.created_at)
    )
    return [_key(r) for r in rows]


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    revoked = await conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_keys.c.id)
    )
    return revoked.first() is not None


async def count_keys(conn: AsyncConnection) -> int:
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)


async def get_or_create_secret(conn: AsyncConnection, name: str, candidate: bytes) -> bytes:
    await conn.execute(
        pg_insert(instance_secrets).values(name=name, value=candidate).on_conflict_do_nothing()
    )
    value = await conn.scalar(
        sa.select(instance_secrets.c.value).where(instance_secrets.c.name == name)
    )
    assert value is not None
    return bytes(value)
