"""A project's media retention, as the admin API and the CLI read and set it: scoped to
what the caller may manage (an admin key: its own project; an operator key: any), each
change written to the audit log on its transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.errors import NotFound
from vidgate.core.ids import looks_like
from vidgate.db import audit
from vidgate.db.retention import MISSING, read_retention, write_retention
from vidgate.engine.service import Principal

# The most days a retention may be (a century): beyond that, keep forever (None).
MAX_RETENTION_DAYS = 36500


@dataclass(frozen=True, slots=True)
class Retention:
    project_id: str
    # None: media is kept forever.
    days: int | None


def _missing_project(project_id: str) -> NotFound:
    return NotFound(
        f"no project with id {project_id[:64]!r}", param="project_id", code="project_not_found"
    )


class RetentionService:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    def _check(self, principal: Principal, project_id: str) -> None:
        mine = principal.role == "operator" or project_id == principal.tenant_id
        if not mine or not looks_like("tenant", project_id):
            raise _missing_project(project_id)

    async def get(self, principal: Principal, project_id: str) -> Retention:
        self._check(principal, project_id)
        async with self._db.connect() as conn:
            days = await read_retention(conn, project_id)
        if days is MISSING:
            raise _missing_project(project_id)
        return Retention(project_id, days if isinstance(days, int) else None)

    async def set(
        self, principal: Principal, project_id: str, days: int | None, *, remote_addr: str | None
    ) -> Retention:
        self._check(principal, project_id)
        return await set_retention(
            self._db, project_id, days, actor=principal.key_id, remote_addr=remote_addr
        )


async def set_retention(
    db: AsyncEngine, project_id: str, days: int | None, *, actor: str, remote_addr: str | None
) -> Retention:
    """Set a project's retention (the CLI's way in too), audited as ``actor``."""
    async with db.begin() as conn:
        if not await write_retention(conn, project_id, days):
            raise _missing_project(project_id)
        await audit.record(
            conn,
            actor=actor,
            action="projects.retention",
            tenant_id=project_id,
            target=project_id,
            detail={"days": days},
            remote_addr=remote_addr,
        )
    return Retention(project_id, days)
