"""Waiting between attempts: retries of failed calls, and polls of running jobs."""

from __future__ import annotations

import random

# Without a hint from upstream, a job that has run for t seconds is read again after
# POLL_AGE_FACTOR * t, within these bounds: a short job is noticed soon after it ends,
# and a long one costs a status read every half minute at most. With 0.5, a job is
# noticed at most half its run time late (often much less), and a 60 s job costs about
# ten reads.
POLL_AGE_FACTOR = 0.5
MIN_POLL_S = 1.0
MAX_POLL_S = 30.0


def backoff_s(attempt: int, *, base: float = 0.5, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter; ``attempt`` starts at 1."""
    return float(random.uniform(0, min(cap, base * 2 ** (attempt - 1))))


def adaptive_poll_s(waited_s: float) -> float:
    """The wait before the next status read of a job upstream for ``waited_s``."""
    return min(MAX_POLL_S, max(MIN_POLL_S, POLL_AGE_FACTOR * waited_s))
