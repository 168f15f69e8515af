"""The job state machine against a real PostgreSQL, with a scripted provider.

Steps are called directly (no worker), and what each step enqueued next is read from
procrastinate's own table, so every transition and its follow-up are checked together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from vidgate.config import Settings
from vidgate.core.catalog import Catalog, DeploymentRef
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.spec import JobSpec, VideoRequest
from vidgate.db import repo
from vidgate.db.migrate import migrate
from vidgate.engine import steps
from vidgate.engine.context import EngineContext
from vidgate.engine.runner import JobRunner
from vidgate.engine.service import JobService, Principal
from vidgate.engine.sweeper import sweep_once
from vidgate.media.render import ClipRequest, render_clip
from vidgate.providers.base import ProviderError, SubmitResult, UpstreamStatus
from vidgate.runtime import Runtime, open_runtime


class ScriptedProvider:
    """Answers from queues the test fills; records every call."""

    name = "scripted"

    def __init__(self) -> None:
        self.submits: list[Any] = []
        self.statuses: list[UpstreamStatus | ProviderError] = []
        self.fetch_error: ProviderError | None = None
        self.submit_error: Exception | None = None
        self.cancelled: list[str] = []

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        self.submits.append(idempotency_key)
        if self.submit_error is not None:
            raise self.submit_error
        return SubmitResult(f"up-{idempotency_key}", poll_after_s=0.5)

    async def status(self, upstream_id: str) -> UpstreamStatus:
        item = self.statuses.pop(0)
        if isinstance(item, ProviderError):
            raise item
        return item

    async def fetch(self, upstream_id: str, dest_dir: Path, progress: Any = None) -> list[Path]:
        if self.fetch_error is not None:
            raise self.fetch_error
        out = dest_dir / "0.mp4"
        render_clip(ClipRequest(width=64, height=48, fps=8, seconds=1, prompt="x", label="t"), out)
        return [out]

    async def cancel(self, upstream_id: str) -> None:
        self.cancelled.append(upstream_id)


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    migrate(database_url)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, max_step_attempts=3)
    async with open_runtime(settings, database_url) as rt:
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
        tenant = await repo.ensure_tenant(conn, "tenant_t", "t")
        await repo.insert_api_key(
            conn,
            key_id="key_t",
            tenant_id=tenant,
            name="t",
            prefix="p",
            secret_hash=b"h",
            mode="test",
            is_admin=False,
        )
    # A live key, so that settled costs are real (test keys are never billed).
    return JobRunner(ctx), service, Principal("key_t", tenant, "live", False)


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


def _clear(url: str, job_id: str) -> None:
    """Play the worker: the steps seen so far are done."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM procrastinate_jobs WHERE args->>'job_id' = %s", (job_id,))


async def _job(runtime: Runtime, job_id: str) -> repo.JobRecord:
    async with runtime.db.connect() as conn:
        job = await repo.get_job(conn, job_id, include_deleted=True)
    assert job is not None
    return job


async def test_happy_path_enqueues_each_next_step(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.SUBMIT]
    _clear(runtime.database_url, job_id)

    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "waiting" and job.upstream_id == f"up-{job_id}"
    [(task, delay)] = _pending(runtime.database_url, job_id)
    assert task == steps.POLL and 0.2 < delay <= 0.5
    _clear(runtime.database_url, job_id)

    provider.statuses = [UpstreamStatus("running", progress=40, poll_after_s=3.0)]
    await runner.poll(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "waiting" and job.progress == 40 and job.poll_count == 1
    [(task, delay)] = _pending(runtime.database_url, job_id)
    assert task == steps.POLL and 2.5 < delay <= 3.0
    _clear(runtime.database_url, job_id)

    provider.statuses = [UpstreamStatus("succeeded", cost=Decimal("0.042"))]
    await runner.poll(job_id)
    assert (await _job(runtime, job_id)).state == "finalizing"
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.FINALIZE]
    _clear(runtime.database_url, job_id)

    await runner.finalize(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "completed" and job.progress == 100
    assert job.cost == Decimal("0.042")  # the provider's reported cost wins over the estimate
    # Re-running a finished step changes nothing and stores nothing twice.
    await runner.finalize(job_id)
    await runner.submit(job_id)
    async with runtime.db.connect() as conn:
        assert len(await repo.get_outputs(conn, job_id)) == 1
    assert provider.submits == [job_id]
    assert _pending(runtime.database_url, job_id) == []


async def test_retryable_submit_error_honours_retry_after(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    _clear(runtime.database_url, job_id)
    provider.submit_error = ProviderError(
        "rate_limited", "slow down", retryable=True, retry_after_s=7
    )
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert job.state == "submitting" and job.step_attempts == 1
    [(task, delay)] = _pending(runtime.database_url, job_id)
    assert task == steps.SUBMIT and 6 < delay <= 7
    # A re-run of the submit after a crash reuses the same idempotency key.
    provider.submit_error = None
    _clear(runtime.database_url, job_id)
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
        _clear(runtime.database_url, job_id)
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


async def test_unexpected_errors_are_retried_then_fail_as_internal(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    provider.submit_error = RuntimeError("bug")
    for attempt in (1, 2):
        _clear(runtime.database_url, job_id)
        await runner.guarded(steps.SUBMIT, job_id, runner.submit)
        assert (await _job(runtime, job_id)).step_attempts == attempt
        assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.SUBMIT]
    _clear(runtime.database_url, job_id)
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
    _clear(runtime.database_url, job_id)
    await service.delete(principal, job_id)
    job = await _job(runtime, job_id)
    assert job.state == "cancelled" and job.deleted_at is not None and job.cost == 0
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.CANCEL_UPSTREAM]
    await runner.cancel_upstream(job_id)
    assert provider.cancelled == [f"up-{job_id}"]
    # A poll that was already queued finds the job cancelled and does nothing.
    await runner.poll(job_id)
    assert (await _job(runtime, job_id)).state == "cancelled"


async def test_sweeper_requeues_an_active_job_with_no_pending_step(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    _clear(runtime.database_url, job_id)  # the poll step is lost
    assert await sweep_once(runner.ctx) == (0, 1)
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.POLL]
    # Idempotent: a second sweep finds the step pending and adds nothing.
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
        tenant = await repo.ensure_tenant(conn, "tenant_r", "r")
        await repo.insert_api_key(
            conn,
            key_id="key_r",
            tenant_id=tenant,
            name="r",
            prefix="p",
            secret_hash=b"r",
            mode="live",
            is_admin=False,
        )
    return Principal("key_r", tenant, "live", False)


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
    _clear(runtime.database_url, job_id)
    await runner.submit(job_id)
    job = await _job(runtime, job_id)
    assert (job.state, job.provider, job.tried_providers) == ("queued", "backup", ["primary"])
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.SUBMIT]
    await runner.submit(job_id)
    assert (await _job(runtime, job_id)).state == "waiting"
    assert primary.submits == [job_id] and backup.submits == [job_id]


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
        health = await repo.deployment_health_all(conn)
    assert health["primary"].consecutive_failures == 3 and health["primary"].open_until
    # With primary's breaker open, a new job goes straight to backup.
    fresh = await _new_job(runtime, service, principal)
    assert (await _job(runtime, fresh)).provider == "backup"
    # A success closes the breaker again.
    primary.submit_error = None
    async with runtime.db.begin() as conn:
        await repo.record_deployment_success(conn, "primary")
        assert not await repo.open_breakers(conn, ["primary"])


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
        health = await repo.deployment_health_all(conn)
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
    _clear(runtime.database_url, second)
    await runner.submit(second)
    assert (await _job(runtime, second)).state == "queued"
    [(task, delay)] = _pending(runtime.database_url, second)
    assert task == steps.SUBMIT and delay > 0.5
    assert capped.submits == [first]
    # Once the first is done, the second goes out.
    async with runtime.db.begin() as conn:
        await repo.update_job(conn, first, state="completed")
    await runner.submit(second)
    assert capped.submits == [first, second]


# --- callbacks: a nudge pulls the one poll chain forward ------------------------------


def _queued(url: str, job_id: str) -> list[tuple[str, float, int, str]]:
    """(task name, seconds until due, priority, lock) of the job's queued tasks."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT task_name, EXTRACT(EPOCH FROM (COALESCE(scheduled_at, now()) - now())),"
            " priority, lock FROM procrastinate_jobs"
            " WHERE args->>'job_id' = %s AND status = 'todo' ORDER BY id",
            (job_id,),
        ).fetchall()
    return [(r[0], float(r[1]), int(r[2]), str(r[3])) for r in rows]


def _done(url: str, job_id: str, task_name: str) -> None:
    """Play the worker for one kind of task."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "DELETE FROM procrastinate_jobs WHERE args->>'job_id' = %s AND task_name = %s",
            (job_id, task_name),
        )


async def _update_job(runtime: Runtime, job_id: str, **values: Any) -> None:
    async with runtime.db.begin() as conn:
        await repo.update_job(conn, job_id, **values)


async def _waiting_with_poll_in(
    runtime: Runtime, setup: Any, provider: ScriptedProvider, seconds: float
) -> str:
    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    await runner.submit(job_id)
    _clear(runtime.database_url, job_id)
    provider.statuses = [UpstreamStatus("running", poll_after_s=seconds)]
    await runner.poll(job_id)
    [(task, delay)] = _pending(runtime.database_url, job_id)
    assert task == steps.POLL and delay > seconds - 5
    return job_id


async def test_nudge_pulls_the_scheduled_poll_forward_and_forks_nothing(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    from vidgate.engine.nudge import pull_forward

    runner, service, _ = setup
    url = runtime.database_url
    job_id = await _waiting_with_poll_in(runtime, setup, provider, 60)
    # Callbacks queue one nudge between them, ahead of the poll that shares its lock.
    assert await service.nudge(job_id) and await service.nudge(job_id)
    poll, nudge = _queued(url, job_id)
    assert poll[0] == steps.POLL and poll[2:] == (0, steps.job_lock(job_id))
    assert nudge[0] == steps.NUDGE and nudge[2:] == (steps.NUDGE_PRIORITY, steps.job_lock(job_id))
    assert nudge[1] <= 0
    # procrastinate runs the nudge now, though the older poll holds the same lock.
    with psycopg.connect(url, autocommit=True) as conn:
        worker = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()
        assert worker is not None
        fetched = conn.execute(
            "SELECT task_name FROM procrastinate_fetch_job_v2(ARRAY['jobs'], %s)", (worker[0],)
        ).fetchone()
        assert fetched == (steps.NUDGE,)
    _done(url, job_id, steps.NUDGE)
    await pull_forward(runner.ctx, job_id)
    # The same poll, due now: no second one.
    [(task, delay, _, _)] = _queued(url, job_id)
    assert task == steps.POLL and delay <= 0
    # That poll, still running upstream, schedules the next one as usual: one chain.
    provider.statuses = [UpstreamStatus("running", poll_after_s=60)]
    _clear(url, job_id)
    await runner.poll(job_id)
    [(task, delay, _, _)] = _queued(url, job_id)
    assert task == steps.POLL and delay > 55
    # Pulling forward again and again moves that one poll; it never adds a poll.
    for _ in range(3):
        await pull_forward(runner.ctx, job_id)
    assert [(t, d <= 0) for t, d, _, _ in _queued(url, job_id)] == [(steps.POLL, True)]


async def test_nudge_does_nothing_unless_the_job_waits_upstream(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    from vidgate.engine.nudge import pull_forward

    runner, service, principal = setup
    job_id = await _new_job(runtime, service, principal)
    assert not await service.nudge(job_id)  # queued: not submitted yet
    assert not await service.nudge("video_unknown")
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.SUBMIT]
    # A nudge queued while waiting that runs after the job moved on changes nothing.
    await runner.submit(job_id)
    _clear(runtime.database_url, job_id)
    await _update_job(runtime, job_id, state="finalizing")
    await pull_forward(runner.ctx, job_id)
    assert _pending(runtime.database_url, job_id) == []


async def test_nudge_keeps_a_retry_backoff(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    from vidgate.engine.nudge import pull_forward

    runner, _, _ = setup
    job_id = await _waiting_with_poll_in(runtime, setup, provider, 60)
    _clear(runtime.database_url, job_id)
    provider.statuses = [
        ProviderError("upstream_rate_limited", "slow down", retryable=True, retry_after_s=30)
    ]
    await runner.poll(job_id)
    assert (await _job(runtime, job_id)).step_attempts == 1
    await pull_forward(runner.ctx, job_id)
    # The provider asked for 30 s: a callback does not shorten that.
    [(task, delay)] = _pending(runtime.database_url, job_id)
    assert task == steps.POLL and delay > 25


async def test_nudge_restarts_a_lost_poll_chain(
    runtime: Runtime, setup: Any, provider: ScriptedProvider
) -> None:
    from vidgate.engine.nudge import pull_forward

    runner, _, _ = setup
    job_id = await _waiting_with_poll_in(runtime, setup, provider, 60)
    _clear(runtime.database_url, job_id)  # the poll is lost
    await pull_forward(runner.ctx, job_id)
    [(task, delay)] = _pending(runtime.database_url, job_id)
    assert task == steps.POLL and delay <= 0
    # A second nudge finds that poll and adds none.
    await pull_forward(runner.ctx, job_id)
    assert [t for t, _ in _pending(runtime.database_url, job_id)] == [steps.POLL]
