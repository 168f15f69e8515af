"""When to read a waiting job's upstream status next, where upstream gives no hint.

The age rule alone (engine/backoff.py ``adaptive_poll_s``: half the job's age, 1-30 s)
notices a task up to half its run time late and reads a 10 s task about six times. A
task that reports its progress says more: ``p`` % after ``t`` seconds, if it advances
evenly (OpenAI's video progress roughly does), means the task ends between
``t * 100 / (p + 1)`` and ``t * 100 / p`` seconds after it started (``p`` is a whole
number). So:

- far from the earliest end, a *checkpoint* read: most of the way there
  (``CHECKPOINT`` of the time left), where the progress, larger, narrows the estimate
  and corrects what uneven progress got wrong (at most ``MAX_POLL_S`` ahead);
- within ``APPROACH_S`` of it, the *final approach*: the latest end is kept on the job
  (``jobs.expected_end_at``) and read at, or from the earliest end every
  ``FAST_POLL_S`` when the two are further apart than that;
- past the kept end, quick reads go on for ``FAST_WINDOW_S``, then the wait doubles
  with the overshoot (half of it each time) up to the age rule's: a task stuck at 99 %
  costs a few quick reads, not a read every quarter second. The kept end never moves
  from a progress that stays put; only a progress that says much more is left
  (``REPLAN``) plans again.

A task without progress (or at 0 %: queued) is read by the age rule, as before. Hints
from upstream (``poll_after_s``) are the caller's to honour first (engine/runner.py).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from vidgate.core.jobs import PollClaim
from vidgate.engine.backoff import MAX_POLL_S, adaptive_poll_s
from vidgate.providers.base import UpstreamStatus

FAST_POLL_S = 0.25
FAST_WINDOW_S = 1.0
APPROACH_S = 2.0
CHECKPOINT = 0.7
# A task with an end kept whose earliest end is still this share of its age (and
# APPROACH_S) away is planned again from its progress: it slowed down. One stuck near
# its end is not (its earliest end is always near).
REPLAN = 0.1
# The shortest wait that is worth a read.
MIN_WAIT_S = 0.05
# Progress read sooner than this after the submit says little: the wait is counted from
# the submission's answer, the task's progress from its creation upstream.
MIN_ESTIMATE_S = 0.5


@dataclass(frozen=True, slots=True)
class NextRead:
    """When to read next (seconds from now), and the expected end to keep (seconds
    after the task was submitted; None: nothing new to keep)."""

    delay_s: float
    end_s: float | None


def plan_read(claim: PollClaim, status: UpstreamStatus) -> tuple[float, dt.datetime | None]:
    """When to read a claimed job that is still running again (seconds from now), and
    the expected end to keep on it (None: keep the row's). An upstream hint wins."""
    if status.poll_after_s is not None:
        return status.poll_after_s, None
    submitted = claim.submitted_at
    if submitted is None:
        return adaptive_poll_s(0.0), None
    waited = max(0.0, time.time() - submitted.timestamp())
    kept = claim.expected_end_at
    plan = next_read(waited, status.progress, (kept - submitted).total_seconds() if kept else None)
    if plan.end_s is None:
        return plan.delay_s, None
    return plan.delay_s, submitted + dt.timedelta(seconds=plan.end_s)


def end_bounds(waited_s: float, progress: int | None) -> tuple[float, float] | None:
    """The earliest and latest end (seconds after submit) that ``progress`` after
    ``waited_s`` allows if the task advances evenly; None when it tells nothing."""
    if progress is None or progress <= 0 or waited_s < MIN_ESTIMATE_S:
        return None
    p = min(progress, 99)
    return waited_s * 100 / (p + 1), waited_s * 100 / p


def next_read(waited_s: float, progress: int | None, kept_end_s: float | None) -> NextRead:
    """The next read of a task running for ``waited_s`` that reports ``progress``, with
    the expected end kept from earlier reads (``kept_end_s``, seconds after submit)."""
    bounds = end_bounds(waited_s, progress)
    if bounds is not None:
        earliest, latest = bounds
        left = earliest - waited_s
        if kept_end_s is None or left > max(APPROACH_S, REPLAN * waited_s):
            if left > APPROACH_S:
                return NextRead(min(MAX_POLL_S, CHECKPOINT * left), None)
            return NextRead(_approach(waited_s, earliest, latest), latest)
    if kept_end_s is None:
        return NextRead(adaptive_poll_s(waited_s), None)
    if waited_s < kept_end_s:
        earliest = bounds[0] if bounds is not None else waited_s
        return NextRead(_approach(waited_s, earliest, kept_end_s), None)
    overshoot = waited_s - kept_end_s
    if overshoot < FAST_WINDOW_S:
        return NextRead(FAST_POLL_S, None)
    return NextRead(min(adaptive_poll_s(waited_s), max(FAST_POLL_S, overshoot / 2)), None)


def _approach(waited_s: float, earliest: float, latest: float) -> float:
    """At the latest end, or a quick step from the earliest when that comes first."""
    target = min(latest, max(earliest, waited_s) + FAST_POLL_S)
    return max(MIN_WAIT_S, target - waited_s)
