"""Whether the database answers, for the API's edge, its error handler and ``/healthz``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.db.health import DatabaseHealth


class HealthService:
    def __init__(self, health: DatabaseHealth, db: AsyncEngine) -> None:
        self._health = health
        self._db = db

    @property
    def available(self) -> bool:
        """False while the database is known to be down (a probe says when it is back)."""
        return self._health.available

    def report(self, exc: BaseException) -> bool:
        """Note an error met while using the database; True if it means the database is
        unreachable, and requests are refused at once until it answers again."""
        return self._health.report(exc)

    async def check(self) -> bool:
        """Whether the database answers now: known down, or one ``SELECT 1``."""
        if not self._health.available:
            return False
        try:
            async with self._db.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            self._health.report(exc)
            return False
        return True
