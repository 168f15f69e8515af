"""What ``GET /v1/videos/{id}/details`` shows of one video besides the Video object:
the request as stored, its status history and timings from the row's times, and its
webhook deliveries. Records and pure functions; db/video_details.py reads them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vidgate.core.jobs import JobRecord, JobState, OutputRecord

# The Video's statuses (api/views.py) of the states a job ends in.
_END_STATUS = {
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "failed",
}


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One webhook event for the video: to a project's endpoint (its delivery), or to
    the job's own ``webhook_url`` (summed up from its queued attempts)."""

    id: str
    event_type: str
    url: str
    # pending, delivered or failed (endpoints); pending or ended (a webhook_url,
    # whose outcome only the worker's log records).
    status: str
    attempts: int
    last_status_code: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class VideoDetails:
    """A job with its outputs and deliveries, read in one statement."""

    job: JobRecord
    outputs: list[OutputRecord]
    # The media was deleted (the video expired, or was deleted) by the media sweep.
    media_released: bool
    deliveries: list[DeliveryRecord]


@dataclass(frozen=True, slots=True)
class Step:
    status: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class Timings:
    queued_s: float | None
    generating_s: float | None
    total_s: float | None


def history(job: JobRecord) -> list[Step]:
    """The statuses the job went through, as far as its row's times tell: created,
    first handed to a provider, ended."""
    steps = [Step("queued", job.created_at)]
    if job.submitted_at is not None:
        steps.append(Step("in_progress", job.submitted_at))
    end = _END_STATUS.get(job.state)
    if end is not None and job.completed_at is not None:
        steps.append(Step(end, job.completed_at))
    return steps


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def timings(job: JobRecord) -> Timings:
    """Seconds queued (created to submitted), generating (submitted to ended) and in
    all (created to ended); null where the job has not got there."""
    return Timings(
        queued_s=_seconds(job.created_at, job.submitted_at),
        generating_s=_seconds(job.submitted_at, job.completed_at),
        total_s=_seconds(job.created_at, job.completed_at),
    )
