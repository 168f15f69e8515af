"""What the S3 download path answers to a Range header it cannot serve as one range,
and the content of a video past its project's retention."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from vidgate.api.content import _past_the_end, check_not_expired
from vidgate.core.errors import NotFound
from vidgate.core.jobs import JobRecord


@pytest.mark.parametrize(
    ("header", "past"),
    [
        ("bytes=100-", True),  # starts at the end of a 100-byte file: 416
        ("bytes=150-200", True),
        ("bytes=-0", True),
        ("bytes=99-", False),  # the last byte: a 206 (parse_single_range serves it)
        ("bytes=0-10,20-30", False),  # several ranges: the whole file, 200
        ("bytes=200-100", False),  # malformed: ignored, 200
        ("items=200-", False),
        ("bytes=abc-", False),
        ("bytes=-", False),
    ],
)
def test_which_ranges_are_unsatisfiable(header: str, past: bool) -> None:
    assert _past_the_end(header, 100) is past


def test_an_expired_video_answers_video_expired() -> None:
    fields = {f.name: None for f in dataclasses.fields(JobRecord)}
    job = JobRecord(**{**fields, "id": "video_x"})  # type: ignore[arg-type]
    check_not_expired(job)  # kept forever
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    check_not_expired(dataclasses.replace(job, expires_at=later))
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with pytest.raises(NotFound) as raised:
        check_not_expired(dataclasses.replace(job, expires_at=earlier))
    assert raised.value.code == "video_expired" and raised.value.status_code == 404
