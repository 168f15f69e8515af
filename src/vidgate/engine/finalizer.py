"""Finalizes jobs that succeeded upstream, many jobs at a time.

A finalizing job's next finalize is a due time on its row (``jobs.next_poll_at``, the
poller's column, free once the job stops waiting), not a queued task: the finalizer
claims due jobs in batches, downloads, probes and stores their results concurrently
(``media_concurrency``; the probes on the media threads), and writes them back in one
transaction per flush (engine/finalize.py; engine/due.py has the loop, its leases and
its waking). The poller's move to ``finalizing`` makes the job due at once and its
``NOTIFY`` on ``FINALIZE_CHANNEL`` wakes the finalizer.

Crash safety: while a download runs, and until its write-back, the finalizer renews the
claim's lease, so a finalize is only taken up again once its finalizer is gone (a kill
-9): the lease runs out, another finalizer empties the job's scratch and downloads
again. Only one write-back completes the job (the move to ``completed`` is
conditional) and settles it (the ledger's key). A retryable download failure makes the
job due again later (backoff) on its row; a final one fails it.
"""

from __future__ import annotations

from vidgate.db.database import autocommit
from vidgate.db.finalize_claims import (
    FINALIZE_CHANNEL,
    claim_due_finalizes,
    next_finalize_due_in,
    renew_finalizes,
)
from vidgate.engine import steps
from vidgate.engine.context import EngineContext
from vidgate.engine.due import DueWorker
from vidgate.engine.finalize import FinalizeClaim, Finalized, complete, store
from vidgate.engine.runner import POLLER_IDLE_S, JobRunner


class Finalizer(DueWorker[FinalizeClaim, Finalized]):
    channel = FINALIZE_CHANNEL
    name = "finalizer"

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
        # Status reads held in this process wait for this finalizer's write-backs.
        ctx.holds.local = True

    async def claim(self, limit: int) -> list[FinalizeClaim]:
        async with self.ctx.db.begin() as conn:
            found = await claim_due_finalizes(conn, limit=limit, lease_s=self.lease_s)
        return [FinalizeClaim(job, outputs) for job, outputs in found]

    def job_id(self, claim: FinalizeClaim) -> str:
        return claim.job.id

    async def work(self, claim: FinalizeClaim) -> Finalized | None:
        try:
            return await store(self.runner, claim)
        except Exception as exc:
            # A full disk, a store that failed: retried with backoff, up to a bound.
            await self.runner.step_failed(steps.FINALIZE, claim.job.id, exc)
            return None

    async def write_back(self, results: list[Finalized]) -> None:
        # A transaction per claim batch at most: results that piled up behind a slow
        # write-back are not one long transaction holding thousands of rows.
        for start in range(0, len(results), self.batch):
            await complete(self.runner, results[start : start + self.batch])

    async def next_due_in(self) -> float | None:
        async with self.ctx.db.connect() as conn:
            return await next_finalize_due_in(conn)

    async def renew(self, claims: list[FinalizeClaim]) -> None:
        async with autocommit(self.ctx.db) as conn:
            await renew_finalizes(conn, [c.job.id for c in claims], lease_s=self.lease_s)

    async def release(self, claims: list[FinalizeClaim]) -> None:
        async with autocommit(self.ctx.db) as conn:
            await renew_finalizes(conn, [c.job.id for c in claims], lease_s=0.0)
