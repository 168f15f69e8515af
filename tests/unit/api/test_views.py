"""``video_json`` builds the ``VideoObject`` dump straight from the job's spec; it must
stay equal, key for key and type for type, to what the pydantic model produced."""

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from vidgate.api.schemas import ErrorInfo, VideoObject
from vidgate.api.views import video_json
from vidgate.core.catalog import load_catalog
from vidgate.core.jobs import JobRecord, JobState, stored_spec_json
from vidgate.core.spec import JobSpec, SourceRef, VideoRequest, normalize

CATALOG = load_catalog()
STATES = ("queued", "submitting", "waiting", "finalizing", "completed", "failed", "cancelled")
SOURCE = SourceRef(video_id="video_src", sha256="b" * 64, seconds=4, width=1280, height=720, fps=24)


def _reference(job: JobRecord) -> dict[str, Any]:
    """The model-based view ``video_json`` replaced."""
    spec = job.spec
    failed = job.state in ("failed", "cancelled")
    status = {"submitting": "in_progress", "waiting": "in_progress", "finalizing": "in_progress"}
    return VideoObject(
        id=job.id,
        model=job.model,
        status={**status, "cancelled": "failed"}.get(job.state, job.state),  # type: ignore[arg-type]
        progress=job.progress,
        created_at=int(job.created_at.timestamp()),
        completed_at=int(job.completed_at.timestamp()) if job.completed_at else None,
        expires_at=int(job.expires_at.timestamp()) if job.expires_at else None,
        prompt=spec.prompt,
        seconds=str(
            spec.seconds + (spec.source.seconds if spec.kind == "extend" and spec.source else 0)
        ),
        size=spec.size,
        remixed_from_video_id=job.source_video_id if spec.kind == "remix" else None,
        error=ErrorInfo(
            code=job.error_code or "failed", message=job.error_message or "the job failed"
        )
        if failed
        else None,
        kind=spec.kind,
        resolution=spec.resolution,
        aspect_ratio=spec.aspect_ratio,
        fps=spec.fps,
        n=spec.n,
        seed=spec.seed,
        metadata=spec.metadata,
        estimated_cost=float(job.estimated_cost) if job.estimated_cost is not None else None,
        cost=float(job.cost) if job.cost is not None else None,
        mode=job.mode,  # type: ignore[arg-type]
    ).model_dump(mode="json")


def _job(spec: JobSpec, state: str, **changes: Any) -> JobRecord:
    created = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
    values: dict[str, Any] = {
        "id": "video_1",
        "tenant_id": "tenant_1",
        "api_key_id": "key_1",
        "mode": "test",
        "model": spec.model,
        "kind": spec.kind,
        # As stored and read back: JSON, through a round trip.
        "spec": stored_spec_json(json.dumps(spec.model_dump(mode="json"))),
        "state": JobState(state),
        "progress": 40,
        "error_code": None,
        "error_message": None,
        "provider": "sandbox",
        "upstream_model": None,
        "upstream_id": None,
        "estimated_cost": Decimal("0.400000"),
        "cost": None,
        "step_attempts": 0,
        "poll_count": 0,
        "source_video_id": spec.source.video_id if spec.source else None,
        "webhook_url": None,
        "tried_providers": [],
        "created_at": created,
        "updated_at": created,
        "submitted_at": None,
        "completed_at": created + dt.timedelta(seconds=30) if state in STATES[4:] else None,
        "deleted_at": None,
    }
    values.update(changes)
    return JobRecord(**values)


def _spec(model: str, **fields: Any) -> JobSpec:
    return normalize(VideoRequest(model=model, **fields), CATALOG.get(model))


SPECS = {
    "generate": _spec("sora-2", prompt="a cat", metadata={"a": "b"}, seed=7),
    "sandbox": _spec("sandbox", prompt="p", seconds=1, size="426x240", fps=8),
    "remix": _spec("sora-2", prompt="a dog", kind="remix", source=SOURCE),
    "extend": _spec("sora-2", prompt="more", kind="extend", seconds=4, source=SOURCE),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", list(SPECS))
def test_video_json_equals_the_model_dump(name: str, state: str) -> None:
    job = _job(SPECS[name], state)
    view = video_json(job)
    assert view == _reference(job)
    assert list(view) == list(_reference(job))
    assert json.dumps(view) == json.dumps(_reference(job))


def test_errors_and_costs() -> None:
    job = _job(
        SPECS["generate"],
        "failed",
        error_code="upstream_error",
        error_message="boom",
        cost=Decimal("0.120000"),
    )
    view = video_json(job)
    assert view == _reference(job)
    assert view["error"] == {"code": "upstream_error", "message": "boom"}
    assert view["cost"] == 0.12
    assert video_json(_job(SPECS["extend"], "queued"))["seconds"] == "8"
    assert video_json(_job(SPECS["remix"], "queued"))["remixed_from_video_id"] == "video_src"


def test_a_model_without_a_price_has_a_null_estimate() -> None:
    job = _job(SPECS["generate"], "completed", estimated_cost=None)
    view = video_json(job)
    assert view == _reference(job)
    assert view["estimated_cost"] is None and view["cost"] is None


def test_expires_at_is_when_the_projects_retention_deletes_the_media() -> None:
    job = _job(SPECS["sandbox"], "completed")
    assert video_json(job)["expires_at"] is None
    ends = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    job = _job(SPECS["sandbox"], "completed", expires_at=ends)
    view = video_json(job)
    assert view == _reference(job)
    assert view["expires_at"] == int(ends.timestamp())
