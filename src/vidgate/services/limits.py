"""Rate limits as the admin API sets and reads them: a project's and a key's, scoped
to what the caller may manage (an admin key: its own project; an operator key: any),
each change written to the audit log on its transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.errors import NotFound
from vidgate.core.ids import looks_like
from vidgate.core.limits import Limits
from vidgate.db import audit
from vidgate.db import limits as db_limits
from vidgate.engine.service import Principal


@dataclass(frozen=True, slots=True)
class OwnedLimits:
    """A project's limits (``key_id`` None) or a key's."""

    project_id: str
    key_id: str | None
    limits: Limits


LimitValues = dict[str, int | None]


def _missing_project(project_id: str) -> NotFound:
    return NotFound(
        f"no project with id {project_id[:64]!r}", param="project_id", code="project_not_found"
    )


def _missing_key(key_id: str) -> NotFound:
    return NotFound(f"no key with id {key_id[:64]!r}", param="key_id", code="key_not_found")


def _check_project(principal: Principal, project_id: str) -> None:
    """An id of another project than an admin key's, or not of vidgate's shape (a NUL,
    for one, would make PostgreSQL refuse the statement): the 404 of a missing one."""
    mine = principal.role == "operator" or project_id == principal.tenant_id
    if not mine or not looks_like("tenant", project_id):
        raise _missing_project(project_id)


class LimitService:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def project(self, principal: Principal, project_id: str) -> OwnedLimits:
        _check_project(principal, project_id)
        async with self._db.connect() as conn:
            limits = await db_limits.read_project_limits(conn, project_id)
        if limits is None:
            raise _missing_project(project_id)
        return OwnedLimits(project_id, None, limits)

    async def set_project(
        self,
        principal: Principal,
        project_id: str,
        values: LimitValues,
        *,
        remote_addr: str | None,
    ) -> OwnedLimits:
        """Set the limits named in ``values`` (None: no limit); the others stay."""
        if not values:
            return await self.project(principal, project_id)
        _check_project(principal, project_id)
        async with self._db.begin() as conn:
            limits = await db_limits.write_project_limits(conn, project_id, values)
            if limits is None:
                raise _missing_project(project_id)
            await audit.record(
                conn,
                actor=principal.key_id,
                action="projects.limits",
                tenant_id=project_id,
                target=project_id,
                detail=dict(values),
                remote_addr=remote_addr,
            )
        return OwnedLimits(project_id, None, limits)

    async def key(self, principal: Principal, key_id: str) -> OwnedLimits:
        if not looks_like("key", key_id):
            raise _missing_key(key_id)
        async with self._db.connect() as conn:
            found = await db_limits.read_key_limits(conn, key_id)
        if found is None or not self._may_manage(principal, found[0]):
            raise _missing_key(key_id)
        return OwnedLimits(found[0], key_id, found[1])

    async def set_key(
        self,
        principal: Principal,
        key_id: str,
        values: LimitValues,
        *,
        remote_addr: str | None,
    ) -> OwnedLimits:
        """Set the limits named in ``values`` (None: no limit); the others stay."""
        if not values:
            return await self.key(principal, key_id)
        if not looks_like("key", key_id):
            raise _missing_key(key_id)
        async with self._db.begin() as conn:
            found = await db_limits.read_key_limits(conn, key_id)
            if found is None or not self._may_manage(principal, found[0]):
                raise _missing_key(key_id)
            limits = await db_limits.write_key_limits(conn, key_id, values)
            assert limits is not None
            await audit.record(
                conn,
                actor=principal.key_id,
                action="keys.limits",
                tenant_id=found[0],
                target=key_id,
                detail=dict(values),
                remote_addr=remote_addr,
            )
        return OwnedLimits(found[0], key_id, limits)

    @staticmethod
    def _may_manage(principal: Principal, project_id: str) -> bool:
        return principal.role == "operator" or project_id == principal.tenant_id
