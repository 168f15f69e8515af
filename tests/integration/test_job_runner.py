"""The job state machine against a real PostgreSQL, with a scripted provider.

Steps are called directly (no worker), and what each step scheduled next is read from
the job row (a submission's or a poll's due time) or procrastinate's own table (the
other steps), so every transition and its follow-up are checked together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
import pytest
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.catalog import Catalog, DeploymentRef
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.jobs import JobRecord, PollClaim, PollDone, PollReschedule
from vidgate.core.spec import JobSpec, VideoRequest
from vidgate.db.claims import (
    claim_due_polls,
    claim_due_submissions,
    claim_poll,
    next_submission_due_in,
    reschedule_polls,
)
from vidgate.db.deployments import deployment_health_all, open_breakers, record_deployment_success
from vidgate.db.jobs import get_job, get_outputs, update_job
from vidgate.engine import steps
from vidgate.engine.backoff import MAX_POLL_S, MIN_POLL_S, POLL_AGE_FACTOR, adaptive_poll_s
from vidgate.engine.context import EngineContext
from vidgate.engine.poll_schedule import FAST_POLL_S
from vidgate.engine.poller import Poller
from vidgate.engine.runner import JobRunner
from vidgate.engine.service import JobService, Principal
from vidgate.engine.submitter import Submitter
from vidgate.engine.sweeper import sweep_once
from vidgate.media.render import ClipRequest, render_clip
from vidgate.providers.base import ProviderError, SubmitResult, UpstreamStatus, UpstreamTask
from vidgate.runtime import Runtime


class ScriptedProvider:
    """Answers from queues the test fills; records every call."""

    name = "scripted"

    def __init__(self) -> None:
        self.submits: list[Any] = []
        self.statuses: list[UpstreamStatus | ProviderError] = []
        self.fetch_error: ProviderError | None = None
        # What fetch writes instead of a clip (a provider's broken result).
        self.fetch_bytes: bytes | None = None
        self.submit_error: Exception | None = None
        self.cancelled: list[str] = []
        # Every task handed to status, fetch and cancel, in order.
        self.tasks: list[UpstreamTask] = []
        # What validate refuses from now on (a configuration change after create).
        self.refusal: InvalidParameter | None = None

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        if self.refusal is not None:
            raise self.refusal

    async def aclose(self) -> None:
        pass

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        self.submits.append(idempotency_key)
        if self.submit_error is not None:
            raise self.submit_error
        return SubmitResult(
            f"up-{idempotency_key}", poll_after_s=0.5, state={"made_by": "scripted", "n": 1}
        )

    async def status(self, task: UpstreamTask) -> UpstreamStatus:
        self.tasks.append(task)
        item = self.statuses.pop(0)
        if isinstance(item, ProviderError):
            raise item
        return item

    async def fetch(self, task: UpstreamTask, dest_dir: Path, progress: Any = None) -> list[Path]:
        self.tasks.append(task)
        if self.fetch_error is not None:
            raise self.fetch_error
        out = dest_dir / "0.mp4"
        if self.fetch_bytes is not None:
            out.write_bytes(self.fetch_bytes)
            return [out]
        render_clip(ClipRequest(width=64, height=48, fps=8, seconds=1, prompt="x", label="t"), out)
        return [out]

    async def cancel(self, task: UpstreamTask) -> None:
        self.tasks.append(task)
        self.cancelled.append(task.id)


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path, max_step_attempts=3) as rt:
        yield rt


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
async def setup(
    runtime: Runtime, provider: ScriptedProvider
) -> tuple[JobRunner, JobService, Principal]:
    ctx = _with_deployments(runtime, {"scripted": provider})
    service = JobService(ctx)
    async with runtime.db.begin() as conn:
        # A live key, so that settled costs are real (test keys are never billed).
        principal = await add_caller(conn, "t", mode="live")
    return JobRunner(ctx), service, principal


def _with_deployments(
    runtime: Runtime,
    providers: dict[str, Any],
    refs: list[DeploymentRef] | None = None,
    configs: dict[str, DeploymentConfig] | None = None,
) -> EngineContext:
    """The runtime's engine with a catalogue whose "sandbox" model runs on ``providers``."""
    card = runtime.catalog.get("sandbox").model_copy(
        update={"deployments": refs or [DeploymentRef(provider=name) for name in providers]}
    )
    return dataclasses.replace(
        runtime.engine,
        providers={**runtime.engine.providers, **providers},
        catalog=Catalog([card]),
        deployments=configs or {},
    )


async def _new_job(runtime: Runtime, service: JobService, principal: Principal) -> str:
    job = await service.create(
        principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    )
    return job.id


def _pending(url: str, job_id: str) -> list[tuple[str, float]]:
    """(task name, seconds until scheduled) of the job's queued steps."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT task_name, EXTRACT(EPOCH FROM (COALESCE(scheduled_at, now()) - now()))"
            " FROM procrastinate_jobs WHERE args->>'job_id' = %s AND status = 'todo' ORDER BY id",
            (job_id,),
        ).fetchall()
    return [(r[0], float(r[1])) for r in rows]


def _due_in(url: str, job_id: str, column: str) -> float | None:
    """Seconds until the due time in the job row's ``column``, or None."""
    query = psycopg.sql.SQL("SELECT EXTRACT(EPOCH FROM ({} - now())) FROM jobs WHERE id = %s")
    with psycopg.connect(url) as conn:
        row = conn.execute(query.format(psycopg.sql.Identifier(column)), (job_id,)).fetchone()
    assert row is not None
    return None if row[0] is None else float(row[0])


def _next_poll(url: str, job_id: str) -> float | None:
    """Seconds until the job's next status read is due (engine/poller.py), or None."""
    return _due_in(url, job_id, "next_poll_at")


def _next_submit(url: str, job_id: str) -> float | None:
    """Seconds until the job's submission is due (engine/submitter.py), or None."""
    return _due_in(url, job_id, "submit_at")


def _clear(url: str, job_id: str) -> None:
    """Play the worker: the steps seen so far are done."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM procrastinate_jobs WHERE args->>'job_id' = %s", (job_id,))


async def _job(runtime: Runtime, job_id: str) -> JobRecord:
    async with runtime.db.connect() as conn:
        job = await get_job(conn, job_id, include_deleted=True)
    assert job is not None
    return job


async def test_happy_path_enqueues_each_next_step(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    # Submitting is the submitter's: no task, a due time on the row (now).
    assert _pending(runtime.database_url, job_id) == []
    submit_in = _next_submit(runtime.database_url, job_id)
    assert submit_in is not None and submit_in <= 0

    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "waiting" and job.upstream_id == f"up-{job_id}"
    assert _next_submit(runtime.database_url, job_id) is None
    # Waiting is the poller's: no task, a due time on the row.
    assert _pending(runtime.database_url, job_id) == []
    delay = _next_poll(runtime.database_url, job_id)
    assert delay is not None and 0.2 < delay <= 0.5

    provider.statuses = [UpstreamStatus("running", progress=40, poll_after_s=3.0)]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "waiting" and job.progress == 40 and job.poll_count == 1
    delay = _next_poll(runtime.database_url, job_id)
    assert delay is not None and 2.5 < delay <= 3.0
    assert _pending(runtime.database_url, job_id) == []

    provider.statuses = [UpstreamStatus("succeeded", cost=Decimal("0.042"))]
    await runner.poll(job_id)
    assert (await _job(runtime, job_id)).state == "finalizing"
    # Its finalize is due at once, on its row (engine/finalizer.py), not a queued task.
    delay = _next_poll(runtime.database_url, job_id)
    assert delay is not None and delay <= 0
    assert _pending(runtime.database_url, job_id) == []

    await runner.finalize(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "completed" and job.progress == 100
    assert job.cost == Decimal("0.042")  # the provider's reported cost wins over the estimate
    # Re-running a finished step changes nothing and stores nothing twice.
    await runner.finalize(job_id)
    await runner.submit(job_id)
    async with runtime.db.connect() as conn:
        assert len(await get_outputs(conn, job_id)) == 1
    assert provider.submits == [job_id]
    # What follows completion: the previews (engine/previews.py), once.
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.PREVIEWS]


async def test_the_adapter_gets_its_task_state_and_the_spec_back(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    """What submit returned besides the id is stored on the job and handed back, with
    the job's spec, to status, fetch and cancel."""
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert job.upstream_id == f"up-{job_id}"
    assert job.upstream_state == {"made_by": "scripted", "n": 1}
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job_id)
    await runner.finalize(job_id)
    await runner.cancel_upstream(job_id)
    expected = UpstreamTask(f"up-{job_id}", job.spec, job.upstream_model, job.upstream_state or {})
    assert provider.tasks == [expected] * 3


async def test_retryable_submit_error_honours_retry_after(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    provider.submit_error = ProviderError(
        "rate_limited", "slow down", retryable=True, retry_after_s=7
    )
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "submitting" and job.step_attempts == 1
    delay = _next_submit(runtime.database_url, job_id)
    assert delay is not None and 6 < delay <= 7
    assert _pending(runtime.database_url, job_id) == []
    # The next submission reuses the same idempotency key.
    provider.submit_error = None
    await runner.submit(job_id)
    assert provider.submits == [job_id, job_id]
    assert (await _job(runtime, job_id)).state == "waiting"


async def test_retryable_errors_give_up_after_the_bound(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    provider.submit_error = ProviderError("upstream_unavailable", "503", retryable=True)
    for _ in range(3):
        await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "failed" and job.error_code == "upstream_unavailable" and job.cost == 0


async def test_non_retryable_failures_fail_the_job_with_the_reason(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    refused = await _new_job(runtime, service, principal)
    provider.submit_error = ProviderError("content_policy_violation", "refused", retryable=False)
    await runner.submit(refused)
    job = await _job(runtime, refused)
    assert (job.state, job.error_code, job.error_message) == (
        "failed",
        "content_policy_violation",
        "refused",
    )

    provider.submit_error = None
    upstream_failed = await _new_job(runtime, service, principal)
    await runner.submit(upstream_failed)
    provider.statuses = [UpstreamStatus("failed", error_code="bad_prompt", error_message="nope")]
    await runner.poll(upstream_failed)
    job = await _job(runtime, upstream_failed)
    assert (job.state, job.error_code, job.cost) == ("failed", "bad_prompt", Decimal(0))

    lost = await _new_job(runtime, service, principal)
    await runner.submit(lost)
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(lost)
    provider.fetch_error = ProviderError("download_failed", "gone", retryable=False)
    await runner.finalize(lost)
    assert (await _job(runtime, lost)).error_code == "download_failed"


async def test_a_result_that_is_not_a_video_is_the_upstreams_failure(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job_id)
    provider.fetch_bytes = b"<html>502 Bad Gateway</html>"
    await runner.guarded(steps.FINALIZE, job_id, runner.finalize)
    job = await _job(runtime, job_id)
    # At once, not after every retry as vidgate's own internal_error.
    assert (job.state, job.error_code) == ("failed", "upstream_failed")
    assert (
        job.error_message
        == "scripted: the result is not a playable video (0.mp4 is not a readable video)"
    )


async def test_a_spec_the_deployment_no_longer_takes_fails_before_submit(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    """The capability check runs again right before submit: a job accepted at create
    that the deployment cannot take now fails with the check's reason, and nothing is
    sent upstream."""
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    provider.refusal = InvalidParameter(
        "scripted: 1 s is not supported; allowed: 5", param="seconds"
    )
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.error_code) == ("failed", "invalid_parameter")
    assert job.error_message == "scripted: 1 s is not supported; allowed: 5"
    assert provider.submits == []


async def test_unexpected_errors_are_retried_then_fail_as_internal(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    provider.submit_error = RuntimeError("bug")
    for attempt in (1, 2):
        await runner.guarded(steps.SUBMIT, job_id, runner.submit)
        assert (await _job(runtime, job_id)).step_attempts == attempt
        # Again after a backoff of up to 2 ** (attempt - 1) s, from the job row.
        delay = _next_submit(runtime.database_url, job_id)
        assert delay is not None and -0.5 < delay <= 2 ** (attempt - 1)
        assert _pending(runtime.database_url, job_id) == []
    await runner.guarded(steps.SUBMIT, job_id, runner.submit)
    job = await _job(runtime, job_id)
    assert job.state == "failed" and job.error_code == "internal_error"
    assert "bug" not in (job.error_message or "")  # internals stay in the logs


async def test_delete_while_waiting_cancels_upstream(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    await service.delete(principal, job_id)
    job = await _job(runtime, job_id)
    assert job.state == "cancelled" and job.deleted_at is not None and job.cost == 0
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.CANCEL_UPSTREAM]
    await runner.cancel_upstream(job_id)
    assert provider.cancelled == [f"up-{job_id}"]
    # The poller no longer claims it, and a read already in flight changes nothing.
    await runner.poll(job_id)
    provider.statuses = [UpstreamStatus("succeeded")]
    claim = PollClaim(
        job_id, "scripted", f"up-{job_id}", 0, 0, 0, None, _now(), job.spec, None, None
    )
    outcome = await runner.check_upstream(claim)
    assert isinstance(outcome, PollDone)
    await runner.record_polls([outcome])
    assert (await _job(runtime, job_id)).state == "cancelled"
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.CANCEL_UPSTREAM]


async def test_delete_during_the_submission_cancels_the_task_it_created(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    submit = provider.submit

    async def deleted_meanwhile(spec: JobSpec, **kwargs: Any) -> SubmitResult:
        # The user deletes the job while the create request is on its way upstream.
        await service.delete(principal, job_id)
        return await submit(spec, **kwargs)

    provider.submit = deleted_meanwhile  # type: ignore[method-assign]
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    # The upstream task that was created anyway is stopped, and the job is not revived.
    assert provider.cancelled == [f"up-{job_id}"]
    assert job.state == "cancelled" and job.upstream_id is None and job.next_poll_at is None


async def test_sweeper_requeues_an_active_job_with_nothing_to_move_it(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    url = runtime.database_url
    job_id = await _new_job(runtime, service, principal)
    # A queued job is the submitter's (it submits it when due)...
    assert await sweep_once(runner.ctx) == (0, 0)
    # ...unless its row lost its due time.
    await _update_job(runtime, job_id, submit_at=None)
    assert await sweep_once(runner.ctx) == (0, 1)
    delay = _next_submit(url, job_id)
    assert delay is not None and delay <= 0
    # A waiting job is the poller's...
    await runner.submit(job_id)
    assert await sweep_once(runner.ctx) == (0, 0)
    assert _pending(url, job_id) == []
    # ...unless its row lost its due time.
    await _update_job(runtime, job_id, next_poll_at=None)
    assert await sweep_once(runner.ctx) == (0, 1)
    delay = _next_poll(url, job_id)
    assert delay is not None and delay <= 0
    # A finalizing job is the finalizer's, unless its row lost its due time.
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job_id)
    assert await sweep_once(runner.ctx) == (0, 0)
    await _update_job(runtime, job_id, next_poll_at=None)
    assert await sweep_once(runner.ctx) == (0, 1)
    delay = _next_poll(url, job_id)
    assert delay is not None and delay <= 0
    assert _pending(url, job_id) == []
    assert (await sweep_once(runner.ctx))[1] == 0


def test_prune_scratch_keeps_fresh_entries(tmp_path: Path) -> None:
    import os
    import time

    from vidgate.engine.sweeper import prune_scratch

    old_file = tmp_path / "old.part"
    old_dir = tmp_path / "video_x-abc"
    fresh = tmp_path / "fresh.part"
    old_file.write_bytes(b"x")
    old_dir.mkdir()
    (old_dir / "0.mp4").write_bytes(b"x")
    fresh.write_bytes(b"x")
    past = time.time() - 7200
    os.utime(old_file, (past, past))
    os.utime(old_dir, (past, past))
    assert prune_scratch([tmp_path, tmp_path / "missing"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["fresh.part"]


async def _principal(runtime: Runtime) -> Principal:
    async with runtime.db.begin() as conn:
        return await add_caller(conn, "r", mode="live")


async def test_retryable_submit_failure_falls_back_to_the_next_deployment(
    runtime: Runtime,
) -> None:
    primary, backup = ScriptedProvider(), ScriptedProvider()
    primary.submit_error = ProviderError("upstream_error", "503", retryable=True)
    ctx = _with_deployments(
        runtime,
        {"primary": primary, "backup": backup},
        refs=[DeploymentRef(provider="primary", priority=10), DeploymentRef(provider="backup")],
    )
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    assert (await _job(runtime, job_id)).provider == "primary"
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.provider, job.tried_providers) == ("queued", "backup", ["primary"])
    delay = _next_submit(runtime.database_url, job_id)
    assert delay is not None and delay <= 0
    await runner.submit(job_id)
    assert (await _job(runtime, job_id)).state == "waiting"
    assert primary.submits == [job_id] and backup.submits == [job_id]


def _two_deployments(runtime: Runtime) -> tuple[ScriptedProvider, ScriptedProvider, EngineContext]:
    primary, backup = ScriptedProvider(), ScriptedProvider()
    ctx = _with_deployments(
        runtime,
        {"primary": primary, "backup": backup},
        refs=[DeploymentRef(provider="primary", priority=10), DeploymentRef(provider="backup")],
    )
    return primary, backup, ctx


_INTERNAL = UpstreamStatus(
    "failed",
    error_code="upstream_failed",
    error_message="primary: CUDA out of memory",
    transient=True,
)


async def test_a_transient_task_failure_is_tried_once_on_the_next_deployment(
    runtime: Runtime,
) -> None:
    primary, backup, ctx = _two_deployments(runtime)
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    primary.statuses = [_INTERNAL]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.provider, job.tried_providers, job.task_retries) == (
        "queued",
        "backup",
        ["primary"],
        1,
    )
    assert job.upstream_id is None and job.upstream_state is None and job.error_code is None
    delay = _next_submit(runtime.database_url, job_id)
    assert delay is not None and delay <= 0
    assert _next_poll(runtime.database_url, job_id) is None
    # The new task on the backup completes the job.
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.upstream_id) == ("waiting", f"up-{job_id}")
    backup.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job_id)
    _clear(runtime.database_url, job_id)
    await runner.finalize(job_id)
    assert (await _job(runtime, job_id)).state == "completed"
    assert primary.submits == [job_id] and backup.submits == [job_id]
    # The failure counted against the primary's breaker.
    async with runtime.db.connect() as conn:
        assert (await deployment_health_all(conn))["primary"].consecutive_failures == 1


async def test_a_late_failure_of_the_replaced_task_leaves_the_new_one_alone(
    runtime: Runtime,
) -> None:
    """A read of the first task that outlived its lease, answered after the job went to
    the backup, must not end the backup's task."""
    primary, _backup, ctx = _two_deployments(runtime)
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    async with runtime.db.begin() as conn:
        stale = await claim_poll(conn, job_id, lease_s=0.0)
    assert stale is not None
    primary.statuses = [_INTERNAL]
    await runner.poll(job_id)
    await runner.submit(job_id)
    assert (await _job(runtime, job_id)).provider == "backup"
    primary.statuses = [_INTERNAL]
    late = dataclasses.replace(stale, upstream_id="up-the-first-task")
    assert await runner.check_upstream(late) is None
    job = await _job(runtime, job_id)
    assert (job.state, job.provider, job.error_code) == ("waiting", "backup", None)


async def test_a_second_transient_task_failure_fails_the_job_with_the_upstream_code(
    runtime: Runtime,
) -> None:
    primary, backup, ctx = _two_deployments(runtime)
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    primary.statuses = [_INTERNAL]
    await runner.poll(job_id)
    await runner.submit(job_id)
    backup.statuses = [
        UpstreamStatus(
            "failed", error_code="upstream_timeout", error_message="backup: gave up", transient=True
        )
    ]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.error_code, job.error_message, job.cost) == (
        "failed",
        "upstream_timeout",
        "backup: gave up",
        Decimal(0),
    )
    assert primary.submits == [job_id] and backup.submits == [job_id]


async def test_a_transient_task_failure_with_no_other_deployment_fails_the_job(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    provider.statuses = [_INTERNAL]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.error_code, job.error_message) == (
        "failed",
        "upstream_failed",
        "primary: CUDA out of memory",
    )
    assert provider.submits == [job_id]


async def test_a_task_past_the_wait_limit_is_cancelled_and_tried_elsewhere(
    runtime: Runtime,
) -> None:
    primary, backup, ctx = _two_deployments(runtime)
    ctx = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"upstream_task_timeout_s": 0.001})
    )
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    await asyncio.sleep(0.01)
    primary.statuses = [UpstreamStatus("running", progress=10)]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.provider, job.task_retries) == ("queued", "backup", 1)
    assert primary.cancelled == [f"up-{job_id}"]
    # Past the limit on the backup too: the job fails with upstream_timeout.
    await runner.submit(job_id)
    await asyncio.sleep(0.01)
    backup.statuses = [UpstreamStatus("queued")]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.error_code) == ("failed", "upstream_timeout")
    assert job.error_message == (
        "backup: the task did not finish within 0.001 s (VIDGATE_UPSTREAM_TASK_TIMEOUT_S)"
    )
    assert backup.cancelled == [f"up-{job_id}"]


async def test_a_content_refusal_is_not_tried_elsewhere(runtime: Runtime) -> None:
    primary, backup, ctx = _two_deployments(runtime)
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    primary.statuses = [
        UpstreamStatus(
            "failed",
            error_code="upstream_content_refused",
            error_message="primary: the prompt was flagged (SAFETY.INPUT.TEXT)",
        )
    ]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.error_code, job.task_retries) == (
        "failed",
        "upstream_content_refused",
        0,
    )
    assert primary.submits == [job_id] and backup.submits == []


async def test_breaker_opens_after_repeated_failures_and_routes_around(runtime: Runtime) -> None:
    primary, backup = ScriptedProvider(), ScriptedProvider()
    primary.submit_error = ProviderError("upstream_error", "503", retryable=True)
    ctx = _with_deployments(
        runtime,
        {"primary": primary, "backup": backup},
        refs=[DeploymentRef(provider="primary", priority=10), DeploymentRef(provider="backup")],
    )
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    for _ in range(3):
        await runner.submit(await _new_job(runtime, service, principal))
    async with runtime.db.connect() as conn:
        health = await deployment_health_all(conn)
    assert health["primary"].consecutive_failures == 3 and health["primary"].open_until
    # With primary's breaker open, a new job goes straight to backup.
    fresh = await _new_job(runtime, service, principal)
    assert (await _job(runtime, fresh)).provider == "backup"
    # A success closes the breaker again.
    primary.submit_error = None
    async with runtime.db.begin() as conn:
        await record_deployment_success(conn, "primary")
        assert not await open_breakers(conn, ["primary"])


async def test_auth_failure_marks_the_deployment_unhealthy(runtime: Runtime) -> None:
    broken = ScriptedProvider()
    broken.submit_error = ProviderError(
        "upstream_auth_failed", "401", retryable=False, unhealthy=True
    )
    ctx = _with_deployments(runtime, {"broken": broken})
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.error_code) == ("failed", "upstream_auth_failed")
    async with runtime.db.connect() as conn:
        health = await deployment_health_all(conn)
    assert health["broken"].unhealthy and health["broken"].open_until is not None


async def test_concurrency_cap_queues_jobs_inside_vidgate(runtime: Runtime) -> None:
    capped = ScriptedProvider()
    ctx = _with_deployments(
        runtime,
        {"capped": capped},
        configs={"capped": DeploymentConfig(name="capped", provider="x", max_concurrency=1)},
    )
    runner, service, principal = JobRunner(ctx), JobService(ctx), await _principal(runtime)
    first = await _new_job(runtime, service, principal)
    second = await _new_job(runtime, service, principal)
    await runner.submit(first)
    await runner.submit(second)
    # Still queued and due: it waits for capacity, not for a time.
    assert (await _job(runtime, second)).state == "queued"
    delay = _next_submit(runtime.database_url, second)
    assert delay is not None and delay <= 0
    assert capped.submits == [first]
    # Once the first is done, the second goes out.
    async with runtime.db.begin() as conn:
        await update_job(conn, first, state="completed")
    await runner.submit(second)
    assert capped.submits == [first, second]


# --- callbacks: a nudge pulls the one poll forward -----------------------------------


async def _update_job(runtime: Runtime, job_id: str, **values: Any) -> None:
    async with runtime.db.begin() as conn:
        await update_job(conn, job_id, **values)


async def _waiting_with_poll_in(
    runtime: Runtime, setup: Any, provider: ScriptedProvider, seconds: float
) -> str:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    provider.statuses = [UpstreamStatus("running", poll_after_s=seconds)]
    await runner.poll(job_id)
    delay = _next_poll(runtime.database_url, job_id)
    assert delay is not None and delay > seconds - 5
    return job_id


async def test_nudge_pulls_the_scheduled_poll_forward_and_forks_nothing(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, _ = setup
    url = runtime.database_url
    job_id = await _waiting_with_poll_in(runtime, setup, provider, 60)
    assert await service.nudge(job_id) and await service.nudge(job_id)
    delay = _next_poll(url, job_id)
    assert delay is not None and delay <= 0
    assert _pending(url, job_id) == []  # no task of any kind: the row says when
    # The poller reads it once; still running, the next read is the provider's 60 s away.
    poller = Poller(runner.ctx, concurrency=4)
    provider.statuses = [UpstreamStatus("running", poll_after_s=60)]
    assert await poller.run_due_once() == 1
    delay = _next_poll(url, job_id)
    assert delay is not None and delay > 55
    assert await poller.run_due_once() == 0


async def test_a_nudge_during_a_read_is_not_lost(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    """A read that started before the callback saw the job running; its write-back must
    not push the nudged poll 60 s away."""
    runner, service, _ = setup
    url = runtime.database_url
    job_id = await _waiting_with_poll_in(runtime, setup, provider, 60)
    async with runtime.db.begin() as conn:
        claim = await claim_poll(conn, job_id, lease_s=10)
    assert claim is not None
    provider.statuses = [UpstreamStatus("running", poll_after_s=60)]
    reschedule = await runner.check_upstream(claim)
    assert reschedule is not None
    assert await service.nudge(job_id)
    async with runtime.db.begin() as conn:
        assert await reschedule_polls(conn, [reschedule]) == 0
    delay = _next_poll(url, job_id)
    assert delay is not None and delay <= 0


async def test_nudge_does_nothing_unless_the_job_waits_upstream(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    assert not await service.nudge(job_id)  # queued: not submitted yet
    assert not await service.nudge("video_unknown")
    assert _next_poll(runtime.database_url, job_id) is None
    await runner.submit(job_id)
    await _update_job(runtime, job_id, state="finalizing", next_poll_at=None)
    assert not await service.nudge(job_id)
    assert _next_poll(runtime.database_url, job_id) is None


async def test_nudge_keeps_a_retry_backoff(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, _ = setup
    job_id = await _waiting_with_poll_in(runtime, setup, provider, 60)
    provider.statuses = [
        ProviderError("upstream_rate_limited", "slow down", retryable=True, retry_after_s=30)
    ]
    await runner.poll(job_id)
    assert (await _job(runtime, job_id)).step_attempts == 1
    assert await service.nudge(job_id)
    # The provider asked for 30 s: a callback does not shorten that.
    delay = _next_poll(runtime.database_url, job_id)
    assert delay is not None and delay > 25


# --- the poller ---------------------------------------------------------------------


async def test_poller_reads_due_jobs_in_batches_and_leaves_the_rest(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    url = runtime.database_url
    due = [await _new_job(runtime, service, principal) for _ in range(5)]
    later = await _new_job(runtime, service, principal)
    for job_id in [*due, later]:
        await runner.submit(job_id)
    await _update_job(runtime, later, next_poll_at=_now() + dt.timedelta(seconds=60))
    for job_id in due:
        await _update_job(runtime, job_id, next_poll_at=_now() - dt.timedelta(seconds=1))
    provider.statuses = [
        UpstreamStatus("running", progress=10),
        UpstreamStatus("running", progress=20),
        UpstreamStatus("succeeded"),
        UpstreamStatus("failed", error_code="bad_prompt", error_message="no"),
        ProviderError("upstream_unavailable", "503", retryable=True, retry_after_s=5),
    ]
    # Batches of two: every due job is read once, over three claims.
    poller = Poller(runner.ctx, concurrency=2, batch=2)
    assert await poller.run_due_once() == 5
    assert provider.statuses == []
    states = sorted([(await _job(runtime, j)).state for j in due])
    assert states == ["failed", "finalizing", "waiting", "waiting", "waiting"]
    for job_id in due:
        job = await _job(runtime, job_id)
        if job.state != "waiting":
            continue
        delay = _next_poll(url, job_id)
        assert delay is not None and 0.5 <= delay <= 5.1
        assert job.poll_count == (0 if job.step_attempts else 1)
    assert (await _job(runtime, later)).poll_count == 0
    assert await poller.run_due_once() == 0


async def test_reads_near_the_expected_end_keep_it_on_the_job(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    url = runtime.database_url
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    # Submitted 9 s ago and 90 % done: it ends 9.9-10 s after the submit (poll_schedule.py).
    await _update_job(runtime, job_id, submitted_at=_now() - dt.timedelta(seconds=9))
    provider.statuses = [UpstreamStatus("running", progress=90), UpstreamStatus("running")]
    await runner.poll(job_id)
    end_in, delay = _due_in(url, job_id, "expected_end_at"), _next_poll(url, job_id)
    assert end_in is not None and 0.7 < end_in <= 1.0
    assert delay is not None and 0.7 < delay <= 1.0  # read at that end, not after 4.5 s
    # A read that says nothing of progress keeps the end, and reads again just before it.
    await runner.poll(job_id)
    kept = _due_in(url, job_id, "expected_end_at")
    assert kept is not None and abs(kept - end_in) < 0.2
    delay = _next_poll(url, job_id)
    assert delay is not None and delay <= FAST_POLL_S
    # A new upstream task (a resubmission) starts without one.
    await _update_job(runtime, job_id, state="submitting")
    provider.statuses = []
    await runner.submit(job_id)
    assert _due_in(url, job_id, "expected_end_at") is None


async def test_finished_reads_move_on_together_each_due_to_finalize(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    url = runtime.database_url
    jobs = [await _new_job(runtime, service, principal) for _ in range(3)]
    for job_id in jobs:
        await runner.submit(job_id)
        await _update_job(runtime, job_id, next_poll_at=_now() - dt.timedelta(seconds=1))
    provider.statuses = [
        UpstreamStatus("succeeded", cost=Decimal("0.5")),
        UpstreamStatus("succeeded"),
        UpstreamStatus("succeeded"),
    ]
    assert await Poller(runner.ctx, concurrency=4).run_due_once() == 3
    found = [await _job(runtime, job_id) for job_id in jobs]
    assert [(j.state, j.progress, j.poll_count) for j in found] == [("finalizing", 95, 1)] * 3
    # Each due to finalize at once, on its row (engine/finalizer.py).
    assert all(j.next_poll_at is not None and j.next_poll_at <= _now() for j in found)
    # The provider's cost where it gave one; no cost written where it gave none.
    assert sorted(str(j.cost) for j in found) == ["0.500000", "None", "None"]
    with psycopg.connect(url) as conn:
        queued = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    assert queued == (0,)


async def test_a_dead_pollers_claims_run_out(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    await _update_job(runtime, job_id, next_poll_at=_now() - dt.timedelta(seconds=1))
    async with runtime.db.begin() as conn:
        [claim] = await claim_due_polls(conn, limit=10, lease_s=0.5)
    # Claimed by a poller that then died: nobody else reads it while the lease holds...
    async with runtime.db.begin() as conn:
        assert await claim_due_polls(conn, limit=10, lease_s=0.5) == []
    await asyncio.sleep(0.6)
    # ...and when it runs out, the job is due again.
    async with runtime.db.begin() as conn:
        [again] = await claim_due_polls(conn, limit=10, lease_s=10)
    assert again.job_id == job_id and again.lease_until > claim.lease_until
    # The dead poller's late write-back no longer applies.
    late = PollReschedule(claim, delay_s=60, progress=50, poll_count=1, step_attempts=0)
    async with runtime.db.begin() as conn:
        assert await reschedule_polls(conn, [late]) == 0
    assert (await _job(runtime, job_id)).progress == 0


@pytest.mark.parametrize("kind", ["submitter", "poller"])
async def test_a_stopping_loop_hands_back_what_it_had_in_flight(
    runtime: Runtime, setup: Any, provider: ScriptedProvider, kind: str
) -> None:
    """engine/due.py on shutdown: a step in flight is due again at once, not when its
    claim's lease would have run out."""
    runner, service, principal = setup
    url = runtime.database_url
    job_id = await _new_job(runtime, service, principal)
    started = asyncio.Event()

    async def hangs(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    loop: Poller | Submitter
    if kind == "poller":
        await runner.submit(job_id)
        await _update_job(runtime, job_id, next_poll_at=_now() - dt.timedelta(seconds=1))
        provider.status = hangs  # type: ignore[method-assign]
        loop, due_in = Poller(runner.ctx, concurrency=4), _next_poll
    else:
        provider.submit = hangs  # type: ignore[method-assign]
        loop, due_in = Submitter(runner.ctx, concurrency=4), _next_submit
    running = asyncio.create_task(loop.run())
    await asyncio.wait_for(started.wait(), 10)
    # Claimed: its due time is a lease ahead while the step hangs.
    delay = due_in(url, job_id)
    assert delay is not None and delay > 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # Stopped: due again now.
    delay = due_in(url, job_id)
    assert delay is not None and delay <= 0
    assert (await _job(runtime, job_id)).state == ("waiting" if kind == "poller" else "submitting")


async def test_finalize_probes_on_the_media_threads(
    runtime: Runtime, setup: Any, provider: ScriptedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Media work runs on the few ``media_threads``, not on a thread per step, which
    would take the event loop's turns on the GIL."""
    import threading

    from vidgate.engine import finalize as finalize_module

    runner, service, principal = setup
    assert runtime.settings.media_threads >= 1
    assert runtime.engine.media is not None
    assert runtime.engine.media._max_workers == runtime.settings.media_threads  # type: ignore[attr-defined]
    threads: list[str] = []
    real = finalize_module.probe_video

    def recording(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(finalize_module, "probe_video", recording)
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job_id)
    await runner.finalize(job_id)
    assert (await _job(runtime, job_id)).state == "completed"
    assert len(threads) == 1 and threads[0].startswith("vidgate-media")


# --- the submitter ------------------------------------------------------------------


async def test_submitter_submits_due_jobs_in_batches_and_leaves_the_rest(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    url = runtime.database_url
    due = [await _new_job(runtime, service, principal) for _ in range(5)]
    later = await _new_job(runtime, service, principal)
    await _update_job(runtime, later, submit_at=_now() + dt.timedelta(seconds=60))
    # Batches of two: every due job is submitted once, over three claims.
    submitter = Submitter(runner.ctx, concurrency=2, batch=2)
    assert await submitter.run_due_once() == 5
    assert sorted(provider.submits) == sorted(due)
    for job_id in due:
        job = await _job(runtime, job_id)
        assert (job.state, job.upstream_id) == ("waiting", f"up-{job_id}")
        assert _next_submit(url, job_id) is None
        delay = _next_poll(url, job_id)
        assert delay is not None and 0.2 < delay <= 0.5
    assert (await _job(runtime, later)).state == "queued"
    assert await submitter.run_due_once() == 0
    assert _pending(url, later) == []


async def test_submitter_fills_a_capped_deployment_up_to_its_cap(runtime: Runtime) -> None:
    capped, free = ScriptedProvider(), ScriptedProvider()
    ctx = _with_deployments(
        runtime,
        {"capped": capped, "free": free},
        refs=[DeploymentRef(provider="capped", priority=10), DeploymentRef(provider="free")],
        configs={"capped": DeploymentConfig(name="capped", provider="x", max_concurrency=2)},
    )
    service, principal = JobService(ctx), await _principal(runtime)
    jobs = [await _new_job(runtime, service, principal) for _ in range(5)]
    other = await _new_job(runtime, service, principal)
    await _update_job(runtime, other, provider="free")
    submitter = Submitter(ctx, concurrency=8)
    assert await submitter.run_due_once() == 3
    # The oldest first (in any order within a batch).
    assert sorted(capped.submits) == sorted(jobs[:2]) and free.submits == [other]
    assert [(await _job(runtime, j)).state for j in jobs[2:]] == ["queued"] * 3
    # Nothing is due but the capped jobs, which wait for capacity rather than a time.
    async with runtime.db.connect() as conn:
        assert await next_submission_due_in(conn, capped=["capped"]) is None
    assert await submitter.run_due_once() == 0
    # One finishes: one more goes out.
    await _update_job(runtime, jobs[0], state="completed")
    assert await submitter.run_due_once() == 1
    assert sorted(capped.submits) == sorted(jobs[:3])


async def test_a_dead_submitters_claims_run_out(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    async with runtime.db.begin() as conn:
        [claim] = await claim_due_submissions(conn, limit=10, lease_s=0.5, capped=[])
    assert claim.id == job_id and (await _job(runtime, job_id)).state == "submitting"
    # Claimed by a submitter that then died: nobody else takes it while the lease holds...
    async with runtime.db.begin() as conn:
        assert await claim_due_submissions(conn, limit=10, lease_s=0.5, capped=[]) == []
    await asyncio.sleep(0.6)
    # ...and when it runs out, it goes again, with the same idempotency key.
    assert await Submitter(runner.ctx, concurrency=4).run_due_once() == 1
    assert provider.submits == [job_id]
    assert (await _job(runtime, job_id)).state == "waiting"


async def test_a_living_submitter_keeps_its_claims(
    database_url: str, tmp_path: Path, provider: ScriptedProvider
) -> None:
    """While a provider takes its time to answer, the lease is renewed: nobody else
    submits the job a second time (most providers take no idempotency key)."""
    async with runtime_on(database_url, tmp_path, stalled_after_s=0.6) as rt:
        ctx = _with_deployments(rt, {"scripted": provider})
        service, principal = JobService(ctx), await _principal(rt)
        job_id = await _new_job(rt, service, principal)
        started, answer = asyncio.Event(), asyncio.Event()
        submit = provider.submit

        async def slow(spec: JobSpec, **kwargs: Any) -> SubmitResult:
            started.set()
            await answer.wait()
            return await submit(spec, **kwargs)

        provider.submit = slow  # type: ignore[method-assign]
        submitter = asyncio.create_task(Submitter(ctx, concurrency=4).run())
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(1.5)  # two and a half leases
        async with rt.db.begin() as conn:
            assert await claim_due_submissions(conn, limit=10, lease_s=1, capped=[]) == []
        answer.set()
        for _ in range(100):
            if (await _job(rt, job_id)).state == "waiting":
                break
            await asyncio.sleep(0.05)
        submitter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submitter
    assert provider.submits == [job_id]


async def test_a_second_submission_of_a_job_keeps_the_first_task(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    """Two submissions of one job both answered (the first's lease ran out while its
    process was stalled): the job keeps the task written first; the other's task is
    cancelled unless it is the same one (an idempotency key the provider honours)."""
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    async with runtime.db.begin() as conn:
        [claim] = await claim_due_submissions(conn, limit=1, lease_s=10, capped=[])
    first = await runner.submit_claimed(claim)
    same = await runner.submit_claimed(claim)
    assert first is not None and same is not None
    await runner.record_submitted([first])
    await runner.record_submitted([same])
    assert provider.cancelled == []
    other = dataclasses.replace(same, upstream_id="up-duplicate")
    await runner.record_submitted([other])
    assert provider.cancelled == ["up-duplicate"]
    assert (await _job(runtime, job_id)).upstream_id == f"up-{job_id}"


async def test_submitted_at_is_when_the_provider_answered_not_the_write_back(
    runtime: Runtime, setup: Any
) -> None:
    """A write-back that waited (a busy gateway, others joining its batch) does not make
    the task younger than it is: its expected end would come early."""
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    async with runtime.db.begin() as conn:
        [claim] = await claim_due_submissions(conn, limit=1, lease_s=10, capped=[])
    submitted = await runner.submit_claimed(claim)
    assert submitted is not None
    await runner.record_submitted([dataclasses.replace(submitted, answered=time.monotonic() - 2)])
    job = await _job(runtime, job_id)
    assert job.submitted_at is not None
    age = (_now() - job.submitted_at).total_seconds()
    assert 2.0 <= age < 3.0, age


def test_adaptive_poll_interval_grows_with_the_wait_within_bounds() -> None:
    assert adaptive_poll_s(0) == MIN_POLL_S
    assert adaptive_poll_s(10) == 10 * POLL_AGE_FACTOR
    assert adaptive_poll_s(3600) == MAX_POLL_S
    waits = [adaptive_poll_s(t) for t in range(0, 200, 5)]
    assert waits == sorted(waits)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
