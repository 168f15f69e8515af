"""The steps of a job: submit, poll, finalize, cancel (the states and their moves are
in core/jobs.py).

Each step reads the job, talks to the provider outside any transaction, then commits
the next state and enqueues the next step in one transaction. A state change is one
conditional statement (db/jobs.py ``transition``): the follow-up is enqueued only when
it moved the job, so it happens once. Every step is safe to run again after a crash at
any point:

- submit: ``submitting`` is committed before the provider is called, and the provider
  gets the job id as its idempotency key, so a re-run finds the same upstream task;
- poll: only reads upstream (engine/poller.py claims due jobs in batches);
- finalize (engine/finalize.py; engine/finalizer.py claims due jobs in batches):
  outputs are content-addressed and recorded once per (job, index), so a re-run skips
  what is already stored; it works in a scratch directory of the job's own, which a
  re-run empties first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import (
    ACTIVE,
    JobRecord,
    JobState,
    PollClaim,
    PollDone,
    PollOutcome,
    PollReschedule,
    Submitted,
)
from vidgate.db import late_results
from vidgate.db.claims import (
    claim_poll,
    claim_submission,
    finish_polls,
    notify_pollers,
    record_submissions,
    reschedule_polls,
)
from vidgate.db.database import autocommit
from vidgate.db.finalize_claims import notify_finalizers
from vidgate.db.health import log_failure
from vidgate.db.jobs import db_now, get_job, transition
from vidgate.engine import failover, routing, steps
from vidgate.engine.backoff import backoff_s
from vidgate.engine.context import EngineContext
from vidgate.engine.finalize import finalize
from vidgate.engine.poll_schedule import plan_read
from vidgate.engine.webhooks import enqueue_event
from vidgate.media.storage import is_disk_full
from vidgate.providers.base import Provider, ProviderError, UpstreamTask

log = structlog.get_logger("vidgate.engine")

# Upstream progress is shown up to this value; storing and previews take the rest.
_UPSTREAM_PROGRESS_CAP = 95
_MIN_POLL_S = 0.05
# How long an idle poller sleeps before it looks for due polls again (engine/poller.py).
POLLER_IDLE_S = 1.0

_WAITING = (JobState.WAITING,)
_FINALIZING = (JobState.FINALIZING,)


class JobRunner:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    # --- helpers ----------------------------------------------------------------

    def _provider(self, name: str) -> Provider:
        return self.ctx.providers[name]

    async def _fail(
        self,
        conn: AsyncConnection,
        job_id: str,
        from_states: Collection[JobState],
        code: str,
        message: str,
        *,
        cancel: bool,
        **values: Any,
    ) -> None:
        """Fail the job if it is still in one of ``from_states``, with ``values``; else
        leave it. Its reservation is released with it (db/jobs.py ``transition``)."""
        job = await transition(
            conn,
            job_id,
            from_states=from_states,
            to=JobState.FAILED,
            error_code=code,
            error_message=message,
            completed_at=db_now(),
            **values,
        )
        if job is None:
            return
        if cancel and job.upstream_id:
            await steps.enqueue(
                self.ctx.app, conn, steps.CANCEL_UPSTREAM, job_id, lock=steps.cancel_lock(job_id)
            )
        await enqueue_event(self.ctx, conn, job)
        log.info("job.failed", job_id=job_id, code=code)

    async def _run_again(
        self,
        conn: AsyncConnection,
        step: str,
        job_id: str,
        *,
        from_states: Collection[JobState],
        attempts: int,
        delay_s: float,
    ) -> bool:
        """Schedule a step of the job again, counting ``attempts``, if the job is still
        in one of ``from_states``: a submission or a finalize on the job row (the
        submitter's, the finalizer's), any other step as a procrastinate task. Whether
        it was scheduled."""
        on_row = {steps.SUBMIT: "submit_at", steps.FINALIZE: "next_poll_at"}
        if step in on_row:
            due: dict[str, Any] = {on_row[step]: db_now(after_s=delay_s)}
            job = await transition(
                conn, job_id, from_states=from_states, step_attempts=attempts, **due
            )
            return job is not None
        if await transition(conn, job_id, from_states=from_states, step_attempts=attempts) is None:
            return False
        await steps.enqueue(self.ctx.app, conn, step, job_id, delay_s=delay_s)
        return True

    async def _retry_later(
        self,
        job_id: str,
        step: str,
        from_states: Collection[JobState],
        error: ProviderError,
        attempts: int,
    ) -> None:
        """A retryable upstream error: wait (honouring Retry-After), or give up. Either
        only while the job is still in one of ``from_states``."""
        async with self.ctx.db.begin() as conn:
            if attempts >= self.ctx.settings.max_step_attempts:
                await self._fail(conn, job_id, from_states, error.code, error.message, cancel=True)
                return
            delay = error.retry_after_s if error.retry_after_s is not None else backoff_s(attempts)
            scheduled = await self._run_again(
                conn, step, job_id, from_states=from_states, attempts=attempts, delay_s=delay
            )
        if scheduled:
            log.info(
                "job.retry", job_id=job_id, step=step, code=error.code, delay_s=round(delay, 2)
            )

    async def guarded(self, step: str, job_id: str, run: Callable[[str], Awaitable[None]]) -> None:
        """Run a step; an unexpected error runs it again with backoff, up to a bound."""
        try:
            await run(job_id)
        except Exception as exc:
            await self.step_failed(step, job_id, exc)

    async def step_failed(self, step: str, job_id: str, exc: Exception) -> None:
        """After an unexpected error in a step: run the step again with backoff, or
        fail the job once the bound is reached."""
        disk_full = is_disk_full(exc)
        if disk_full:
            # Nothing is wrong with the job: retried with backoff, it completes once an
            # operator frees space (a traceback per attempt would say nothing more).
            log.error("job.storage_full", job_id=job_id, step=step, error=str(exc)[:300])
        else:
            log_failure(log, "job.step_error", exc, job_id=job_id, step=step)
        async with self.ctx.db.begin() as conn:
            # The count of attempts so far: read (and the row locked) in the statement
            # that checks the job is still active.
            job = await transition(conn, job_id, from_states=ACTIVE)
            if job is None:
                return
            attempts = job.step_attempts + 1
            if attempts >= self.ctx.settings.max_step_attempts:
                code, message = (
                    (
                        "storage_full",
                        "the gateway's storage was full, so the result could not be stored",
                    )
                    if disk_full
                    else ("internal_error", "vidgate could not complete the job")
                )
                await self._fail(conn, job_id, ACTIVE, code, message, cancel=True)
                return
            await self._run_again(
                conn,
                step,
                job_id,
                from_states=ACTIVE,
                attempts=attempts,
                delay_s=backoff_s(attempts, base=1.0),
            )

    # --- steps ------------------------------------------------------------------

    async def submit(self, job_id: str) -> None:
        """Submit one job now, due or not (engine/submitter.py submits due jobs in
        batches); a job in another state, or queued for a deployment at its
        concurrency cap, is left as it is."""
        async with self.ctx.db.begin() as conn:
            job = await claim_submission(
                conn, job_id, lease_s=self.ctx.settings.stalled_after_s, capped=self.caps()
            )
        if job is None:
            return
        submitted = await self.submit_claimed(job)
        if submitted is not None:
            await self.record_submitted([submitted])

    async def submit_claimed(self, job: JobRecord) -> Submitted | None:
        """Send a claimed job to its provider, with the job id as idempotency key: the
        acceptance, for the caller to write back with others; None when the provider
        refused or failed (written here: fallback, retry or failure)."""
        provider = self._provider(job.provider)
        try:
            routing.check_before_submit(provider, job.spec, job.upstream_model)
            result = await provider.submit(
                job.spec, idempotency_key=job.id, upstream_model=job.upstream_model
            )
        except ProviderError as error:
            await self._submit_failed(job, error)
            return None
        return Submitted(
            job_id=job.id,
            provider=job.provider,
            upstream_id=result.upstream_id,
            first_poll_s=max(_MIN_POLL_S, result.poll_after_s),
            upstream_state=result.state,
        )

    async def record_submitted(self, items: list[Submitted]) -> None:
        """Write back a batch of accepted submissions (``submitting`` -> ``waiting``)."""
        # Single statements, each committing on its own: the state check is the
        # UPDATE's own condition, so no transaction or row lock is needed.
        async with autocommit(self.ctx.db) as conn:
            written = await record_submissions(conn, items)
            moved = [item for item in items if item.job_id in written]
            for name in sorted({item.provider for item in moved}):
                await routing.record_success(conn, name)
            if any(item.first_poll_s < POLLER_IDLE_S for item in moved):
                # Sooner than a sleeping poller looks again on its own.
                await notify_pollers(conn)
        for item in items:
            if item.job_id in written:
                log.info(
                    "job.submitted",
                    job_id=item.job_id,
                    provider=item.provider,
                    upstream_id=item.upstream_id,
                )
            else:
                await self._submission_lost(item)

    async def _submission_lost(self, item: Submitted) -> None:
        """The job left ``submitting`` while the provider was answering. If it was
        cancelled, or another submission (after a lease ran out) wrote another task,
        stop the task this one created (best effort, as in cancel_upstream); if that
        submission wrote this same task (the idempotency key), or is still under way,
        leave it."""
        async with self.ctx.db.connect() as conn:
            job = await get_job(conn, item.job_id, include_deleted=True)
        if job is None or job.upstream_id == item.upstream_id or job.state == JobState.SUBMITTING:
            return
        task = UpstreamTask(item.upstream_id, job.spec, job.upstream_model, item.upstream_state)
        await self._cancel_task(item.job_id, item.provider, task)

    def caps(self) -> dict[str, int]:
        """The deployments with a concurrency cap, and their caps."""
        return {
            name: config.max_concurrency
            for name, config in self.ctx.deployments.items()
            if config.max_concurrency is not None
        }

    async def _submit_failed(self, job: JobRecord, error: ProviderError) -> None:
        """Count the failure against the deployment; fall back to the next deployment
        that can serve the job, else retry later or fail. Each only while the job is
        still ``submitting``: cancelled meanwhile, it stays cancelled."""
        submitting = (JobState.SUBMITTING,)
        if not (error.retryable or error.unhealthy):
            async with self.ctx.db.begin() as conn:
                await self._fail(conn, job.id, submitting, error.code, error.message, cancel=False)
            return
        async with self.ctx.db.begin() as conn:
            await routing.record_failure(conn, job.provider, error)
            alternative = await failover.fall_back(self.ctx, conn, job, submitting)
            if alternative is not None:
                log.info(
                    "job.fallback",
                    job_id=job.id,
                    failed=job.provider,
                    code=error.code,
                    next=alternative.provider,
                )
                return
        if error.retryable:
            await self._retry_later(job.id, steps.SUBMIT, submitting, error, job.step_attempts + 1)
            return
        async with self.ctx.db.begin() as conn:
            await self._fail(conn, job.id, submitting, error.code, error.message, cancel=False)

    async def poll(self, job_id: str) -> None:
        """Read one waiting job's upstream status now and act on it (the poller does
        this in batches; this is the same for one job)."""
        async with self.ctx.db.begin() as conn:
            claim = await claim_poll(conn, job_id, lease_s=self.ctx.settings.stalled_after_s)
        if claim is None:
            return
        outcome = await self.check_upstream(claim)
        if outcome is not None:
            await self.record_polls([outcome])

    async def record_polls(self, outcomes: list[PollOutcome]) -> None:
        """Write back a batch of status reads in one transaction: the jobs still running
        with their next read, the finished ones to ``finalizing``, their finalizes due
        (one statement each, however many)."""
        running = [o for o in outcomes if isinstance(o, PollReschedule)]
        done = [o for o in outcomes if isinstance(o, PollDone)]
        async with self.ctx.db.begin() as conn:
            await reschedule_polls(conn, running)
            moved = await finish_polls(conn, done, progress=_UPSTREAM_PROGRESS_CAP)
            if moved:
                # Due at once (finish_polls): wake a sleeping finalizer.
                await notify_finalizers(conn)

    async def check_upstream(self, claim: PollClaim) -> PollOutcome | None:
        """One status read of a claimed job. A job still running upstream (or an error
        worth retrying) comes back as a reschedule and one that succeeded as done, for
        the caller to write with others (``record_polls``); a failure (upstream's, or
        giving up) is written here."""
        try:
            task = UpstreamTask(
                claim.upstream_id,
                claim.spec,
                claim.upstream_model,
                claim.upstream_state or {},
            )
            status = await self._provider(claim.provider).status(task)
        except ProviderError as error:
            return await self._poll_failed(claim, error)
        except Exception:
            log.exception("job.step_error", job_id=claim.job_id, step="poll")
            return await self._poll_failed(
                claim,
                ProviderError(
                    "internal_error",
                    "vidgate could not complete the job",
                    retryable=True,
                ),
                upstream=False,
            )
        watch: dict[str, Any] = {}
        if status.state in ("queued", "running") and (
            late := failover.overdue(self.ctx.settings, claim)
        ):
            # vidgate stops waiting: the task is stopped upstream, and the job goes on
            # as after the provider's own timeout; failed, its task stays watched for a
            # late result (engine/late_results.py).
            await self._cancel_task(claim.job_id, claim.provider, task)
            status, watch = late, late_results.watch(self.ctx.settings.late_result_poll_s)
        if status.state in ("queued", "running"):
            delay, expected_end = plan_read(claim, status)
            return PollReschedule(
                claim,
                delay_s=max(_MIN_POLL_S, delay),
                progress=min(_UPSTREAM_PROGRESS_CAP, max(claim.progress, status.progress or 0)),
                poll_count=claim.poll_count + 1,
                step_attempts=0,
                expected_end_at=expected_end,
            )
        if status.state == "succeeded":
            return PollDone(claim, status.cost)
        async with self.ctx.db.begin() as conn:
            job = await failover.still_on(conn, claim)
            if job is None:
                return None
            if status.state == "failed":
                # A transient failure goes once to another deployment (engine/failover.py);
                # a final one, or one with nowhere left to go, fails the job.
                if status.transient and await failover.retry_task_elsewhere(
                    self.ctx, conn, job, status
                ):
                    return None
                await self._fail(
                    conn,
                    claim.job_id,
                    _WAITING,
                    status.error_code or "upstream_failed",
                    status.error_message or "the upstream provider reported a failure",
                    cancel=False,
                    **watch,
                )
            else:
                await self._fail(
                    conn,
                    claim.job_id,
                    _WAITING,
                    "cancelled_upstream",
                    "the upstream task was cancelled",
                    cancel=False,
                )
        return None

    async def _poll_failed(
        self, claim: PollClaim, error: ProviderError, *, upstream: bool = True
    ) -> PollReschedule | None:
        """A status read failed: retry with backoff (honouring Retry-After) up to the
        bound, or fail the job. Only the upstream's own failures count against its
        deployment (``upstream``)."""
        if upstream and (error.retryable or error.unhealthy):
            async with self.ctx.db.begin() as conn:
                await routing.record_failure(conn, claim.provider, error)
        attempts = claim.step_attempts + 1
        if error.retryable and attempts < self.ctx.settings.max_step_attempts:
            delay = error.retry_after_s if error.retry_after_s is not None else backoff_s(attempts)
            log.info("job.retry", job_id=claim.job_id, step="poll", code=error.code)
            return PollReschedule(
                claim,
                delay_s=max(_MIN_POLL_S, delay),
                progress=claim.progress,
                poll_count=claim.poll_count,
                step_attempts=attempts,
            )
        # Given up on reading it, not told it failed: the task may still finish, so it
        # stays watched for a late result like one past the wait limit.
        watch = late_results.watch(self.ctx.settings.late_result_poll_s) if error.retryable else {}
        async with self.ctx.db.begin() as conn:
            await self._fail(
                conn, claim.job_id, _WAITING, error.code, error.message, cancel=True, **watch
            )
        return None

    async def finalize(self, job_id: str) -> None:
        """Store a succeeded job's results and complete it (engine/finalize.py)."""
        await finalize(self, job_id)

    async def cancel_upstream(self, job_id: str) -> None:
        async with self.ctx.db.connect() as conn:
            job = await get_job(conn, job_id, include_deleted=True)
        if job is None or job.upstream_id is None:
            return
        await self._cancel_task(job_id, job.provider, _task_of(job, job.upstream_id))

    async def _cancel_task(self, job_id: str, provider: str, task: UpstreamTask) -> None:
        try:
            await self._provider(provider).cancel(task)
        except ProviderError as error:
            # Best effort: the job is already over (or not this task's) on our side.
            log.info("job.cancel_upstream_failed", job_id=job_id, code=error.code)


def _task_of(job: JobRecord, upstream_id: str) -> UpstreamTask:
    """The job's upstream task, as its adapter gets it back."""
    return UpstreamTask(upstream_id, job.spec, job.upstream_model, job.upstream_state or {})
