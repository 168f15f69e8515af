"""``openai-poll-after-ms`` on a running job's status read (api/fast_lane.py): a second,
or sooner where vidgate expects the video sooner."""

from __future__ import annotations

import dataclasses
import datetime as dt

from vidgate.api.fast_lane import FINALIZE_ALLOWANCE_S, poll_after_ms
from vidgate.core.jobs import JobRecord, JobState
from vidgate.core.spec import JobSpec

NOW = 1_800_000_000.0


def _job(state: JobState, expected_end_in: float | None = None) -> JobRecord:
    at = dt.datetime.fromtimestamp(NOW, dt.UTC)
    fields: dict[str, object] = {f.name: None for f in dataclasses.fields(JobRecord)}
    fields.update(
        state=state,
        spec=JobSpec.model_construct(),
        expected_end_at=None
        if expected_end_in is None
        else at + dt.timedelta(seconds=expected_end_in),
    )
    return JobRecord(**fields)  # type: ignore[arg-type]


def test_a_second_without_a_closer_expectation() -> None:
    for job in (
        _job(JobState.QUEUED),
        _job(JobState.WAITING),
        _job(JobState.WAITING, expected_end_in=5.0),  # not yet near
        _job(JobState.WAITING, expected_end_in=-1.5),  # late: the poller has slowed down
    ):
        assert poll_after_ms(job, NOW) == b"1000"


def test_sooner_just_before_the_expected_end_and_while_storing() -> None:
    assert (
        poll_after_ms(_job(JobState.WAITING, 0.5), NOW)
        == str(round(1000 * (0.5 + FINALIZE_ALLOWANCE_S))).encode()
    )
    assert poll_after_ms(_job(JobState.WAITING, -0.28), NOW) == b"100"  # at least 100 ms
    assert poll_after_ms(_job(JobState.FINALIZING), NOW) == b"250"


def test_soon_again_just_past_the_expected_end() -> None:
    # A client that came back when the hint said and found the task still running:
    # the poller reads it quickly for a second past its expected end, so does it.
    for late in (0.0, 0.2, 0.9):
        job = _job(JobState.WAITING, -FINALIZE_ALLOWANCE_S - late)
        assert poll_after_ms(job, NOW) == b"250"
