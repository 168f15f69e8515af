"""Status reads of a job about to complete, held for a moment (issue 14, bench B7).

From the upstream task's end to ``completed`` takes vidgate a few tenths of a second:
the poller notices the end, the finalizer downloads, probes and stores the video. A
client that polls at a fixed pace and reads the job in that gap sees ``in_progress``
and waits its whole interval again, where through a pass-through gateway its read
would have found the video. So a status read of a job that is finishing (``finalizing``,
or ``waiting`` with its expected end, ``jobs.expected_end_at``, passed by less than the
window, or due within a quarter second) waits up to ``Settings.status_hold_ms`` for
it, and answers as soon as the job leaves those states, or at the window's end with
what its row says then.

How it wakes: the finalizer's write-back, in this process, wakes the reads held for the
jobs it completed (``wake``, engine/finalize.py) at once. Between wakes a held read
re-reads the row now and then: every ``LOCAL_RECHECK_S`` beside a finalizer (a job
that failed, was cancelled, or was completed by another process), every
``REMOTE_RECHECK_S`` where none runs here (``serve --no-worker``). A held read holds
no database connection while it waits, only an event; at most
``Settings.status_hold_max_reads`` are held at once in a process, and reads beyond
that answer at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from vidgate.core.jobs import JobRecord, JobState
from vidgate.engine.poll_schedule import FAST_POLL_S

LOCAL_RECHECK_S = 0.25
# The kept end is the latest end the task's progress allows (a whole percent of its
# run time after the earliest): a task may end a little before it, and the poller's
# final approach reads it every quarter second from there (engine/poll_schedule.py).
EXPECTED_END_LEAD_S = FAST_POLL_S
REMOTE_RECHECK_S = 0.1


class StatusHolds:
    """The process's held status reads and what wakes them."""

    def __init__(self, hold_ms: int, max_reads: int) -> None:
        self.hold_s = max(0, hold_ms) / 1000
        self.max_reads = max_reads
        # A finalizer runs in this process: its write-backs wake the held reads.
        self.local = False
        self.held = 0
        self._events: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = {}

    def finishing(self, job: JobRecord, now: float) -> bool:
        """Whether a read of ``job`` (not terminal) at ``now`` is worth holding: two
        comparisons on the row already read."""
        if job.state == JobState.FINALIZING:
            return self.hold_s > 0
        if job.state == JobState.WAITING and job.expected_end_at is not None:
            return -EXPECTED_END_LEAD_S <= now - job.expected_end_at.timestamp() < self.hold_s
        return False

    def wake(self, job_ids: Iterable[str]) -> None:
        """The jobs' states changed (written and committed): their held reads go on."""
        if self._events:
            for job_id in job_ids:
                event = self._events.get(job_id)
                if event is not None:
                    event.set()

    async def hold(self, job: JobRecord, reread: Callable[[], Awaitable[JobRecord]]) -> JobRecord:
        """``job`` as a status read should answer it: as read, or as ``reread`` finds it
        once it stops finishing, or at the window's end."""
        if self.held >= self.max_reads or not self.finishing(job, time.time()):
            return job
        deadline = time.monotonic() + self.hold_s
        recheck = LOCAL_RECHECK_S if self.local else REMOTE_RECHECK_S
        event = self._events.get(job.id)
        if event is None:
            event = self._events[job.id] = asyncio.Event()
        self._waiting[job.id] = self._waiting.get(job.id, 0) + 1
        self.held += 1
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return await reread()
                woke = True
                try:
                    async with asyncio.timeout(min(left, recheck)):
                        await event.wait()
                except TimeoutError:
                    woke = False
                current = await reread()
                if woke or current.state not in (JobState.WAITING, JobState.FINALIZING):
                    return current
        finally:
            self.held -= 1
            count = self._waiting[job.id] - 1
            if count:
                self._waiting[job.id] = count
            else:
                del self._waiting[job.id]
                del self._events[job.id]
