"""Housekeeping: every worker prunes, on a schedule, the rows that only pile up.

- procrastinate's finished steps (failed, cancelled, aborted: successful ones are gone
  as they end) older than ``finished_steps_retention_s`` (7 days);
- idempotency keys past their window, ``idempotency_key_ttl_s`` (24 h);
- the sandbox's tasks of jobs that ended more than ``sandbox_task_retention_s`` ago
  (7 days), unless a job's task is watched for a late result;
- webhook endpoints' deliveries that ended (delivered or failed) more than
  ``webhook_delivery_retention_s`` ago (30 days), with their attempts.

A pass runs at worker start and every ``housekeeping_interval_s`` (5 min). Each kind is
deleted in statements of at most ``housekeeping_batch`` rows (db/housekeeping.py: one
short transaction each, the rows picked with SKIP LOCKED), at most ``_MAX_BATCHES`` of
them per pass: a backlog is worked off over several passes and never holds a long
lock, and several workers pruning at once share it.
"""

from __future__ import annotations

import structlog

from vidgate.db.database import autocommit
from vidgate.db.housekeeping import prune
from vidgate.engine.context import EngineContext
from vidgate.engine.periodic import run_periodically

log = structlog.get_logger("vidgate.housekeeping")

# Statements per kind and pass.
_MAX_BATCHES = 10


def retentions(ctx: EngineContext) -> dict[str, float]:
    """How old (seconds) a row of each kind must be to go."""
    settings = ctx.settings
    return {
        "finished_steps": settings.finished_steps_retention_s,
        "idempotency_keys": settings.idempotency_key_ttl_s,
        "sandbox_tasks": settings.sandbox_task_retention_s,
        "webhook_deliveries": settings.webhook_delivery_retention_s,
    }


async def housekeep_once(ctx: EngineContext) -> dict[str, int]:
    """One pass: the rows of each kind that went."""
    batch = ctx.settings.housekeeping_batch
    pruned: dict[str, int] = {}
    for kind, age in retentions(ctx).items():
        pruned[kind] = 0
        for _ in range(_MAX_BATCHES):
            async with autocommit(ctx.db) as conn:
                deleted = await prune(conn, kind, older_than_s=age, limit=batch)
            pruned[kind] += deleted
            if deleted < batch:
                break
    if any(pruned.values()):
        log.info("housekeeping.pruned", **pruned)
    return pruned


async def run_housekeeping(ctx: EngineContext) -> None:
    await run_periodically(
        lambda: housekeep_once(ctx),
        ctx.settings.housekeeping_interval_s,
        log=log,
        error_event="housekeeping.error",
    )
