"""Upstream callbacks as hints: a callback makes vidgate read the job's upstream status
now rather than at its next scheduled poll, and that status read decides what happened.
Nothing in a callback is trusted, so a forged or repeated one costs at most an extra
status read.

A waiting job has exactly one poll chain: a queued (``todo``) poll, or a running poll
that queues the next one. A nudge never adds a poll to the chain, which would fork it;
it moves the queued poll's schedule to now:

1. ``request_nudge`` (the callback route) queues a ``vidgate:nudge`` task, one per job
   at a time. The task holds the job's lock, so it never runs beside one of the job's
   steps: with a poll in flight it runs after that poll, once the poll has queued its
   successor. Its higher priority keeps it from waiting behind the queued poll it is
   meant to pull forward (procrastinate runs tasks sharing a lock by priority, then id).
2. ``pull_forward`` (that task) makes the queued poll due now. A poll that is backing
   off after an upstream error keeps its delay (the provider may have asked for it),
   and a waiting job with no step at all gets a poll, as the sweeper would give it.
"""

from __future__ import annotations

import structlog

from vidgate.db import repo
from vidgate.engine import steps
from vidgate.engine.context import EngineContext

log = structlog.get_logger("vidgate.engine")


async def request_nudge(ctx: EngineContext, job_id: str) -> bool:
    """Ask for the job's upstream status to be read now; False when the job is not
    waiting on its upstream (unknown, not submitted yet, or already past it)."""
    async with ctx.db.begin() as conn:
        # Under the row lock, so concurrent callbacks queue one nudge between them.
        job = await repo.get_job(conn, job_id, for_update=True, include_deleted=True)
        if job is None or job.state != "waiting":
            return False
        if not await repo.has_queued_task(conn, job_id, steps.NUDGE):
            await steps.enqueue(ctx.app, conn, steps.NUDGE, job_id, priority=steps.NUDGE_PRIORITY)
    return True


async def pull_forward(ctx: EngineContext, job_id: str) -> None:
    """The ``vidgate:nudge`` task: make the job's queued poll due now."""
    async with ctx.db.begin() as conn:
        job = await repo.get_job(conn, job_id, for_update=True, include_deleted=True)
        if job is None or job.state != "waiting":
            return
        if job.step_attempts > 0:
            # The queued poll is a retry after an upstream error: keep its backoff.
            log.info("job.nudge_skipped", job_id=job_id, reason="backing_off")
            return
        moved = await repo.make_due_now(conn, job_id, steps.POLL, steps.job_lock(job_id))
        started = False
        if not moved and not await repo.has_pending_step(conn, job_id):
            # No poll queued or running: the chain was lost (the sweeper would restart
            # it too); no other poll can start a second one while we hold the row.
            await steps.enqueue(ctx.app, conn, steps.POLL, job_id)
            started = True
    log.info("job.nudged", job_id=job_id, pulled_forward=bool(moved), started=started)
