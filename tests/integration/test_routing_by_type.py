"""Two accounts of one provider serve the same model: a card's ref naming the adapter
reaches both, and each keeps its own circuit breaker (health is keyed by deployment
name), against a real PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.catalog import Catalog, DeploymentRef
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.jobs import JobRecord
from vidgate.core.spec import JobSpec, VideoRequest
from vidgate.db.deployments import deployment_health_all
from vidgate.db.jobs import get_job
from vidgate.engine.context import EngineContext
from vidgate.engine.runner import JobRunner
from vidgate.engine.service import JobService
from vidgate.providers.base import ProviderError, SubmitResult
from vidgate.runtime import Runtime


class Account:
    """One Kling account, as far as routing sees it: it takes a job, or answers 503."""

    name = "kling-account"

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.submits: list[str] = []

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        pass

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        self.submits.append(idempotency_key)
        if self.down:
            raise ProviderError("upstream_error", "503", retryable=True)
        return SubmitResult(f"up-{idempotency_key}", poll_after_s=60)

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path, max_step_attempts=3) as rt:
        yield rt


def _two_accounts(runtime: Runtime, eu: Account, us: Account) -> EngineContext:
    """The sandbox model served by `{provider: kling}`: every kling deployment."""
    card = runtime.catalog.get("sandbox").model_copy(
        update={"deployments": [DeploymentRef(provider="kling", upstream_model="kling-v2-6")]}
    )
    configs = {
        name: DeploymentConfig(name=name, provider="kling") for name in ("kling-eu", "kling-us")
    }
    return dataclasses.replace(
        runtime.engine,
        providers={**runtime.engine.providers, "kling-eu": eu, "kling-us": us},
        catalog=Catalog([card]),
        deployments=configs,
    )


async def _job(runtime: Runtime, job_id: str) -> JobRecord:
    async with runtime.db.connect() as conn:
        record = await get_job(conn, job_id)
    assert record is not None
    return record


async def test_an_adapter_ref_falls_back_across_accounts_each_with_its_own_breaker(
    runtime: Runtime,
) -> None:
    eu, us = Account(down=True), Account()
    ctx = _two_accounts(runtime, eu, us)
    service, runner = JobService(ctx), JobRunner(ctx)
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "ops", mode="live")

    async def submitted() -> JobRecord:
        job = await service.create(
            principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
        )
        await runner.submit(job.id)
        return await _job(runtime, job.id)

    # Both accounts take jobs (at random, equal weights) until the one that is down
    # has failed three times in a row; each of its jobs moves to the other account.
    for _ in range(60):
        if len(eu.submits) >= 3:
            break
        job = await submitted()
        assert job.upstream_model == "kling-v2-6"
        if job.tried_providers:
            # Routed to the account that is down: moved to the other one, due at once.
            assert (job.state, job.provider, job.tried_providers) == (
                "queued",
                "kling-us",
                ["kling-eu"],
            )
            await runner.submit(job.id)
            job = await _job(runtime, job.id)
        assert (job.state, job.provider) == ("waiting", "kling-us")
    assert len(eu.submits) == 3
    async with runtime.db.connect() as conn:
        health = await deployment_health_all(conn)
    # Its breaker is open, and only its own: new jobs go straight to the other account.
    assert health["kling-eu"].open_until is not None
    assert "kling-us" not in health or health["kling-us"].open_until is None
    for _ in range(3):
        job = await submitted()
        assert (job.state, job.provider, job.tried_providers) == ("waiting", "kling-us", [])
    assert len(eu.submits) == 3
