"""Reads the upstream status of waiting jobs when it is due, many jobs at a time.

A waiting job's next status read is a column of its row (``jobs.next_poll_at``), not a
queued task: the poller claims due jobs in batches, reads their status concurrently,
and writes back the ones still running, and the ones done with their finalize steps,
a statement each per flush (engine/due.py has the loop, its leases and its waking).

A read that outlives its lease is harmless: status reads change nothing upstream, a
running job's write-back only applies while the row still holds the claim's lease, and
a finished job moves on only if it is still waiting (a failure too: the conditional
update of db/jobs.py ``transition``). A ``NOTIFY`` on ``POLL_CHANNEL`` (db/claims.py)
(a submission whose first poll is due soon, a callback's nudge) wakes the poller.
"""

from __future__ import annotations

from vidgate.core.jobs import PollClaim, PollOutcome, PollReschedule
from vidgate.db.claims import POLL_CHANNEL, claim_due_polls, next_poll_due_in
from vidgate.engine.context import EngineContext
from vidgate.engine.due import DueWorker
from vidgate.engine.runner import POLLER_IDLE_S, JobRunner


class Poller(DueWorker[PollClaim, PollOutcome]):
    channel = POLL_CHANNEL
    name = "poller"

    def __init__(
        self,
        ctx: EngineContext,
        *,
        concurrency: int,
        batch: int = 200,
        idle_s: float = POLLER_IDLE_S,
    ) -> None:
        super().__init__(ctx, concurrency=concurrency, batch=batch, idle_s=idle_s)
        self.runner = JobRunner(ctx)

    async def claim(self, limit: int) -> list[PollClaim]:
        async with self.ctx.db.begin() as conn:
            return await claim_due_polls(conn, limit=limit, lease_s=self.lease_s)

    def job_id(self, claim: PollClaim) -> str:
        return claim.job_id

    async def work(self, claim: PollClaim) -> PollOutcome | None:
        return await self.runner.check_upstream(claim)

    async def write_back(self, results: list[PollOutcome]) -> None:
        await self.runner.record_polls(results)

    async def next_due_in(self) -> float | None:
        async with self.ctx.db.connect() as conn:
            return await next_poll_due_in(conn)

    async def release(self, claims: list[PollClaim]) -> None:
        await self.write_back(
            [
                PollReschedule(
                    claim,
                    delay_s=0.0,
                    progress=claim.progress,
                    poll_count=claim.poll_count,
                    step_attempts=claim.step_attempts,
                )
                for claim in claims
            ]
        )
