"""The loop behind the submitter and the poller: claim jobs whose next step is due, many
at a time, work on each concurrently, and write the results back in batches.

The job row is the queue: a claim is one statement (``FOR UPDATE SKIP LOCKED``, so any
number of processes share the work) that moves the row's due time a lease ahead, so
the claims of a process that dies become due again when the lease runs out (a step
that must not run twice while its first run lives renews its leases). A write-back
checks the row is still where the claim left it. Ten thousand jobs cost one index scan
per batch and a few statements per second, where a procrastinate task per step would
cost a queue insert, a fetch, a lock and a delete each.

Waking: an idle loop sleeps until the earliest due job, at most ``idle_s``, and a
``NOTIFY`` on its channel wakes it at once.

Stopping (engine/shutdown.py): once the process's shutdown is requested the loop claims
nothing more, lets the steps in flight finish until the drain deadline and writes them
back, then cancels those still running and releases their claims (due now, for another
process). Cancelled outright, it does the last part at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

import psycopg
import structlog

from vidgate.db.embedded import to_libpq_uri
from vidgate.db.health import log_failure
from vidgate.engine.context import EngineContext
from vidgate.engine.shutdown import Shutdown

ClaimT = TypeVar("ClaimT")
ResultT = TypeVar("ResultT")

# A write-back waits this long for others still in flight to join it (less once none
# is: the last of a burst is not held back for them).
_FLUSH_DELAY_S = 0.05
_LISTEN_RETRY_S = 5.0
# The shortest sleep: work falling due one job after another is claimed in batches.
_MIN_TICK_S = 0.1
# Waits before a failed write-back is tried again (a database blip), then it is given
# up: dropped results leave their jobs to be claimed again when the leases run out,
# which for a submission means a second one upstream.
_WRITE_BACK_RETRIES_S = (0.5, 1.0, 2.0, 4.0, 8.0)


class DueWorker(ABC, Generic[ClaimT, ResultT]):
    """Subclasses say how to claim, work on, write back and release one kind of step."""

    # The NOTIFY channel that wakes the loop, and the prefix of its log events.
    channel: str
    name: str

    def __init__(self, ctx: EngineContext, *, concurrency: int, batch: int, idle_s: float) -> None:
        self.ctx = ctx
        self.concurrency = concurrency
        self.batch = batch
        self.idle_s = idle_s
        self.lease_s = ctx.settings.stalled_after_s
        self.log = structlog.get_logger(f"vidgate.{self.name}")
        self._wake = asyncio.Event()
        self._flush_wanted = asyncio.Event()
        # Set when the last step in flight ends.
        self._drained = asyncio.Event()
        self._inflight: dict[int, ClaimT] = {}
        # Claims whose step is done and whose result waits for its write-back: still
        # renewed, or a write-back slower than what is left of the lease would let
        # another worker claim the job again (a second submission upstream).
        self._unwritten: dict[int, ClaimT] = {}
        self._pending: list[tuple[int, ResultT]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Held by a write-back: the way out waits for one under way instead of cutting
        # it short (its results, taken off ``_pending``, would be lost).
        self._flushing = asyncio.Lock()
        # Write-backs failed in a row, and the task that will try the next one.
        self._failed_flushes = 0
        self._retry: asyncio.Task[None] | None = None

    # --- what a subclass provides ---------------------------------------------------

    @abstractmethod
    async def claim(self, limit: int) -> list[ClaimT]:
        """Claim up to ``limit`` due jobs."""

    @abstractmethod
    def job_id(self, claim: ClaimT) -> str:
        """The claimed job's id, for the logs."""

    def log_context(self, claim: ClaimT) -> dict[str, str]:
        """What every line logged while a claim is worked on carries."""
        return {"job_id": self.job_id(claim)}

    @abstractmethod
    async def work(self, claim: ClaimT) -> ResultT | None:
        """One claimed job's step: a result to write back with others, or None when the
        step wrote its outcome itself (the rare paths: done, failed, retried)."""

    @abstractmethod
    async def write_back(self, results: list[ResultT]) -> None:
        """Write a batch of results, each only where its claim still holds."""

    @abstractmethod
    async def next_due_in(self) -> float | None:
        """Seconds until the earliest job this loop would claim is due; None: none."""

    async def renew(self, claims: list[ClaimT]) -> None:
        """Extend the leases of claims still being worked on or whose results wait for
        their write-back, every third of a lease. By default they are not: for steps
        that may safely run twice."""
        del claims

    @abstractmethod
    async def release(self, claims: list[ClaimT]) -> None:
        """On the way out: make claims whose step did not finish due again at once."""

    # --- the loop ---------------------------------------------------------------------

    async def run(self, shutdown: Shutdown | None = None) -> None:
        """Claim and work until ``shutdown`` is requested (then stop as the module says)
        or the task is cancelled."""
        listener = asyncio.create_task(self._listen(), name=f"vidgate-{self.name}-listen")
        flusher = asyncio.create_task(self._flush_loop(), name=f"vidgate-{self.name}-flush")
        renewer = asyncio.create_task(self._renew_loop(), name=f"vidgate-{self.name}-renew")
        if shutdown is not None:
            shutdown.wake_on_request(self._wake)
        try:
            while shutdown is None or not shutdown.requested:
                try:
                    more = await self._claim_and_start()
                except Exception as exc:
                    log_failure(self.log, f"{self.name}.claim_failed", exc)
                    more = False
                if not more:
                    await self._sleep()
            assert shutdown is not None
            if self._tasks:
                self.log.info(f"{self.name}.draining", steps=len(self._tasks))
                await asyncio.wait(set(self._tasks), timeout=shutdown.drain_left())
        finally:
            # Taken before the steps are cancelled: each one leaves the map as it ends.
            unfinished = list(self._inflight.values())
            if self._retry is not None:
                self._retry.cancel()
            for task in (listener, renewer, *self._tasks):
                task.cancel()
            await asyncio.gather(listener, renewer, *self._tasks, return_exceptions=True)
            async with self._flushing:
                flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            await asyncio.shield(self._shutdown(unfinished))

    async def run_due_once(self) -> int:
        """Work on every job due now and write the results back; returns how many.
        For tests and tools: ``run`` does this continuously."""
        total = 0
        while True:
            claims = await self.claim(self.batch)
            await asyncio.gather(*(self._work_one(claim) for claim in claims))
            await self.flush()
            total += len(claims)
            if len(claims) < self.batch:
                return total

    async def flush(self) -> None:
        async with self._flushing:
            pending, self._pending = self._pending, []
            if not pending:
                return
            try:
                await self.write_back([result for _, result in pending])
            except Exception as exc:
                if self._failed_flushes < len(_WRITE_BACK_RETRIES_S):
                    delay = _WRITE_BACK_RETRIES_S[self._failed_flushes]
                    self._failed_flushes += 1
                    log_failure(
                        self.log,
                        f"{self.name}.flush_failed",
                        exc,
                        jobs=len(pending),
                        retry_in_s=delay,
                    )
                    # Kept, and their claims still renewed (``_unwritten``): the jobs
                    # stay ours, and an accepted submission is not made again.
                    self._pending[:0] = pending
                    self._retry_flush(delay)
                    return
                log_failure(self.log, f"{self.name}.flush_dropped", exc, jobs=len(pending))
            self._failed_flushes = 0
            for key, _ in pending:
                self._unwritten.pop(key, None)

    def _retry_flush(self, delay: float) -> None:
        if self._retry is not None and not self._retry.done():
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            self._flush_wanted.set()

        self._retry = asyncio.create_task(later(), name=f"vidgate-{self.name}-flush-retry")

    async def _claim_and_start(self) -> bool:
        """Claim what is due (up to the free concurrency) and start on it; True when it
        took a full batch, so more may be due."""
        free = min(self.batch, self.concurrency - len(self._inflight))
        if free <= 0:
            return False
        claims = await self.claim(free)
        for claim in claims:
            task = asyncio.create_task(self._work_one(claim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claims) == free

    async def _work_one(self, claim: ClaimT) -> None:
        key = id(claim)
        self._inflight[key] = claim
        # Every line logged by this claim's work carries its job's id (a task of its
        # own, so the binding ends with it).
        structlog.contextvars.bind_contextvars(**self.log_context(claim))
        try:
            result = await self.work(claim)
        except Exception as exc:
            # ``work`` handles the step's own failures; this is the database. The
            # lease runs out and the job is taken up again.
            log_failure(self.log, f"{self.name}.step_failed", exc, job_id=self.job_id(claim))
            result = None
        finally:
            self._inflight.pop(key, None)
            if len(self._inflight) == self.concurrency - 1:
                self._wake.set()  # a slot is free again
            if not self._inflight:
                self._drained.set()
        if result is not None:
            self._unwritten[key] = claim
            self._pending.append((key, result))
            self._flush_wanted.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wanted.wait()
            # Steps still in flight may join this write-back; with none (from the
            # start, or once the last ends), waiting would only delay the jobs (a lone
            # submission's first poll; the last results of a burst, B7).
            if self._inflight:
                self._drained.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), _FLUSH_DELAY_S)
            self._flush_wanted.clear()
            await self.flush()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            claims = [*self._inflight.values(), *self._unwritten.values()]
            if claims:
                try:
                    await self.renew(claims)
                except Exception as exc:
                    log_failure(self.log, f"{self.name}.renew_failed", exc, jobs=len(claims))

    async def _sleep(self) -> None:
        """Until the earliest due job (but at least ``_MIN_TICK_S``), at most ``idle_s``;
        a notification or a freed slot ends it early."""
        timeout = self.idle_s
        if len(self._inflight) < self.concurrency:
            try:
                due_in = await self.next_due_in()
            except Exception as exc:
                log_failure(self.log, f"{self.name}.due_failed", exc)
                due_in = None
            if due_in is not None:
                timeout = max(_MIN_TICK_S, min(timeout, due_in))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _shutdown(self, unfinished: list[ClaimT]) -> None:
        """Write back what finished, and release what did not."""
        with contextlib.suppress(Exception):
            await self.flush()
        if unfinished:
            with contextlib.suppress(Exception):
                await self.release(unfinished)
            self.log.info(f"{self.name}.released", jobs=len(unfinished))

    async def _listen(self) -> None:
        """Wake on ``NOTIFY``; without it (connection lost) the idle sleep still works."""
        if not self.ctx.database_url:
            return
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    to_libpq_uri(self.ctx.database_url), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {self.channel}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError):
                self.log.warning(f"{self.name}.listen_lost")
            await asyncio.sleep(_LISTEN_RETRY_S)
