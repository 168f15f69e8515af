"""Moving a job to another deployment of its model: after a submission failed (the
runner's submit step), and once after its upstream task failed transiently.

Both go back to ``queued`` for the next deployment that can serve the job and is not
one it has tried (``jobs.tried_providers``), picked like at create (engine/routing.py:
priority, weight, open breakers skipped). A transient failure of a submitted task (the
provider's internal error, out of memory, no capacity, its own timeout:
providers/failures.py) moves the job at most ``MAX_TASK_RETRIES`` times, counted in
``jobs.task_retries``, so a request that breaks every provider costs two tasks, not one
per deployment. A final failure (a content refusal, invalid input) never moves.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.config import Settings
from vidgate.core.jobs import JobRecord, JobState, PollClaim
from vidgate.db.claims import notify_submitters
from vidgate.db.jobs import db_now, transition
from vidgate.engine import routing
from vidgate.engine.context import EngineContext
from vidgate.providers.base import ProviderError, UpstreamStatus

log = structlog.get_logger("vidgate.engine")

# Tasks sent again elsewhere after a transient upstream failure, per job.
MAX_TASK_RETRIES = 1

_WAITING = (JobState.WAITING,)


async def fall_back(
    ctx: EngineContext,
    conn: AsyncConnection,
    job: JobRecord,
    from_states: Collection[JobState],
    **values: Any,
) -> routing.Route | None:
    """Queue the job for the next deployment that can serve it, if the job is still in
    one of ``from_states`` (with ``values`` written too); the deployment, or None when
    none is left or the job moved on."""
    tried = [*job.tried_providers, job.provider]
    card = ctx.catalog.get(job.model) if job.model in ctx.catalog else None
    if card is None:
        return None
    route = await routing.pick(ctx, conn, card, job.spec, job.mode, exclude=tried)
    if route is None:
        return None
    moved = await transition(
        conn,
        job.id,
        from_states=from_states,
        to=JobState.QUEUED,
        submit_at=db_now(),
        provider=route.provider,
        upstream_model=route.upstream_model,
        tried_providers=tried,
        **values,
    )
    if moved is None:
        return None
    await notify_submitters(conn)
    return route


def overdue(settings: Settings, claim: PollClaim) -> UpstreamStatus | None:
    """A task still unfinished upstream ``upstream_task_timeout_s`` after it was
    submitted, as the transient ``upstream_timeout`` it is then (a provider that never
    ends a task, such as a local server after running out of memory, holds no job
    forever); None while it is within that time."""
    limit = settings.upstream_task_timeout_s
    if claim.submitted_at is None or time.time() - claim.submitted_at.timestamp() < limit:
        return None
    return UpstreamStatus(
        "failed",
        error_code="upstream_timeout",
        error_message=(
            f"{claim.provider}: the task did not finish within {limit:g} s"
            " (VIDGATE_UPSTREAM_TASK_TIMEOUT_S)"
        ),
        transient=True,
    )


async def still_on(conn: AsyncConnection, claim: PollClaim) -> JobRecord | None:
    """The job, its row locked, while it still waits on the task ``claim`` read; None
    when it moved on, or went to another task meanwhile (a read that outlived its
    lease must not end the task that replaced it)."""
    job = await transition(conn, claim.job_id, from_states=_WAITING)
    if job is None or job.upstream_id != claim.upstream_id:
        return None
    return job


async def retry_task_elsewhere(
    ctx: EngineContext, conn: AsyncConnection, job: JobRecord, status: UpstreamStatus
) -> routing.Route | None:
    """After the waiting ``job``'s upstream task failed transiently (its row locked,
    ``still_on``): count it against the deployment and, the first time, queue the job
    for another deployment (a new task there). None when the job fails instead: retried
    once already, or no other healthy deployment."""
    code = status.error_code or "upstream_failed"
    await routing.record_failure(
        conn, job.provider, ProviderError(code, status.error_message or code, retryable=True)
    )
    if job.task_retries >= MAX_TASK_RETRIES:
        return None
    route = await fall_back(
        ctx,
        conn,
        job,
        _WAITING,
        task_retries=job.task_retries + 1,
        upstream_id=None,
        upstream_state=None,
        next_poll_at=None,
        submitted_at=None,
        poll_count=0,
        step_attempts=0,
    )
    if route is not None:
        log.info(
            "job.task_retry",
            job_id=job.id,
            failed=job.provider,
            code=code,
            next=route.provider,
        )
    return route
