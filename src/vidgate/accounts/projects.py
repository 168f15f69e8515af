"""Projects (the ``tenants`` table), made through the CLI or the admin API, audited."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.accounts.keys import CLI
from vidgate.core.ids import new_id
from vidgate.core.keys import Actor, ProjectRecord
from vidgate.db import audit
from vidgate.db.keys import create_tenant


async def create_project(
    conn: AsyncConnection, name: str, *, actor: Actor = CLI
) -> ProjectRecord | None:
    """The new project; None when one with this name exists (nothing is written)."""
    project = await create_tenant(conn, new_id("tenant"), name)
    if project is not None:
        await audit.record(
            conn,
            actor=actor.id,
            action="projects.create",
            tenant_id=project.id,
            target=project.id,
            detail={"name": name},
            remote_addr=actor.remote_addr,
        )
    return project
