"""Projects, their keys and the audit log, as the admin API asks for them.

Every method takes the calling ``Principal`` and scopes what it reads or changes: an
operator key reaches every project (``project`` picks one), an admin key only its
own, and another project's ids read as missing, exactly like ids that do not exist.
Each change is written with its audit entry in one transaction (``accounts/``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.accounts.keys import NewKey, create_key, revoke
from vidgate.accounts.projects import create_project
from vidgate.core.access import API_ROLES, check_operator, parse_expires_in, resolve_models
from vidgate.core.catalog import Catalog
from vidgate.core.errors import Conflict, InvalidParameter, NotFound, PermissionDenied
from vidgate.core.ids import looks_like
from vidgate.core.keys import Actor, AuditEntry, KeyMode, KeyRecord, ProjectRecord, Role
from vidgate.core.text import forbidden_character
from vidgate.db import audit
from vidgate.db.keys import find_tenant, get_key, list_keys, list_tenants
from vidgate.engine.service import Principal
from vidgate.services.scope import project_of


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A key to make, as the admin API was asked (checked by ``create_key``)."""

    name: str
    mode: KeyMode = "test"
    role: Role = "member"
    models: Sequence[str] | None = None
    expires_in: str | None = None
    project: str | None = None


def _key_missing(key_id: str) -> NotFound:
    return NotFound(f"no key with id {key_id[:64]!r}", param="key_id", code="key_not_found")


class AccountService:
    def __init__(self, db: AsyncEngine, catalog: Catalog) -> None:
        self._db = db
        self._catalog = catalog

    async def _scope(self, principal: Principal, project: str | None) -> str | None:
        """The project a request is about (``project``: an id or a name): the caller's
        own for an admin key (another one reads as missing); for an operator key the
        one named, or None for every project."""
        if project is None:
            return None if principal.role == "operator" else principal.tenant_id
        if forbidden_character(project) is not None:  # PostgreSQL refuses NUL in text
            raise NotFound(
                f"no project {project[:64]!r}", param="project", code="project_not_found"
            )
        async with self._db.connect() as conn:
            project_id, _ = await project_of(conn, principal, project)
        return project_id

    # --- projects -----------------------------------------------------------------

    async def projects(self, principal: Principal) -> list[ProjectRecord]:
        async with self._db.connect() as conn:
            return await list_tenants(conn, tenant_id=await self._scope(principal, None))

    async def project(self, principal: Principal, project_id: str) -> ProjectRecord:
        scope = await self._scope(principal, project_id)
        async with self._db.connect() as conn:
            found = await find_tenant(conn, tenant_id=scope or principal.tenant_id)
        assert found is not None
        return found

    async def create_project(self, principal: Principal, name: str, actor: Actor) -> ProjectRecord:
        check_operator(principal.role, "creating a project")
        async with self._db.begin() as conn:
            made = await create_project(conn, name, actor=actor)
        if made is None:
            raise Conflict(
                f"a project named {name!r} exists already", param="name", code="project_exists"
            )
        return made

    # --- keys ---------------------------------------------------------------------

    async def keys(
        self, principal: Principal, *, project: str | None, after: str | None, limit: int
    ) -> tuple[list[KeyRecord], bool]:
        if after is not None and not looks_like("key", after):
            raise InvalidParameter(
                f"after {after[:64]!r} is not a key id; allowed: the last_id of the previous page",
                param="after",
            )
        scope = await self._scope(principal, project)
        async with self._db.connect() as conn:
            rows = await list_keys(conn, tenant_id=scope, after=after, limit=limit + 1)
        return rows[:limit], len(rows) > limit

    async def key(self, principal: Principal, key_id: str) -> KeyRecord:
        scope = await self._scope(principal, None)
        found = None
        if looks_like("key", key_id):
            async with self._db.connect() as conn:
                found = await get_key(conn, key_id, tenant_id=scope)
        if found is None:
            raise _key_missing(key_id)
        return found

    async def create_key(self, principal: Principal, req: KeyRequest, actor: Actor) -> NewKey:
        if req.role not in API_ROLES:
            raise PermissionDenied(
                f"role {req.role!r} keys are made only from the command line"
                " (vidgate keys create --role operator); allowed here: " + ", ".join(API_ROLES),
                param="role",
                code="operator_key_cli_only",
            )
        scope = await self._scope(principal, req.project) or principal.tenant_id
        models = resolve_models(self._catalog, req.models) if req.models is not None else None
        expires_in: dt.timedelta | None = None
        if req.expires_in is not None:
            expires_in = parse_expires_in(req.expires_in)
        async with self._db.begin() as conn:
            return await create_key(
                conn,
                name=req.name,
                mode=req.mode,
                role=req.role,
                tenant_id=scope,
                models=models,
                expires_in=expires_in,
                actor=actor,
            )

    async def revoke_key(self, principal: Principal, key_id: str, actor: Actor) -> KeyRecord:
        """Revoke a key; revoking a revoked key answers it as it is and changes nothing.
        An admin key may not revoke an operator key (made, and revoked, from the CLI)."""
        target = await self.key(principal, key_id)
        if target.role == "operator":
            check_operator(principal.role, "revoking an operator key")
        async with self._db.begin() as conn:
            revoked = await revoke(conn, key_id, tenant_id=target.tenant_id, actor=actor)
            if revoked is not None:
                return revoked
            found = await get_key(conn, key_id)
        assert found is not None
        return found

    # --- the audit log ------------------------------------------------------------

    async def audit_log(
        self, principal: Principal, *, project: str | None, after: int | None, limit: int
    ) -> tuple[list[AuditEntry], bool]:
        """Newest first; ``after``: the last id of the previous page."""
        scope = await self._scope(principal, project)
        async with self._db.connect() as conn:
            rows = await audit.entries(conn, tenant_id=scope, before=after, limit=limit + 1)
        return rows[:limit], len(rows) > limit
