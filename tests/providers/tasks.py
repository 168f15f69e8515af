"""Upstream tasks as the engine hands them back to an adapter, for the adapter tests."""

from __future__ import annotations

from typing import Any

from vidgate.core.spec import JobSpec
from vidgate.providers.base import SubmitResult, TaskState, UpstreamTask

# What status, fetch and cancel see of a job when the test does not care.
SPEC = JobSpec(
    model="m",
    kind="generate",
    prompt="p",
    negative_prompt=None,
    seconds=5,
    width=1280,
    height=720,
    resolution="720p",
    aspect_ratio="16:9",
    fps=24,
    n=1,
    seed=None,
    metadata={},
    image=None,
    source=None,
)


def spec_of(**fields: Any) -> JobSpec:
    """``SPEC`` with ``fields`` changed, validated as a spec built field by field is."""
    return JobSpec.model_validate({**SPEC.model_dump(), **fields})


def task_of(
    result: SubmitResult, spec: JobSpec = SPEC, upstream_model: str | None = None
) -> UpstreamTask:
    """The task a submission made, as the engine stores and hands it back."""
    return UpstreamTask(result.upstream_id, spec, upstream_model, result.state)


def task_by_id(upstream_id: str, state: TaskState | None = None, **spec: Any) -> UpstreamTask:
    """A task by its id (one the test made up, or one the fake holds)."""
    return UpstreamTask(upstream_id, SPEC.model_copy(update=spec), None, state or {})
