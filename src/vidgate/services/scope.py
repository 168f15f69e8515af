"""Which project an admin request acts on: the key's own, or for an operator key the
one it names (``project=``, an id or a name)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.errors import NotFound
from vidgate.db.project_names import find_project
from vidgate.engine.service import Principal


async def project_of(
    conn: AsyncConnection, principal: Principal, project: str | None
) -> tuple[str, str]:
    """``(id, name)`` of the project. A key that is not an operator's may name only its
    own: any other reads as missing, like an id that does not exist."""
    wanted = principal.tenant_id if project is None else project
    found = await find_project(conn, wanted)
    if found is None or (principal.role != "operator" and found[0] != principal.tenant_id):
        raise NotFound(f"no project {wanted[:64]!r}", param="project", code="project_not_found")
    return found
