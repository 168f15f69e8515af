"""Webhook endpoints of a project: the events they may subscribe to, the records the
layers pass around, and the rules of delivery (retry schedule, disabling, rotation).

The events themselves are written by a trigger on ``jobs`` (migration 0016), in the
transaction of the state change; engine/endpoint_deliverer.py sends them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

EndpointEvent = Literal[
    "video.queued", "video.in_progress", "video.completed", "video.failed", "video.cancelled"
]
EVENTS: tuple[EndpointEvent, ...] = (
    "video.queued",
    "video.in_progress",
    "video.completed",
    "video.failed",
    "video.cancelled",
)
DeliveryStatus = Literal["pending", "delivered", "failed"]

# Endpoints per project: every event of a job fans out to each, in the transaction of
# its state change.
MAX_ENDPOINTS = 16
# Wait after each failed attempt: after the 8th attempt, 27.6 h after the first, the
# delivery has failed (the issue: retried for at least 24 h).
RETRY_DELAYS_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
# Each wait is shortened by up to this fraction at random, so that a receiver that
# comes back is not met by its whole backlog at once.
RETRY_JITTER = 0.05
# An endpoint whose deliveries have all failed for this long is disabled.
DISABLE_AFTER = dt.timedelta(days=3)
# After a rotation, the previous secret signs too for this long.
ROTATION_GRACE = dt.timedelta(hours=24)
# How much of a receiver's answer is kept with each attempt.
SNIPPET_BYTES = 512


def retry_delay_s(attempts: int, jitter: float = 0.0) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts (1 = the first), or None:
    none left. ``jitter`` in [0, 1) takes that fraction of ``RETRY_JITTER`` off."""
    if attempts < 1 or attempts > len(RETRY_DELAYS_S):
        return None
    return RETRY_DELAYS_S[attempts - 1] * (1 - RETRY_JITTER * jitter)


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    tenant_id: str
    url: str
    events: tuple[str, ...]
    created_at: dt.datetime
    failing_since: dt.datetime | None
    disabled_at: dt.datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NewSecret:
    """An endpoint as created or rotated, with its secret: shown to the caller once."""

    endpoint: EndpointRecord
    secret: str


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    attempted_at: dt.datetime
    status_code: int | None
    error: str | None
    latency_ms: int
    response_snippet: str | None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: str
    endpoint_id: str
    job_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    attempt_log: tuple[AttemptRecord, ...]


@dataclass(frozen=True, slots=True)
class DeliveryClaim:
    """A due delivery, claimed for one attempt, with what sending it needs."""

    delivery_id: str
    endpoint_id: str
    tenant_id: str
    url: str
    event_id: str
    payload: str
    # Attempts made before this one.
    attempts: int
    retry: bool
    secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One attempt of a claimed delivery, to be written back."""

    claim: DeliveryClaim
    attempted_at: dt.datetime
    latency_ms: int
    status_code: int | None
    # What went wrong, in words; None when the receiver answered 2xx.
    error: str | None
    response_snippet: str | None
    # No attempt was made (a cap was full): due again after ``defer_s``.
    defer_s: float | None = None
    # Retrying cannot help (the URL or its address is refused).
    final: bool = False

    @property
    def delivered(self) -> bool:
        return self.defer_s is None and self.error is None
