"""Tenants, their API keys and webhook secrets, and the instance's own secrets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.keys import KeyRecord, ProjectRecord
from vidgate.db.schema import api_keys, instance_secrets, tenants


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, name: str) -> str:
    stmt = pg_insert(tenants).values(id=tenant_id, name=name).on_conflict_do_nothing()
    await conn.execute(stmt)
    found = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
    assert found is not None
    return str(found)


_PROJECT_COLUMNS = (tenants.c.id, tenants.c.name, tenants.c.created_at)


async def create_tenant(conn: AsyncConnection, tenant_id: str, name: str) -> ProjectRecord | None:
    """A new project; None when the name is taken."""
    row = (
        await conn.execute(
            pg_insert(tenants)
            .values(id=tenant_id, name=name)
            .on_conflict_do_nothing()
            .returning(*_PROJECT_COLUMNS)
        )
    ).first()
    return ProjectRecord(**row._mapping) if row else None


async def list_tenants(
    conn: AsyncConnection, *, tenant_id: str | None = None
) -> list[ProjectRecord]:
    """Every project, oldest first; only ``tenant_id``'s when given."""
    query = sa.select(*_PROJECT_COLUMNS).order_by(tenants.c.created_at, tenants.c.id)
    if tenant_id is not None:
        query = query.where(tenants.c.id == tenant_id)
    return [ProjectRecord(**r._mapping) for r in await conn.execute(query)]


async def find_tenant(
    conn: AsyncConnection, *, tenant_id: str | None = None, name: str | None = None
) -> ProjectRecord | None:
    query = sa.select(*_PROJECT_COLUMNS)
    if tenant_id is not None:
        query = query.where(tenants.c.id == tenant_id)
    if name is not None:
        query = query.where(tenants.c.name == name)
    row = (await conn.execute(query)).first()
    return ProjectRecord(**row._mapping) if row else None


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
    models: list[str] | None = None,
    expires_in: dt.timedelta | None = None,
) -> KeyRecord:
    """The new key, its expiry counted from the database's clock (the one that refuses
    it: ``find_active_key``)."""
    row = (
        await conn.execute(
            api_keys.insert()
            .values(
                id=key_id,
                tenant_id=tenant_id,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                mode=mode,
                role=role,
                models=models,
                expires_at=None if expires_in is None else sa.func.now() + expires_in,
            )
            .returning(api_keys.c.id)
        )
    ).one()
    found = await get_key(conn, row.id)
    assert found is not None
    return found


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
    api_keys.c.models,
    api_keys.c.expires_at,
)


def _key(row: sa.Row[*tuple[Any, ...]]) -> KeyRecord:
    values = dict(row._mapping)
    if values["models"] is not None:
        values["models"] = tuple(values["models"])
    return KeyRecord(**values)


def _unexpired() -> sa.ColumnElement[bool]:
    return sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > sa.func.now())


async def find_active_key(conn: AsyncConnection, secret_hash: bytes) -> KeyRecord | None:
    row = (
        await conn.execute(
            sa.select(*_KEY_COLUMNS)
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .where(
                api_keys.c.secret_hash == secret_hash,
                api_keys.c.revoked_at.is_(None),
                _unexpired(),
            )
        )
    ).first()
    return _key(row) if row else None


async def get_key(
    conn: AsyncConnection, key_id: str, *, tenant_id: str | None = None
) -> KeyRecord | None:
    """A key by id, revoked or not; only of ``tenant_id`` when given."""
    query = (
        sa.select(*_KEY_COLUMNS)
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .where(api_keys.c.id == key_id)
    )
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    row = (await conn.execute(query)).first()
    return _key(row) if row else None


async def list_keys(
    conn: AsyncConnection,
    *,
    tenant_id: str | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[KeyRecord]:
    """Keys, oldest first (ids are time-ordered); of ``tenant_id`` only when given."""
    query = (
        sa.select(*_KEY_COLUMNS)
        .join(tenants, tenants.c.id == api_keys.c.tenant_id)
        .order_by(api_keys.c.id)
    )
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    if after is not None:
        query = query.where(api_keys.c.id > after)
    if limit is not None:
        query = query.limit(limit)
    return [_key(r) for r in await conn.execute(query)]


async def revoke_key(conn: AsyncConnection, key_id: str, *, tenant_id: str | None = None) -> bool:
    """Revoke an unrevoked key (of ``tenant_id`` only, when given); False if none."""
    query = api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    revoked = await conn.execute(query.values(revoked_at=sa.func.now()).returning(api_keys.c.id))
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
