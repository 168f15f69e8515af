"""The video list's filters (``GET /v1/videos``), checked and turned into what the
database matches: the jobs' stored model names, their states, mode and creation time.

Statuses are the OpenAI ones the Video object shows (``in_progress`` is three internal
states, ``failed`` includes ``cancelled``). A model given by id or alias matches every
job of its card, whichever of the card's names the job was created with (jobs keep the
name the client sent); a name the catalogue does not know matches jobs stored under
exactly that name (a model since removed from the catalogue)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from vidgate.core.errors import InvalidParameter
from vidgate.core.jobs import JobState
from vidgate.core.keys import KeyMode

STATUS_STATES: dict[str, frozenset[JobState]] = {
    "queued": frozenset({JobState.QUEUED}),
    "in_progress": frozenset({JobState.SUBMITTING, JobState.WAITING, JobState.FINALIZING}),
    "completed": frozenset({JobState.COMPLETED}),
    "failed": frozenset({JobState.FAILED, JobState.CANCELLED}),
}
MODES: tuple[KeyMode, ...] = ("test", "live")


@dataclass(frozen=True, slots=True)
class VideoFilter:
    """What a listed job must match; None: anything."""

    models: frozenset[str] | None = None
    states: frozenset[JobState] | None = None
    mode: KeyMode | None = None
    # Inclusive.
    created_after: dt.datetime | None = None
    # Exclusive.
    created_before: dt.datetime | None = None


def states_of(status: str) -> frozenset[JobState]:
    found = STATUS_STATES.get(status)
    if found is None:
        raise InvalidParameter(
            f"status {status[:64]!r} is not supported; allowed: {', '.join(STATUS_STATES)}",
            param="status",
        )
    return found


def mode_of(mode: str) -> KeyMode:
    for known in MODES:
        if mode == known:
            return known
    raise InvalidParameter(
        f"mode {mode[:64]!r} is not supported; allowed: {', '.join(MODES)}", param="mode"
    )


def _time(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def video_filter(
    *,
    model_names: Iterable[str] | None = None,
    status: str | None = None,
    mode: str | None = None,
    created_after: int | None = None,
    created_before: int | None = None,
) -> VideoFilter:
    """The filter for a list's query parameters (``model_names``: every name the
    asked model's jobs may be stored under); raises ``InvalidParameter`` naming the
    parameter that is wrong."""
    return VideoFilter(
        models=frozenset(model_names) if model_names is not None else None,
        states=states_of(status) if status is not None else None,
        mode=mode_of(mode) if mode is not None else None,
        created_after=_time(created_after),
        created_before=_time(created_before),
    )
