"""Keeps the planner's statistics of procrastinate's step queue in step with bursts.

procrastinate deletes steps that succeed, so the queue table is near empty most of the
time and that is what the last ANALYZE saw. When thousands of jobs arrive within
seconds, the planner still expects a handful of queued steps and fetches each one by
sorting all of them (tens of ms per fetch at 10,000, with the lock index of migration
0005; hundreds without it), where the right plan reads one row of the priority index
(under 1 ms). Autovacuum would analyze the table too, but only after its naptime (a
minute by default) and only on servers where the operator left it on.

So each worker checks every ``queue_stats_interval_s``: when the live steps outnumber
the planner's estimate by far, it runs ANALYZE (a few ms on such a table). Any number
of workers may do this at once.
"""

from __future__ import annotations

import structlog

from vidgate.db.database import autocommit
from vidgate.db.queue import QueueRows, analyze_queue, queue_rows
from vidgate.engine.context import EngineContext
from vidgate.engine.periodic import run_periodically

log = structlog.get_logger("vidgate.queue_stats")

# Below this many live steps any plan is fast enough.
MIN_LIVE_STEPS = 1000
# Analyze once the live steps exceed the estimate by this factor.
STALE_FACTOR = 2.0


def is_stale(rows: QueueRows) -> bool:
    return rows.live >= MIN_LIVE_STEPS and rows.live > STALE_FACTOR * rows.planned


async def refresh_queue_stats(ctx: EngineContext) -> bool:
    """ANALYZE the step queue if the planner's estimate is stale; True if it did."""
    async with autocommit(ctx.db) as conn:
        rows = await queue_rows(conn)
        if not is_stale(rows):
            return False
        await analyze_queue(conn)
    log.info("queue_stats.analyzed", live_steps=rows.live, planned_steps=round(rows.planned))
    return True


async def run_queue_stats(ctx: EngineContext) -> None:
    await run_periodically(
        lambda: refresh_queue_stats(ctx),
        ctx.settings.queue_stats_interval_s,
        log=log,
        error_event="queue_stats.error",
    )
