"""API keys: created once, shown once, stored as a SHA-256 hash; every change to a key
written to the audit log on the transaction that makes it.

Secrets are 256-bit random tokens, so a plain SHA-256 is enough to make a stolen
database useless for authentication; a slow password hash would only slow every request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.ids import new_id
from vidgate.core.keys import Actor, KeyMode, KeyRecord, Role
from vidgate.db import audit
from vidgate.db.keys import create_tenant, find_tenant, get_key, insert_api_key, revoke_key

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class NewKey:
    id: str
    tenant: str
    name: str
    mode: KeyMode
    role: Role
    secret: str
    record: KeyRecord | None = None


CLI = Actor(audit.CLI_ACTOR)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def generate_secret(mode: KeyMode) -> str:
    return f"vg_{mode}_{secrets.token_urlsafe(32)}"


async def create_key(
    conn: AsyncConnection,
    *,
    name: str,
    mode: KeyMode = "test",
    role: Role = "member",
    tenant: str = DEFAULT_TENANT,
    tenant_id: str | None = None,
    models: Sequence[str] | None = None,
    expires_in: dt.timedelta | None = None,
    actor: Actor = CLI,
) -> NewKey:
    """A key of project ``tenant_id``, or of the project named ``tenant`` (made when it
    does not exist yet, as the CLI always has). ``models`` are card ids, already
    checked against the catalogue (core/access.py)."""
    if tenant_id is None:
        made = await create_tenant(conn, new_id("tenant"), tenant)
        if made is not None:
            tenant_id = made.id
            await audit.record(
                conn,
                actor=actor.id,
                action="projects.create",
                tenant_id=tenant_id,
                target=tenant_id,
                detail={"name": tenant},
                remote_addr=actor.remote_addr,
            )
        else:
            found = await find_tenant(conn, name=tenant)
            assert found is not None
            tenant_id = found.id
    secret = generate_secret(mode)
    key_id = new_id("key")
    record = await insert_api_key(
        conn,
        key_id=key_id,
        tenant_id=tenant_id,
        name=name,
        prefix=secret[:12],
        secret_hash=hash_secret(secret),
        mode=mode,
        role=role,
        models=list(models) if models is not None else None,
        expires_in=expires_in,
    )
    await audit.record(
        conn,
        actor=actor.id,
        action="keys.create",
        tenant_id=tenant_id,
        target=key_id,
        detail={
            "name": name,
            "mode": mode,
            "role": role,
            "models": record.models and list(record.models),
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
            "prefix": record.prefix,
        },
        remote_addr=actor.remote_addr,
    )
    return NewKey(key_id, record.tenant_name, name, mode, role, secret, record)


async def revoke(
    conn: AsyncConnection, key_id: str, *, tenant_id: str | None = None, actor: Actor = CLI
) -> KeyRecord | None:
    """Revoke an unrevoked key (of ``tenant_id`` only, when given) and audit it; None
    when there is no such key or it was revoked already (nothing is written then)."""
    if not await revoke_key(conn, key_id, tenant_id=tenant_id):
        return None
    record = await get_key(conn, key_id)
    assert record is not None
    await audit.record(
        conn,
        actor=actor.id,
        action="keys.revoke",
        tenant_id=record.tenant_id,
        target=key_id,
        detail={"name": record.name, "role": record.role},
        remote_addr=actor.remote_addr,
    )
    return record
