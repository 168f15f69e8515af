"""Late results: the upstream task of a job that vidgate failed for its own wait limit
(VIDGATE_UPSTREAM_TASK_TIMEOUT_S) is read again, slowly, for a bounded time.

vidgate asks the provider to cancel a task it stops waiting for, but not every
provider stops one (or can), and a provider bills a task it completes. So the job
fails at once (its reservation released, cost 0) and stays watched: every
``late_result_poll_s`` its task is read, for ``late_result_watch_s`` after it failed.
So does a job failed because its task's status could not be read (a retryable error
on every read to the bound): vidgate gave up on the task, the provider did not fail it.

- still queued or running: read again later;
- succeeded: the job goes back to ``finalizing`` (core/jobs.py ``LATE_RESULT``) with
  the provider's cost, if reported, and its finalize due; it completes and is settled
  like any other job, so the client gets the video it is charged for;
- failed or cancelled upstream, watched for too long, deleted: the watch ends;
- a status read that fails: read again at the next turn.

A task vidgate gave up on and replaced by a task on another deployment (one transient
failure is tried elsewhere, engine/failover.py) is not watched: the job's result is
the replacement's. Runs in every worker; the claim skips what another one holds.
"""

from __future__ import annotations

import structlog

from vidgate.core.jobs import JobRecord
from vidgate.db.finalize_claims import notify_finalizers
from vidgate.db.late_results import claim_due, revive, stop_watching
from vidgate.engine.context import EngineContext
from vidgate.engine.periodic import run_periodically
from vidgate.engine.shutdown import Shutdown
from vidgate.providers.base import ProviderError, UpstreamTask

log = structlog.get_logger("vidgate.engine")

# Jobs read per turn of one worker.
_BATCH = 50
# Where progress stands once a job's upstream task succeeded (engine/runner.py).
_FINALIZING_PROGRESS = 95


async def check_once(ctx: EngineContext) -> int:
    """Read the watched tasks that are due; how many were read."""
    settings = ctx.settings
    async with ctx.db.begin() as conn:
        due = await claim_due(
            conn,
            every_s=settings.late_result_poll_s,
            watch_s=settings.late_result_watch_s,
            limit=_BATCH,
        )
    for job in due:
        await _check(ctx, job)
    return len(due)


async def _check(ctx: EngineContext, job: JobRecord) -> None:
    provider = ctx.providers.get(job.provider)
    if provider is None or job.upstream_id is None:
        # The deployment is no longer configured: nothing can read the task.
        async with ctx.db.begin() as conn:
            await stop_watching(conn, job.id)
        return
    task = UpstreamTask(job.upstream_id, job.spec, job.upstream_model, job.upstream_state or {})
    try:
        status = await provider.status(task)
    except ProviderError as error:
        log.info("job.late_check_failed", job_id=job.id, code=error.code)
        return
    if status.state in ("queued", "running"):
        return
    async with ctx.db.begin() as conn:
        if status.state != "succeeded":
            await stop_watching(conn, job.id)
            log.info("job.late_task_ended", job_id=job.id, upstream_state=status.state)
            return
        revived = await revive(
            conn, job.id, job.upstream_id, status.cost, progress=_FINALIZING_PROGRESS
        )
        if revived is None:
            return
        await notify_finalizers(conn)
    log.info("job.late_result", job_id=job.id, provider=job.provider)


async def run_late_results(ctx: EngineContext, shutdown: Shutdown | None = None) -> None:
    # Turns at least as often as the sweeper's, so a read is at most that late.
    interval = min(ctx.settings.late_result_poll_s, ctx.settings.sweep_interval_s)
    await run_periodically(
        lambda: check_once(ctx),
        interval,
        log=log,
        error_event="late_results.error",
        shutdown=shutdown,
    )
