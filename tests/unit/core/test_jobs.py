"""The job state machine: the states are the database's, and the moves are the ones
the engine makes."""

from __future__ import annotations

import re

import pytest

from vidgate.core.jobs import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    JobState,
    check_transition,
)
from vidgate.db.schema import jobs


def test_states_are_the_check_constraint_of_jobs_state() -> None:
    [check] = [c for c in jobs.constraints if getattr(c, "name", None) == "jobs_state"]
    allowed = re.findall(r"'([a-z]+)'", str(check.sqltext))  # type: ignore[attr-defined]
    assert allowed == [state.value for state in JobState]


def test_active_and_terminal_split_the_states() -> None:
    assert set(JobState) == ACTIVE | TERMINAL
    assert not ACTIVE & TERMINAL
    assert all(TRANSITIONS[state] for state in ACTIVE)
    assert not any(TRANSITIONS[state] for state in TERMINAL)


@pytest.mark.parametrize(
    ("sources", "target"),
    [
        ({JobState.QUEUED}, JobState.SUBMITTING),
        ({JobState.SUBMITTING}, JobState.WAITING),
        ({JobState.SUBMITTING}, JobState.QUEUED),  # fallback to another deployment
        ({JobState.WAITING}, JobState.QUEUED),  # a transient task failure, tried elsewhere
        ({JobState.WAITING}, JobState.FINALIZING),
        ({JobState.FINALIZING}, JobState.COMPLETED),
        (ACTIVE, JobState.FAILED),
        (ACTIVE, JobState.CANCELLED),
    ],
)
def test_moves_the_engine_makes_are_legal(sources: set[JobState], target: JobState) -> None:
    check_transition(frozenset(sources), target)


@pytest.mark.parametrize(
    ("sources", "target"),
    [
        ({JobState.COMPLETED}, JobState.FAILED),
        ({JobState.CANCELLED}, JobState.QUEUED),
        ({JobState.QUEUED}, JobState.COMPLETED),
        ({JobState.WAITING, JobState.FINALIZING}, JobState.FINALIZING),
        ({JobState.WAITING}, JobState.SUBMITTING),
    ],
)
def test_other_moves_are_refused(sources: set[JobState], target: JobState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(frozenset(sources), target)
