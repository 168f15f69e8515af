"""Reads the upstream status of waiting jobs when it is due, many jobs at a time.

A waiting job's next status read is a column of its row (``jobs.next_poll_at``), not a
queued task: a poller claims due jobs in batches with one statement (``FOR UPDATE SKIP
LOCKED``, so any number of pollers share the work), reads their status concurrently,
and writes back the ones still running in one statement per flush. Ten thousand jobs
in flight cost one index scan per batch and a few statements per second, where a task
per read would cost a queue fetch, a lock and a delete each.

Crash safety: a claim moves ``next_poll_at`` a lease ahead (``stalled_after_s``), so
the jobs of a poller that dies become due again when it runs out, and another poller
reads them. A read that outlives its lease is harmless: status reads change nothing
upstream, a write-back only applies while the row still holds the claim's lease, and
a finished job's transition is checked under the row lock.

Waking: an idle poller sleeps until the earliest due poll, at most ``idle_s``, and a
``NOTIFY`` on ``repo.POLL_CHANNEL`` (a submission whose first poll is due soon, a
callback's nudge) wakes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog

from vidgate.db import repo
from vidgate.db.embedded import to_libpq_uri
from vidgate.engine.context import EngineContext
from vidgate.engine.runner import POLLER_IDLE_S, JobRunner

log = structlog.get_logger("vidgate.poller")

# A write-back waits this long for others to join it.
_FLUSH_DELAY_S = 0.05
_LISTEN_RETRY_S = 5.0
_MIN_TICK_S = 0.1


class Poller:
    def __init__(
        self,
        ctx: EngineContext,
        *,
        concurrency: int,
        batch: int = 200,
        idle_s: float = POLLER_IDLE_S,
    ) -> None:
        self.ctx = ctx
        self.runner = JobRunner(ctx)
        self.concurrency = concurrency
        self.batch = batch
        self.idle_s = idle_s
        self.lease_s = ctx.settings.stalled_after_s
        self._wake = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        self._inflight: dict[str, repo.PollClaim] = {}
        self._pending: list[repo.PollReschedule] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="vidgate-poll-listen")
        flusher = asyncio.create_task(self._flush_loop(), name="vidgate-poll-flush")
        try:
            while True:
                try:
                    more = await self._claim_and_start()
                except Exception:
                    log.exception("poller.claim_failed")
                    more = False
                if not more:
                    await self._sleep()
        finally:
            # Taken before the reads are cancelled: each one leaves the map as it ends.
            unread = list(self._inflight.values())
            listener.cancel()
            flusher.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(listener, flusher, *self._tasks, return_exceptions=True)
            await asyncio.shield(self._release(unread))

    async def _claim_and_start(self) -> bool:
        """Claim what is due (up to the free concurrency) and start reading it; True
        when it took a full batch, so more may be due."""
        free = min(self.batch, self.concurrency - len(self._inflight))
        if free <= 0:
            return False
        async with self.ctx.db.begin() as conn:
            claims = await repo.claim_due_polls(conn, limit=free, lease_s=self.lease_s)
        for claim in claims:
            self._inflight[claim.job_id] = claim
            task = asyncio.create_task(self._check(claim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claims) == free

    async def poll_due_once(self) -> int:
        """Read every poll due now and write the results back; returns how many were
        read. For tests and tools: ``run`` does this continuously."""
        total = 0
        while True:
            async with self.ctx.db.begin() as conn:
                claims = await repo.claim_due_polls(conn, limit=self.batch, lease_s=self.lease_s)
            for claim in claims:
                self._inflight[claim.job_id] = claim
            await asyncio.gather(*(self._check(claim) for claim in claims))
            await self.flush()
            total += len(claims)
            if len(claims) < self.batch:
                return total

    async def _check(self, claim: repo.PollClaim) -> None:
        try:
            reschedule = await self.runner.check_upstream(claim)
        except Exception:
            # check_upstream handles upstream and step errors; this is the database.
            log.exception("poller.check_failed", job_id=claim.job_id)
            reschedule = None  # the lease runs out and the job is read again
        finally:
            self._inflight.pop(claim.job_id, None)
            if len(self._inflight) == self.concurrency - 1:
                self._wake.set()  # a slot is free again
        if reschedule is not None:
            self._pending.append(reschedule)
            self._flush_wanted.set()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            async with self.ctx.db.begin() as conn:
                await repo.reschedule_polls(conn, pending)
        except Exception:
            log.exception("poller.flush_failed", jobs=len(pending))

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wanted.wait()
            await asyncio.sleep(_FLUSH_DELAY_S)
            self._flush_wanted.clear()
            await self.flush()

    async def _sleep(self) -> None:
        """Until the earliest due poll (but at least ``_MIN_TICK_S``, so that polls
        falling due one after another are claimed in batches), at most ``idle_s``; a
        notification or a freed slot ends it early."""
        timeout = self.idle_s
        if len(self._inflight) < self.concurrency:
            try:
                async with self.ctx.db.connect() as conn:
                    due_in = await repo.next_poll_due_in(conn)
            except Exception:
                log.exception("poller.due_failed")
                due_in = None
            if due_in is not None:
                timeout = max(_MIN_TICK_S, min(timeout, due_in))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _release(self, unread: list[repo.PollClaim]) -> None:
        """On the way out: write back what was read, and make what was still being read
        due again at once rather than when its lease runs out."""
        self._pending.extend(
            repo.PollReschedule(
                claim,
                delay_s=0.0,
                progress=claim.progress,
                poll_count=claim.poll_count,
                step_attempts=claim.step_attempts,
            )
            for claim in unread
        )
        with contextlib.suppress(Exception):
            await self.flush()

    async def _listen(self) -> None:
        """Wake on ``NOTIFY``; without it (connection lost) the idle sleep still works."""
        if not self.ctx.database_url:
            return
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    to_libpq_uri(self.ctx.database_url), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {repo.POLL_CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError):
                log.warning("poller.listen_lost")
            await asyncio.sleep(_LISTEN_RETRY_S)
