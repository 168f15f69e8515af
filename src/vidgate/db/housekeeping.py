"""The housekeeping's deletes (engine/housekeeping.py): rows past their retention, the
oldest first, at most ``limit`` per statement.

Each statement is one short transaction on its own: the rows it deletes are picked
with ``FOR UPDATE SKIP LOCKED`` (so several workers pruning at once share the work and
never wait on each other or on a row in use) through an index on what ages them
(migration 0018), so a backlog of millions costs many small deletes, never one long
lock.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

# procrastinate's finished steps. Successful ones are deleted by the worker as they end
# (``delete_jobs="successful"``); failed, cancelled and aborted ones stay until here.
# procrastinate's own ``remove_old_jobs`` deletes them in one unbounded statement that
# sorts every step's events. A step is as old as its last event; deleting it deletes
# its events (ON DELETE CASCADE) and unlinks its periodic defers (a trigger).
_STEPS = sa.text(
    "DELETE FROM procrastinate_jobs WHERE id IN ("
    " SELECT j.id FROM procrastinate_jobs j"
    " WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')"
    " AND NOT EXISTS (SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id"
    "  AND e.at >= now() - make_interval(secs => :age))"
    " ORDER BY j.id LIMIT :limit FOR UPDATE OF j SKIP LOCKED)"
)

# An idempotency key answers a repeated create during its window; after it, the same
# key makes a new job.
_IDEMPOTENCY_KEYS = sa.text(
    "DELETE FROM idempotency_keys WHERE (tenant_id, key) IN ("
    " SELECT tenant_id, key FROM idempotency_keys"
    " WHERE created_at < now() - make_interval(secs => :age)"
    " ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)

# The sandbox's task of a job that ended (completed, failed, cancelled) and is not
# watched for a late result (its task could still succeed), both past the retention;
# or of no job at all.
_SANDBOX_TASKS = sa.text(
    "DELETE FROM sandbox_tasks WHERE id IN ("
    " SELECT t.id FROM sandbox_tasks t LEFT JOIN jobs j ON j.id = t.idempotency_key"
    " WHERE t.created_at < now() - make_interval(secs => :age)"
    " AND (j.id IS NULL OR (j.state IN ('completed', 'failed', 'cancelled')"
    "  AND j.late_check_at IS NULL"
    "  AND coalesce(j.completed_at, j.updated_at) < now() - make_interval(secs => :age)))"
    " ORDER BY t.created_at LIMIT :limit FOR UPDATE OF t SKIP LOCKED)"
)

# Webhook endpoints' deliveries that ended (delivered or failed) past the retention,
# with their attempts (ON DELETE CASCADE; at most a few per delivery).
_WEBHOOK_DELIVERIES = sa.text(
    "DELETE FROM webhook_deliveries WHERE id IN ("
    " SELECT id FROM webhook_deliveries"
    " WHERE status <> 'pending' AND updated_at < now() - make_interval(secs => :age)"
    " ORDER BY updated_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)

# What each kind of row is called in the logs, and its statement.
PRUNES: dict[str, sa.TextClause] = {
    "finished_steps": _STEPS,
    "idempotency_keys": _IDEMPOTENCY_KEYS,
    "sandbox_tasks": _SANDBOX_TASKS,
    "webhook_deliveries": _WEBHOOK_DELIVERIES,
}


async def prune(conn: AsyncConnection, kind: str, *, older_than_s: float, limit: int) -> int:
    """Delete up to ``limit`` rows of ``kind`` (a key of ``PRUNES``) older than
    ``older_than_s``; how many went."""
    result = await conn.execute(PRUNES[kind], {"age": older_than_s, "limit": limit})
    return int(result.rowcount)
