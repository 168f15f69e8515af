"""API keys: created once, shown once, stored as a SHA-256 hash.

Secrets are 256-bit random tokens, so a plain SHA-256 is enough to make a stolen
database useless for authentication; a slow password hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.ids import new_id
from vidgate.core.keys import KeyMode, Role
from vidgate.db.keys import ensure_tenant, insert_api_key

DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class NewKey:
    id: str
    tenant: str
    name: str
    mode: KeyMode
    role: Role
    secret: str


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
) -> NewKey:
    tenant_id = await ensure_tenant(conn, new_id("tenant"), tenant)
    secret = generate_secret(mode)
    key_id = new_id("key")
    await insert_api_key(
        conn,
        key_id=key_id,
        tenant_id=tenant_id,
        name=name,
        prefix=secret[:12],
        secret_hash=hash_secret(secret),
        mode=mode,
        role=role,
    )
    return NewKey(key_id, tenant, name, mode, role, secret)
