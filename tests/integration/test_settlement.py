"""Settle, release, late results: what a job is charged when it ends, against a real
PostgreSQL, with a scripted provider and the steps called directly (no worker).

A live job's estimate is reserved in the ledger when it is created (the budgets' part
of create); these tests write that reservation themselves where create does not yet,
in the same idempotent way, so they hold either way. Whatever the reservation, a job's
ledger rows must then sum to what it was charged: its cost once completed, 0 once
failed or cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from tests.integration.conftest import add_caller, runtime_on
from tests.integration.test_job_runner import ScriptedProvider

from vidgate.core.catalog import Catalog, DeploymentRef
from vidgate.core.jobs import JobRecord
from vidgate.core.pricing import PriceTable
from vidgate.core.spec import VideoRequest
from vidgate.db import ledger
from vidgate.db.jobs import get_job
from vidgate.engine import late_results
from vidgate.engine.context import EngineContext
from vidgate.engine.runner import JobRunner
from vidgate.engine.service import JobService, Principal
from vidgate.providers.base import ProviderError, UpstreamStatus
from vidgate.runtime import Runtime

# $0.10 a second at 240p: a 4 s request is estimated (and reserved) at $0.40; the
# scripted provider's clip lasts 1 s, so the seconds produced cost $0.10.
_RATE = Decimal("0.10")
_ESTIMATE = Decimal("0.40")


@dataclasses.dataclass
class World:
    runtime: Runtime
    ctx: EngineContext
    provider: ScriptedProvider
    runner: JobRunner
    service: JobService
    live: Principal
    test: Principal

    async def create(self, principal: Principal | None = None) -> str:
        principal = principal or self.live
        job = await self.service.create(
            principal, VideoRequest(model="sandbox", prompt="p", seconds=4, size="320x240")
        )
        if job.mode == "live":
            await self.reserve(job)
        return job.id

    async def reserve(self, job: JobRecord) -> None:
        """The create's reservation (a no-op once create has made it)."""
        assert job.estimated_cost is not None
        async with self.runtime.db.begin() as conn:
            await ledger.reserve(
                conn,
                job_id=job.id,
                tenant_id=job.tenant_id,
                api_key_id=job.api_key_id,
                amount=job.estimated_cost,
                booked_at=job.created_at,
            )

    async def job(self, job_id: str) -> JobRecord:
        async with self.runtime.db.connect() as conn:
            job = await get_job(conn, job_id, include_deleted=True)
        assert job is not None
        return job

    def ledger(self, job_id: str) -> dict[str, Decimal]:
        with psycopg.connect(self.runtime.database_url) as conn:
            rows = conn.execute(
                "SELECT step, amount FROM ledger WHERE job_id = %s", (job_id,)
            ).fetchall()
        return {step: amount for step, amount in rows}

    async def complete(self, job_id: str, status: UpstreamStatus) -> None:
        await self.runner.submit(job_id)
        self.provider.statuses.append(status)
        await self.runner.poll(job_id)
        await self.runner.finalize(job_id)


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with runtime_on(
        database_url, tmp_path, max_step_attempts=3, sandbox_latency_s=0
    ) as runtime:
        provider = ScriptedProvider()
        card = runtime.catalog.get("sandbox").model_copy(
            update={
                "deployments": [DeploymentRef(provider="scripted")],
                "pricing": PriceTable(per_second={"240p": _RATE}),
            }
        )
        ctx = dataclasses.replace(
            runtime.engine,
            providers={**runtime.engine.providers, "scripted": provider},
            catalog=Catalog([card]),
            deployments={},
        )
        async with runtime.db.begin() as conn:
            live = await add_caller(conn, "live", mode="live")
            test = await add_caller(conn, "test", mode="test")
        yield World(runtime, ctx, provider, JobRunner(ctx), JobService(ctx), live, test)


def _with_settings(world: World, **settings: object) -> World:
    ctx = dataclasses.replace(world.ctx, settings=world.ctx.settings.model_copy(update=settings))
    return dataclasses.replace(world, ctx=ctx, runner=JobRunner(ctx), service=JobService(ctx))


# --- completion ---------------------------------------------------------------------


async def test_a_completed_job_is_charged_the_seconds_it_produced(world: World) -> None:
    job_id = await world.create()
    assert (await world.job(job_id)).estimated_cost == _ESTIMATE
    await world.complete(job_id, UpstreamStatus("succeeded"))
    job = await world.job(job_id)
    assert (job.state, job.cost) == ("completed", _RATE)
    rows = world.ledger(job_id)
    assert set(rows) == {"reserve", "settle"} and sum(rows.values()) == _RATE
    # A finalize run again (a crash after the commit) settles nothing twice.
    await world.runner.finalize(job_id)
    assert world.ledger(job_id) == rows


async def test_the_providers_reported_cost_is_what_is_charged(world: World) -> None:
    job_id = await world.create()
    await world.complete(job_id, UpstreamStatus("succeeded", cost=Decimal("0.042")))
    assert (await world.job(job_id)).cost == Decimal("0.042")
    assert sum(world.ledger(job_id).values()) == Decimal("0.042")


async def test_a_test_mode_job_is_never_charged(world: World) -> None:
    # A test key reaches the sandbox (no latency here), which a live key never does.
    job_id = await world.create(world.test)
    await world.runner.submit(job_id)
    await world.runner.poll(job_id)
    await world.runner.finalize(job_id)
    job = await world.job(job_id)
    assert (job.provider, job.state, job.cost) == ("sandbox", "completed", 0)
    assert world.ledger(job_id) == {}


# --- failure, cancellation, timeout -------------------------------------------------


async def _refused_at_submit(world: World, job_id: str) -> None:
    world.provider.submit_error = ProviderError("upstream_rejected", "no", retryable=False)
    await world.runner.submit(job_id)


async def _retried_to_the_bound(world: World, job_id: str) -> None:
    # One deployment only: no fallback, then retries until max_step_attempts (3).
    world.provider.submit_error = ProviderError("upstream_error", "503", retryable=True)
    for _ in range(3):
        await world.runner.submit(job_id)


async def _failed_upstream(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    world.provider.statuses.append(UpstreamStatus("failed", error_code="upstream_failed"))
    await world.runner.poll(job_id)


async def _transient_nowhere_to_go(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    world.provider.statuses.append(
        UpstreamStatus("failed", error_code="upstream_failed", transient=True)
    )
    await world.runner.poll(job_id)


async def _step_errors_to_the_bound(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    for _ in range(3):
        await world.runner.step_failed("poll", job_id, RuntimeError("boom"))


async def _download_refused(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    world.provider.statuses.append(UpstreamStatus("succeeded", cost=Decimal("0.05")))
    await world.runner.poll(job_id)
    world.provider.fetch_error = ProviderError("upstream_failed", "gone", retryable=False)
    await world.runner.finalize(job_id)


async def _deleted_while_waiting(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    await world.service.delete(world.live, job_id)


async def _deleted_while_finalizing(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    world.provider.statuses.append(UpstreamStatus("succeeded", cost=Decimal("0.05")))
    await world.runner.poll(job_id)
    await world.service.delete(world.live, job_id)
    await world.runner.finalize(job_id)


async def _timed_out_locally(world: World, job_id: str) -> None:
    await world.runner.submit(job_id)
    await asyncio.sleep(0.01)
    world.provider.statuses.append(UpstreamStatus("running"))
    await world.runner.poll(job_id)


_ENDINGS: dict[str, tuple[Callable[[World, str], Awaitable[None]], str, str]] = {
    "refused at submit": (_refused_at_submit, "failed", "upstream_rejected"),
    "submit retried to the bound": (_retried_to_the_bound, "failed", "upstream_error"),
    "failed upstream": (_failed_upstream, "failed", "upstream_failed"),
    "transient, no other deployment": (_transient_nowhere_to_go, "failed", "upstream_failed"),
    "step errors to the bound": (_step_errors_to_the_bound, "failed", "internal_error"),
    "download refused": (_download_refused, "failed", "upstream_failed"),
    "deleted while waiting": (_deleted_while_waiting, "cancelled", "cancelled"),
    "deleted while finalizing": (_deleted_while_finalizing, "cancelled", "cancelled"),
    "timed out locally": (_timed_out_locally, "failed", "upstream_timeout"),
}


@pytest.mark.parametrize("ending", list(_ENDINGS))
async def test_a_job_that_ends_without_a_video_is_charged_nothing(
    world: World, ending: str
) -> None:
    end, state, code = _ENDINGS[ending]
    world = _with_settings(world, upstream_task_timeout_s=0.001)
    job_id = await world.create()
    await end(world, job_id)
    job = await world.job(job_id)
    assert (job.state, job.error_code, job.cost) == (state, code, 0)
    rows = world.ledger(job_id)
    assert set(rows) == {"reserve", "release"} and sum(rows.values()) == 0


# --- late results -------------------------------------------------------------------


async def _timed_out_and_watched(world: World) -> tuple[World, str]:
    world = _with_settings(
        world, upstream_task_timeout_s=0.001, late_result_poll_s=0.001, late_result_watch_s=60
    )
    job_id = await world.create()
    await _timed_out_locally(world, job_id)
    await asyncio.sleep(0.01)
    return world, job_id


async def test_a_job_timed_out_locally_is_completed_and_settled_when_its_task_succeeds(
    world: World,
) -> None:
    world, job_id = await _timed_out_and_watched(world)
    upstream_id = f"up-{job_id}"
    assert world.provider.cancelled == [upstream_id]
    assert sum(world.ledger(job_id).values()) == 0

    # Still running upstream: read, and left watched.
    world.provider.statuses.append(UpstreamStatus("running"))
    assert await late_results.check_once(world.ctx) == 1
    assert (await world.job(job_id)).state == "failed"
    await asyncio.sleep(0.01)

    world.provider.statuses.append(UpstreamStatus("succeeded"))
    assert await late_results.check_once(world.ctx) == 1
    job = await world.job(job_id)
    assert (job.state, job.error_code, job.completed_at) == ("finalizing", None, None)
    await world.runner.finalize(job_id)
    job = await world.job(job_id)
    assert (job.state, job.cost, job.error_code) == ("completed", _RATE, None)
    rows = world.ledger(job_id)
    assert set(rows) == {"reserve", "release", "settle"} and sum(rows.values()) == _RATE
    # No longer watched: nothing is read again.
    await asyncio.sleep(0.01)
    assert await late_results.check_once(world.ctx) == 0
    # The read past the limit, its cancel, the two late reads, the fetch.
    assert [t.id for t in world.provider.tasks] == [upstream_id] * 5


async def test_a_late_task_that_fails_or_outlives_the_watch_is_left(world: World) -> None:
    world, failed_job = await _timed_out_and_watched(world)
    world.provider.statuses.append(UpstreamStatus("cancelled"))
    assert await late_results.check_once(world.ctx) == 1
    await asyncio.sleep(0.01)
    assert await late_results.check_once(world.ctx) == 0
    assert (await world.job(failed_job)).state == "failed"

    # Watched for longer than late_result_watch_s: dropped without a read.
    world, old_job = await _timed_out_and_watched(world)
    world = _with_settings(world, late_result_watch_s=0)
    assert await late_results.check_once(world.ctx) == 0
    # A deleted job is not brought back either.
    world, deleted_job = await _timed_out_and_watched(world)
    await world.service.delete(world.live, deleted_job)
    assert await late_results.check_once(world.ctx) == 0
    for job_id in (failed_job, old_job, deleted_job):
        assert sum(world.ledger(job_id).values()) == 0
    assert world.provider.statuses == []


async def test_a_task_whose_status_could_not_be_read_is_watched_too(world: World) -> None:
    """Status reads that kept failing end the job, not the task: a late success of the
    task completes it."""
    world = _with_settings(world, late_result_poll_s=0.001)
    job_id = await world.create()
    await world.runner.submit(job_id)
    unreachable = ProviderError("upstream_timeout", "no answer", retryable=True)
    world.provider.statuses += [unreachable] * 3
    for _ in range(3):
        await world.runner.poll(job_id)
    job = await world.job(job_id)
    assert (job.state, job.error_code, job.cost) == ("failed", "upstream_timeout", 0)
    await asyncio.sleep(0.01)
    world.provider.statuses.append(UpstreamStatus("succeeded", cost=Decimal("0.3")))
    assert await late_results.check_once(world.ctx) == 1
    await world.runner.finalize(job_id)
    assert (await world.job(job_id)).cost == Decimal("0.3")
    assert sum(world.ledger(job_id).values()) == Decimal("0.3")


async def test_the_watch_is_kept_only_for_vidgates_own_timeout(world: World) -> None:
    """A job the provider failed (its own timeout included) is not watched."""
    world = _with_settings(world, late_result_poll_s=0.001)
    job_id = await world.create()
    await world.runner.submit(job_id)
    world.provider.statuses.append(UpstreamStatus("failed", error_code="upstream_timeout"))
    await world.runner.poll(job_id)
    await asyncio.sleep(0.01)
    assert await late_results.check_once(world.ctx) == 0
