"""How a worker stops: the whole sequence, in one place.

SIGTERM (or Ctrl-C) calls ``Shutdown.request``; from then on, within
``shutdown_timeout_s`` (the bound, default 30 s):

1. Nothing takes new work. The submitter, the poller and the endpoint deliverer
   (engine/due.py) claim nothing more; procrastinate's workers fetch no more steps;
   the periodic loops start no new pass.
2. What is in flight may finish until the drain deadline, the bound less a margin
   (``drain_time``): submissions and status reads are written back as usual,
   finalize steps, webhooks and cancels end as usual.
3. At the drain deadline, what still runs is handed back, so that another worker takes
   it at once (nothing is left for the sweeper, which would find it only after
   ``stalled_after_s`` plus a sweep): the due loops cancel their steps and make their
   claims due now (``DueWorker.release``); procrastinate aborts its running steps, and
   ``HAND_BACK`` puts each back to ``todo``, due now.
4. The process closes its pools and leaves (vidgate/process_exit.py); a watchdog ends it
   at the bound, whatever still hangs.

``serve`` runs the same for its worker, beside uvicorn's own graceful shutdown of the
HTTP connections, which starts at the same signal and drains for the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import procrastinate
import structlog
from procrastinate.jobs import Job

log = structlog.get_logger("vidgate.shutdown")

# Left of the bound after the drain, for the hand-backs, closing the pools and the
# embedded PostgreSQL's stop: at most this long, and at most a third of the bound.
_MARGIN_S = 5.0


def drain_time(timeout_s: float) -> float:
    """How long steps in flight may run on after a shutdown is requested."""
    return max(0.0, timeout_s - min(_MARGIN_S, timeout_s / 3))


class Shutdown:
    """A process's stop: requested once, with its deadlines; the worker's parts wait on
    it instead of being cancelled, so that each one can finish or hand back its work."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.drain_s = drain_time(timeout_s)
        self._requested = asyncio.Event()
        self._drain_deadline = 0.0
        self._deadline = 0.0
        self._wakers: list[asyncio.Event] = []

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self) -> None:
        """Start the shutdown (later calls change nothing). On the event loop's thread
        (a signal handler installed with ``loop.add_signal_handler`` runs there)."""
        if self.requested:
            return
        now = time.monotonic()
        self._drain_deadline = now + self.drain_s
        self._deadline = now + self.timeout_s
        self._requested.set()
        for event in self._wakers:
            event.set()
        log.info("shutdown.requested", drain_s=round(self.drain_s, 2), timeout_s=self.timeout_s)

    def wake_on_request(self, event: asyncio.Event) -> None:
        """Set ``event`` when the shutdown is requested (a loop sleeping on it wakes)."""
        self._wakers.append(event)
        if self.requested:
            event.set()

    async def wait(self) -> None:
        await self._requested.wait()

    async def sleep(self, seconds: float) -> None:
        """``seconds``, or less when the shutdown is requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._requested.wait(), seconds)

    def drain_left(self) -> float:
        """Seconds until in-flight work must be handed back (the whole drain time while
        no shutdown is requested)."""
        if not self.requested:
            return self.drain_s
        return max(0.0, self._drain_deadline - time.monotonic())

    def left(self) -> float:
        """Seconds until the bound (the whole of it while no shutdown is requested)."""
        if not self.requested:
            return self.timeout_s
        return max(0.0, self._deadline - time.monotonic())


class _HandBack(procrastinate.BaseRetryStrategy):
    """A step cut short by its worker's shutdown goes back to ``todo``, due now, for
    any worker: procrastinate aborts the steps still running at its graceful timeout by
    cancelling them, and asks the task's retry strategy what to do with a step aborted
    for a shutdown; without one it would end ``aborted`` and wait for the sweeper.

    Nothing else is retried here: vidgate's steps handle their own failures
    (engine/runner.py ``guarded``), and no step is aborted for any other reason."""

    def get_retry_decision(
        self, *, exception: BaseException, job: Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError):
            log.info("shutdown.handed_back", step=job.task_name, step_id=job.id)
            return procrastinate.RetryDecision()
        return None


HAND_BACK = _HandBack()
