"""API keys and tenant secrets, as the API needs them: who a bearer secret belongs to,
and the secret a tenant's webhooks are signed with."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.db.reads import JobReads
from vidgate.engine.service import Principal
from vidgate.engine.webhooks import tenant_secret


@dataclass(frozen=True, slots=True)
class Grant:
    """What an unrevoked key allows, and until when (Unix time; None: no expiry)."""

    principal: Principal
    expires_at: float | None


class KeyService:
    def __init__(self, reads: JobReads, db: AsyncEngine) -> None:
        self._reads = reads
        self._db = db

    async def grant(self, secret_hash: bytes) -> Grant | None:
        """The caller behind an unrevoked, unexpired key with this secret hash; None if
        there is none."""
        record = await self._reads.active_key(secret_hash)
        if record is None:
            return None
        models = frozenset(record.models) if record.models is not None else None
        principal = Principal(record.id, record.tenant_id, record.mode, record.role, models)
        expires_at = record.expires_at.timestamp() if record.expires_at else None
        return Grant(principal, expires_at)

    async def webhook_secret(self, principal: Principal) -> str:
        """The tenant's Standard Webhooks signing secret, made on first use."""
        async with self._db.begin() as conn:
            return await tenant_secret(conn, principal.tenant_id)
