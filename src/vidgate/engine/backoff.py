"""Waiting between attempts: retries of failed calls, and polls of running jobs."""

from __future__ import annotations

import random

_MAX_POLL_S = 30.0


def backoff_s(attempt: int, *, base: float = 0.5, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter; ``attempt`` starts at 1."""
    return float(random.uniform(0, min(cap, base * 2 ** (attempt - 1))))


def adaptive_poll_s(poll_count: int) -> float:
    """Without a hint from upstream, poll often at first and back off for long jobs."""
    return float(min(_MAX_POLL_S, 1.0 * 1.25**poll_count))
