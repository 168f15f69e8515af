"""Usage of a project: ``GET /v1/usage`` (``core/usage.py`` says what counts)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.usage import UsageReport, parse_query, report
from vidgate.db.usage import usage_rows
from vidgate.engine.service import Principal
from vidgate.services.scope import project_of


class UsageService:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def usage(
        self,
        principal: Principal,
        *,
        start: str | None,
        end: str | None,
        group_by: str | None,
        project: str | None = None,
    ) -> UsageReport:
        """The usage of the caller's project, or for an operator key of ``project``."""
        query = parse_query(start, end, group_by, today=dt.datetime.now(dt.UTC).date())
        async with self._db.connect() as conn:
            project_id, _ = await project_of(conn, principal, project)
            rows = await usage_rows(conn, project_id, query)
        return report(project_id, query, rows)
