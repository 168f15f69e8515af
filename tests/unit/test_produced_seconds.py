"""The seconds a completed job is charged for (engine/settlement.py): what its stored
output holds, rounded to whole seconds, an extend's source left out, never more than
asked for."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from vidgate.core.catalog import load_catalog
from vidgate.core.jobs import JobRecord, JobState, OutputRecord
from vidgate.core.spec import SourceRef, VideoRequest, normalize
from vidgate.engine.settlement import produced_seconds

_CATALOG = load_catalog()
_AT = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def _job(seconds: int, *, extends: int | None = None) -> JobRecord:
    spec = normalize(
        VideoRequest(model="sandbox", prompt="p", seconds=seconds), _CATALOG.get("sandbox")
    )
    if extends is not None:
        source = SourceRef(
            video_id="video_0", sha256="0" * 64, seconds=extends, width=1280, height=720, fps=24
        )
        spec = spec.model_copy(update={"kind": "extend", "source": source})
    return JobRecord(
        id="video_1",
        tenant_id="t",
        api_key_id="k",
        mode="live",
        model="sandbox",
        kind=spec.kind,
        spec=spec,
        state=JobState.FINALIZING,
        progress=95,
        error_code=None,
        error_message=None,
        provider="sandbox",
        upstream_model=None,
        upstream_id="u",
        estimated_cost=Decimal(0),
        cost=None,
        step_attempts=0,
        poll_count=0,
        source_video_id=None,
        webhook_url=None,
        tried_providers=[],
        created_at=_AT,
        updated_at=_AT,
        submitted_at=_AT,
        completed_at=None,
        deleted_at=None,
    )


_OUTPUT = OutputRecord("video_1", 0, "a", "b", "c", 1280, 720, 24.0, 0.0, 1)


@pytest.mark.parametrize(
    ("asked", "duration", "extends", "charged"),
    [
        (8, 8.04, None, 8),  # a container's few extra milliseconds are no second
        (8, 4.96, None, 5),
        (8, 3.2, None, 3),  # shorter than asked: the seconds produced
        (4, 9.0, None, 4),  # longer: never more than asked (and reserved)
        (4, 9.0, 5, 4),  # an extend's file holds its source too
        (6, 7.0, 5, 2),
        (4, 0.3, None, 0),
    ],
)
def test_produced_seconds(asked: int, duration: float, extends: int | None, charged: int) -> None:
    output = dataclasses.replace(_OUTPUT, duration=duration)
    assert produced_seconds(_job(asked, extends=extends), output) == charged
