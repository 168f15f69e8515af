"""The job domain: a job's states, the moves between them, and the records of a job
that the layers pass to each other.

    queued -> submitting -> waiting -> finalizing -> completed
                  |            |           |
                  +------------+-----------+----> failed | cancelled

A submission that fails over to another deployment goes back from ``submitting`` to
``queued``, and so does a waiting job whose upstream task failed transiently (once, to
another deployment). The database layer returns these records and checks every state change
it writes against ``TRANSITIONS`` (db/jobs.py ``transition``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from vidgate.core.spec import JobSpec


class JobState(StrEnum):
    """The values of ``jobs.state`` (its CHECK constraint lists the same seven)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    WAITING = "waiting"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE: frozenset[JobState] = frozenset(
    {JobState.QUEUED, JobState.SUBMITTING, JobState.WAITING, JobState.FINALIZING}
)
TERMINAL: frozenset[JobState] = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
# Submitted upstream and not finished there: what a deployment's concurrency cap counts.
INFLIGHT: frozenset[JobState] = frozenset({JobState.SUBMITTING, JobState.WAITING})
# What a submitter may claim.
TO_SUBMIT: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.SUBMITTING})

_ENDS = frozenset({JobState.FAILED, JobState.CANCELLED})
# The legal moves: any active job can fail or be cancelled; a terminal job never moves.
TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.SUBMITTING}) | _ENDS,
    # Back to queued: a fallback to the next deployment that can serve the job.
    JobState.SUBMITTING: frozenset({JobState.WAITING, JobState.QUEUED}) | _ENDS,
    # Back to queued: a transient upstream failure, tried once on another deployment.
    JobState.WAITING: frozenset({JobState.FINALIZING, JobState.QUEUED}) | _ENDS,
    JobState.FINALIZING: frozenset({JobState.COMPLETED}) | _ENDS,
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


# The one move out of a terminal state, not in ``TRANSITIONS``: a job that vidgate failed
# for its own wait limit (VIDGATE_UPSTREAM_TASK_TIMEOUT_S) goes back to ``finalizing``
# when the upstream task it gave up on succeeds after all (engine/late_results.py), so
# the result is delivered and settled rather than lost.
LATE_RESULT: tuple[JobState, JobState] = (JobState.FAILED, JobState.FINALIZING)


class IllegalTransition(ValueError):
    """A state change the state machine does not have: a bug in the caller."""


def check_transition(sources: frozenset[JobState], target: JobState) -> None:
    """Raise unless every state in ``sources`` may move to ``target``."""
    illegal = sorted(s for s in sources if target not in TRANSITIONS[s])
    if illegal:
        raise IllegalTransition(f"no transition from {', '.join(illegal)} to {target}")


def stored_spec(data: Mapping[str, Any]) -> JobSpec:
    """A spec as stored (``JobSpec.model_dump(mode="json")`` of a spec that passed the
    create's checks): parsed into the model, types only. The client-facing checks
    (core/spec.py ``normalize``) ran once, before the job was stored."""
    return JobSpec.model_validate(data)


def stored_spec_json(text: str | bytes) -> JobSpec:
    """``stored_spec`` from the stored JSON text."""
    return JobSpec.model_validate_json(text)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A row of ``jobs``, its spec parsed. The fields are the table's columns, in the
    order the database layer selects them."""

    id: str
    tenant_id: str
    api_key_id: str
    mode: str
    model: str
    kind: str
    spec: JobSpec
    state: JobState
    progress: int
    error_code: str | None
    error_message: str | None
    provider: str
    upstream_model: str | None
    upstream_id: str | None
    # None: the model has no list price (unknown).
    estimated_cost: Decimal | None
    cost: Decimal | None
    step_attempts: int
    poll_count: int
    source_video_id: str | None
    webhook_url: str | None
    tried_providers: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None
    completed_at: dt.datetime | None
    deleted_at: dt.datetime | None
    next_poll_at: dt.datetime | None = None
    submit_at: dt.datetime | None = None
    # What the adapter keeps about its upstream task (providers/base.py UpstreamTask).
    upstream_state: dict[str, Any] | None = None
    # Upstream tasks that failed transiently and went to another deployment.
    task_retries: int = 0
    # When the video's media expires under its project's retention (None: kept).
    expires_at: dt.datetime | None = None
    # When the waiting job's upstream task is expected to end (engine/poll_schedule.py).
    expected_end_at: dt.datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One stored output of a job: the video and its previews, by content hash. The
    previews are None until made (after the job completed: engine/previews.py)."""

    job_id: str
    index: int
    video_sha256: str
    thumbnail_sha256: str | None
    spritesheet_sha256: str | None
    width: int
    height: int
    fps: float
    duration: float
    size_bytes: int


# --- submissions (engine/submitter.py) and polls (engine/poller.py) ----------------


@dataclass(frozen=True, slots=True)
class Submitted:
    """A claimed job its provider accepted: written back with others in one statement.
    ``answered`` (``time.monotonic()``, when this was made) is when the provider
    answered: the job's ``submitted_at``, however long its write-back waits."""

    job_id: str
    provider: str
    upstream_id: str
    first_poll_s: float
    upstream_state: Mapping[str, Any] = field(default_factory=dict)
    answered: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class PollClaim:
    """A waiting job a poller has claimed: ``lease_until`` is the job's ``next_poll_at``
    while the claim holds, and the token its result is written back against."""

    job_id: str
    provider: str
    upstream_id: str
    progress: int
    poll_count: int
    step_attempts: int
    submitted_at: dt.datetime | None
    lease_until: dt.datetime
    # What the adapter's status read needs besides the id (providers/base.py UpstreamTask).
    spec: JobSpec
    upstream_model: str | None
    upstream_state: dict[str, Any] | None
    # When the upstream task is expected to end (engine/poll_schedule.py); None: unknown.
    expected_end_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class PollReschedule:
    """A polled job still running upstream: when to read it next, and what it showed."""

    claim: PollClaim
    delay_s: float
    progress: int
    poll_count: int
    step_attempts: int
    # The expected end to keep (engine/poll_schedule.py); None: the row keeps its own.
    expected_end_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class PollDone:
    """A polled job its provider reports succeeded: moved to ``finalizing`` with the
    others of its batch in one statement."""

    claim: PollClaim
    cost: Decimal | None


# What a status read leaves to write: read again later, or move on to finalize.
PollOutcome = PollReschedule | PollDone
