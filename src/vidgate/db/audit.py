"""The audit log: every admin action, by whom, on which project, from where."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.keys import AuditEntry
from vidgate.db.schema import audit_log

# The actor of actions taken through the CLI, which runs with the host's rights.
CLI_ACTOR = "cli"


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    tenant_id: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> None:
    """Write one entry, on the transaction that makes the change: an action and its
    entry commit together or not at all.

    ``actor``: the acting key's id, or ``CLI_ACTOR``. ``action``: ``resource.verb``
    (``keys.create``). ``detail``: what changed, never a secret.
    """
    await conn.execute(
        audit_log.insert().values(
            actor=actor,
            action=action,
            tenant_id=tenant_id,
            target=target,
            detail=detail or {},
            remote_addr=remote_addr,
        )
    )


async def entries(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    before: int | None = None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first; of ``tenant_id`` only when given (an operator reads them all),
    older than the entry ``before`` for the next page."""
    query = sa.select(*audit_log.c).order_by(audit_log.c.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(audit_log.c.tenant_id == tenant_id)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    return [AuditEntry(**row._mapping) for row in await conn.execute(query)]
