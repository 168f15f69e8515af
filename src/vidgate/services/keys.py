"""API keys and tenant secrets, as the API needs them: who a bearer secret belongs to,
and the secret a tenant's webhooks are signed with."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.db.reads import JobReads
from vidgate.engine.service import Principal
from vidgate.engine.webhooks import tenant_secret


class KeyService:
    def __init__(self, reads: JobReads, db: AsyncEngine) -> None:
        self._reads = reads
        self._db = db

    async def principal(self, secret_hash: bytes) -> Principal | None:
        """The caller behind an unrevoked key with this secret hash; None if there is none."""
        record = await self._reads.active_key(secret_hash)
        if record is None:
            return None
        return Principal(record.id, record.tenant_id, record.mode, record.role)

    async def webhook_secret(self, principal: Principal) -> str:
        """The tenant's Standard Webhooks signing secret, made on first use."""
        async with self._db.begin() as conn:
            return await tenant_secret(conn, principal.tenant_id)
