"""Submits queued jobs upstream, many jobs at a time.

A job to submit is a due time on its row (``jobs.submit_at``), not a queued task: the
submitter claims due jobs in batches, moving them to ``submitting`` a lease ahead,
sends them to their providers concurrently, and writes the accepted ones back to
``waiting`` in one statement per flush (engine/due.py has the loop, its leases and its
waking). A creation's ``NOTIFY`` on ``SUBMIT_CHANNEL`` wakes it.

Crash safety: while a provider answers, the submitter renews the claim's lease, so a
submission is only taken up again once its submitter is gone (many providers take no
idempotency key, so a second call would start a second task). One taken up again
gives the provider the job id as its idempotency key where it takes one; if two
submissions of a job still both succeed, the second finds the job moved on and
cancels its own task.

Deployments with a concurrency cap (``max_concurrency``) are claimed apart, each under
its own lock and only up to its free capacity; their queued jobs wait in vidgate, not
upstream, and are looked at again each time the submitter wakes.
"""

from __future__ import annotations

from vidgate.core.jobs import JobRecord, Submitted
from vidgate.db.claims import (
    SUBMIT_CHANNEL,
    claim_capped_submissions,
    claim_due_submissions,
    next_submission_due_in,
    renew_submissions,
)
from vidgate.db.database import autocommit
from vidgate.engine import steps
from vidgate.engine.context import EngineContext
from vidgate.engine.due import DueWorker
from vidgate.engine.runner import POLLER_IDLE_S, JobRunner


class Submitter(DueWorker[JobRecord, Submitted]):
    channel = SUBMIT_CHANNEL
    name = "submitter"

    def __init__(
        self,
        ctx: EngineContext,
        *,
        concurrency: int,
        batch: int = 100,
        idle_s: float = POLLER_IDLE_S,
    ) -> None:
        super().__init__(ctx, concurrency=concurrency, batch=batch, idle_s=idle_s)
        self.runner = JobRunner(ctx)
        self.caps = self.runner.caps()

    async def claim(self, limit: int) -> list[JobRecord]:
        async with autocommit(self.ctx.db) as conn:
            claims = await claim_due_submissions(
                conn, limit=limit, lease_s=self.lease_s, capped=list(self.caps)
            )
        for provider, cap in self.caps.items():
            if len(claims) >= limit:
                break
            async with self.ctx.db.begin() as conn:
                claims += await claim_capped_submissions(
                    conn, provider, cap=cap, limit=limit - len(claims), lease_s=self.lease_s
                )
        return claims

    def job_id(self, claim: JobRecord) -> str:
        return claim.id

    async def work(self, claim: JobRecord) -> Submitted | None:
        try:
            return await self.runner.submit_claimed(claim)
        except Exception as exc:
            await self.runner.step_failed(steps.SUBMIT, claim.id, exc)
            return None

    async def write_back(self, results: list[Submitted]) -> None:
        await self.runner.record_submitted(results)

    async def next_due_in(self) -> float | None:
        async with self.ctx.db.connect() as conn:
            return await next_submission_due_in(conn, capped=list(self.caps))

    async def renew(self, claims: list[JobRecord]) -> None:
        async with autocommit(self.ctx.db) as conn:
            await renew_submissions(conn, [c.id for c in claims], lease_s=self.lease_s)

    async def release(self, claims: list[JobRecord]) -> None:
        async with autocommit(self.ctx.db) as conn:
            await renew_submissions(conn, [c.id for c in claims], lease_s=0.0)
