"""API keys and tenant secrets, as the API needs them: who a bearer secret belongs to,
and the secret a tenant's webhooks are signed with."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.errors import AuthenticationError
from vidgate.core.keys import KeyRecord
from vidgate.db.keys import get_key
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

    async def own_key(self, principal: Principal) -> KeyRecord:
        """The calling key as stored, with its project's name (``GET /v1/me``)."""
        async with self._db.connect() as conn:
            found = await get_key(conn, principal.key_id, tenant_id=principal.tenant_id)
        # The key authenticated a moment ago; only a race with its deletion loses it.
        if found is None:
            raise AuthenticationError(
                "invalid API key (unknown, revoked or expired)", code="invalid_api_key"
            )
        return found

    async def webhook_secret(self, principal: Principal) -> str:
        """The tenant's Standard Webhooks signing secret, made on first use."""
        async with self._db.begin() as conn:
            return await tenant_secret(conn, principal.tenant_id)
