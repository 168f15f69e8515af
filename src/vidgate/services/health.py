"""The process's health: whether the database is known to answer (for the API's edge
and its error handler), and whether the process is ready to serve (``/readyz``)."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.db.health import DatabaseHealth
from vidgate.db.migrate import current_revision, head_revision
from vidgate.media.storage import BlobStore

# One check that hangs (a storage mount gone away) must not hang the probe.
READY_TIMEOUT_S = 5.0


class Readiness(BaseModel):
    """``/readyz``'s answer: ``ok``, or ``unavailable`` with what failed and why."""

    status: Literal["ok", "unavailable"]
    # Each check's verdict: "ok", or what is wrong.
    checks: dict[str, str]
    failed: list[str]


class HealthService:
    def __init__(self, health: DatabaseHealth, db: AsyncEngine, blobs: BlobStore) -> None:
        self._health = health
        self._db = db
        self._blobs = blobs

    @property
    def available(self) -> bool:
        """False while the database is known to be down (a probe says when it is back)."""
        return self._health.available

    def report(self, exc: BaseException) -> bool:
        """Note an error met while using the database; True if it means the database is
        unreachable, and requests are refused at once until it answers again."""
        return self._health.report(exc)

    async def ready(self) -> Readiness:
        """The database answers and is migrated to this code's head; the blob store
        takes writes. Each check says what it found."""
        database, migrations = await self._database()
        checks = {"database": database, "migrations": migrations, "storage": await self._storage()}
        failed = [name for name, verdict in checks.items() if verdict != "ok"]
        return Readiness(status="unavailable" if failed else "ok", checks=checks, failed=failed)

    async def _database(self) -> tuple[str, str]:
        if not self._health.available:
            return "the database is unavailable", "unknown: the database is unavailable"
        try:
            async with asyncio.timeout(READY_TIMEOUT_S), self._db.connect() as conn:
                current = await current_revision(conn)
        except Exception as exc:
            self._health.report(exc)
            return f"the database does not answer: {_words(exc)}", "unknown: no database"
        head = head_revision()
        if current != head:
            return "ok", f"the database is at migration {current}, this code's head is {head}"
        return "ok", "ok"

    async def _storage(self) -> str:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await self._blobs.ready()
        except Exception as exc:
            return f"the blob store cannot be written: {_words(exc)}"
        return "ok"


def _words(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {READY_TIMEOUT_S:g} s"
    return (str(exc) or type(exc).__name__)[:300]
