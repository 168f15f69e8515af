"""Rate limits at create: the one call ``JobService.create`` makes, on its transaction,
before it writes anything (see db/limits.py for why the counts are exact).

A key and a project without limits cost one indexed read and no lock. A limited one
holds its advisory lock from here to the create's commit, so its creates run one at a
time: the price of exact counts across processes.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.errors import RateLimited
from vidgate.core.limits import WINDOW_S, Verdict, judge
from vidgate.db.limits import count_usage, key_scope, lock_limits, project_scope, record_admission


async def admit(
    conn: AsyncConnection, key_id: str, *, window_s: float = WINDOW_S
) -> Verdict | None:
    """Count one create of ``key_id`` against its and its project's limits, or raise
    ``RateLimited`` (429 ``rate_limit_exceeded``, with the headers of the limit that
    refused). The verdict describes the limits after this create; None when none
    applies."""
    owner = await lock_limits(conn, key_id)
    if owner is None or not (owner.key.any or owner.project.any):
        return None
    now, usages = await count_usage(conn, key_id, owner, window_s=window_s)
    verdict = judge(usages, window_s)
    if verdict is None:
        return None
    if not verdict.allowed:
        raise RateLimited(verdict.message, headers=verdict.headers())
    scopes = []
    if owner.key.rpm is not None:
        scopes.append(key_scope(key_id))
    if owner.project.rpm is not None:
        scopes.append(project_scope(owner.tenant_id))
    await record_admission(conn, scopes, now)
    return verdict
