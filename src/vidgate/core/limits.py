"""Rate limits, as pure logic: a key's and its project's limits, what the database
counted under their locks, and the verdict on one create with the headers it answers.

Two limits per scope (a key, a project), each optional:

- ``rpm``: creates accepted in any window of ``WINDOW_S`` seconds (a sliding window:
  the creates counted are those of the last 60 s, not of the current clock minute);
- ``max_concurrent``: jobs in flight (queued, submitting, waiting, finalizing).

A create must fit every limit that applies. The response describes the tightest one
in OpenAI's headers (``x-ratelimit-limit-requests`` and its siblings), see
``Verdict.headers``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

WINDOW_S = 60.0
# No one knows when a job in flight ends: a client refused for concurrency is told to
# come back after this long.
CONCURRENCY_RETRY_S = 1.0
# What the API and the CLI take for either limit.
MAX_LIMIT = 1_000_000

ScopeKind = Literal["key", "project"]


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's or a project's limits; None is no limit."""

    rpm: int | None = None
    max_concurrent: int | None = None

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.max_concurrent is not None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """One scope's limits and what was counted against them, under its lock, before
    the create being judged: ``recent`` creates in the window, the oldest and newest of
    them ``oldest_age_s`` and ``newest_age_s`` seconds ago, ``in_flight`` jobs."""

    kind: ScopeKind
    name: str
    limits: Limits
    recent: int = 0
    oldest_age_s: float | None = None
    newest_age_s: float | None = None
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class Bound:
    """One limit of one scope, after the create (or at its refusal): how many further
    creates it allows now, and when it is back to its initial state."""

    usage: ScopeUsage
    what: Literal["rpm", "max_concurrent"]
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    # The limit refused (when not allowed), else the tightest.
    bound: Bound
    # The tightest jobs-in-flight limit, when one applies.
    concurrent: Bound | None

    @property
    def message(self) -> str:
        b = self.bound
        scope = f"{b.usage.kind} {b.usage.name}"
        if b.what == "rpm":
            return (
                f"rate limit reached for {scope}: {b.limit} creates per minute;"
                f" retry in {math.ceil(b.retry_after_s)} s"
            )
        return (
            f"rate limit reached for {scope}: {b.limit} jobs in flight (queued or in"
            " progress); retry once one of them ends"
        )

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*-requests`` for the tightest limit (the one that
        refused), vidgate's ``x-ratelimit-*-concurrent`` for jobs in flight, and on a
        refusal ``Retry-After`` (whole seconds) and ``retry-after-ms``."""
        b = self.bound
        headers = {
            "x-ratelimit-limit-requests": str(b.limit),
            "x-ratelimit-remaining-requests": str(max(0, b.remaining)),
            "x-ratelimit-reset-requests": go_duration(b.reset_s),
        }
        if self.concurrent is not None:
            headers["x-ratelimit-limit-concurrent"] = str(self.concurrent.limit)
            headers["x-ratelimit-remaining-concurrent"] = str(max(0, self.concurrent.remaining))
        if not self.allowed:
            headers["retry-after"] = str(max(1, math.ceil(b.retry_after_s)))
            headers["retry-after-ms"] = str(max(1, math.ceil(b.retry_after_s * 1000)))
        return headers


def _bounds(usage: ScopeUsage, window_s: float) -> list[Bound]:
    """The scope's limits as they stand before the create: ``remaining`` counts the
    creates still allowed, including the one being judged."""
    bounds = []
    rpm, max_concurrent = usage.limits.rpm, usage.limits.max_concurrent
    if rpm is not None:
        remaining = rpm - usage.recent
        # The window frees its first slot when its oldest create leaves it, and is empty
        # again when its newest does.
        oldest = usage.oldest_age_s
        retry = window_s - oldest if oldest is not None and remaining <= 0 else 0.0
        newest = usage.newest_age_s
        reset = window_s - newest if newest is not None else 0.0
        bounds.append(Bound(usage, "rpm", rpm, remaining, max(0.0, reset), max(0.0, retry)))
    if max_concurrent is not None:
        remaining = max_concurrent - usage.in_flight
        retry = CONCURRENCY_RETRY_S if remaining <= 0 else 0.0
        bounds.append(
            Bound(usage, "max_concurrent", max_concurrent, remaining, CONCURRENCY_RETRY_S, retry)
        )
    return bounds


def _after_accept(bound: Bound, window_s: float) -> Bound:
    """The bound once the create is accepted: one fewer left; a window's newest create
    is now this one."""
    reset = window_s if bound.what == "rpm" else bound.reset_s
    return Bound(bound.usage, bound.what, bound.limit, bound.remaining - 1, reset, 0.0)


def judge(usages: Sequence[ScopeUsage], window_s: float = WINDOW_S) -> Verdict | None:
    """The verdict on one create given each scope's usage; None when no limit applies.
    Refused when any limit has no room left; the refusal names the one that frees
    last (the client can retry only once every limit has room)."""
    bounds = [b for usage in usages for b in _bounds(usage, window_s)]
    if not bounds:
        return None
    full = [b for b in bounds if b.remaining <= 0]
    concurrent = [b for b in bounds if b.what == "max_concurrent"]
    if full:
        refused = max(full, key=lambda b: b.retry_after_s)
        tightest_concurrent = min(concurrent, key=lambda b: b.remaining, default=None)
        return Verdict(False, refused, tightest_concurrent)
    after = [_after_accept(b, window_s) for b in bounds]
    # Tightest: fewest creates left; a tie goes to creates per minute, then to the key.
    tightest = min(after, key=lambda b: (b.remaining, b.what != "rpm", b.usage.kind != "key"))
    after_concurrent = [b for b in after if b.what == "max_concurrent"]
    return Verdict(True, tightest, min(after_concurrent, key=lambda b: b.remaining, default=None))


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers (Go's ``time.Duration``):
    ``0s``, ``250ms``, ``1.5s``, ``59.02s``, ``1m0s``."""
    millis = max(0, math.ceil(seconds * 1000))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
