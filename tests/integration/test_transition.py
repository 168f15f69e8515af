"""db/jobs.transition, the one statement every state change of the engine goes through:
it moves a job only from the states it names, returns the job as written, and refuses a
move the state machine does not have."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.jobs import ACTIVE, IllegalTransition, JobState
from vidgate.core.spec import VideoRequest
from vidgate.db.jobs import get_job, transition
from vidgate.engine.service import JobService
from vidgate.runtime import Runtime


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


async def _queued_job(runtime: Runtime) -> str:
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "t")
    job = await JobService(runtime.engine).create(
        principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    )
    return job.id


async def test_moves_only_from_the_named_states(runtime: Runtime) -> None:
    job_id = await _queued_job(runtime)
    async with runtime.db.begin() as conn:
        assert await transition(conn, job_id, from_states=[JobState.WAITING], progress=7) is None
        moved = await transition(
            conn, job_id, from_states=[JobState.QUEUED], to=JobState.SUBMITTING, progress=3
        )
    assert moved is not None
    assert (moved.id, moved.state, moved.progress) == (job_id, JobState.SUBMITTING, 3)
    assert moved.spec.prompt == "p" and moved.spec.width == 320
    async with runtime.db.connect() as conn:
        assert await get_job(conn, job_id) == moved

    # Without a target state: values written while the job is in one of the states.
    async with runtime.db.begin() as conn:
        again = await transition(conn, job_id, from_states=ACTIVE, step_attempts=2)
    assert again is not None and (again.state, again.step_attempts) == (JobState.SUBMITTING, 2)


async def test_a_terminal_job_never_moves(runtime: Runtime) -> None:
    job_id = await _queued_job(runtime)
    async with runtime.db.begin() as conn:
        assert await transition(conn, job_id, from_states=ACTIVE, to=JobState.CANCELLED)
        assert await transition(conn, job_id, from_states=ACTIVE, to=JobState.FAILED) is None
        with pytest.raises(IllegalTransition):
            await transition(conn, job_id, from_states=[JobState.CANCELLED], to=JobState.QUEUED)
    async with runtime.db.connect() as conn:
        job = await get_job(conn, job_id)
    assert job is not None and job.state == JobState.CANCELLED
