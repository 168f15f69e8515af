"""The audit log: every admin action, by whom, on which project, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

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
