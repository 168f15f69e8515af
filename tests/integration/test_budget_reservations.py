"""Reservations at create against budgets, on a real PostgreSQL: every live job's
estimate is reserved in the create's transaction; a create that a budget has no room
for is refused (402) with nothing written; test-mode jobs never count; an unpriced
model under a budget is refused; periods are UTC calendar days and months; a key's
budget counts only its own jobs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.catalog import Catalog, DeploymentRef
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InsufficientQuota
from vidgate.core.pricing import PriceTable
from vidgate.core.spec import JobSpec, VideoRequest
from vidgate.db.keys import insert_api_key
from vidgate.engine.service import JobService, Principal
from vidgate.runtime import Runtime
from vidgate.services.budgets import BudgetService

# 4 s at 0.0123 USD a second: an estimate of 0.0492, not a round number of cents.
RATE = Decimal("0.0123")
ESTIMATE = RATE * 4


class Upstream:
    """A deployment that takes any job; nothing here ever submits."""

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


def _jobs(runtime: Runtime) -> JobService:
    """The sandbox card, priced, served for live keys by the deployment ``acct`` (and
    a copy of it without a price, ``free-ish``)."""
    base = runtime.catalog.get("sandbox")
    priced = base.model_copy(
        update={
            "pricing": PriceTable(default_per_second=RATE),
            "deployments": [DeploymentRef(provider="acct", upstream_model="m")],
        }
    )
    unpriced = priced.model_copy(update={"id": "free-ish", "pricing": None})
    ctx = dataclasses.replace(
        runtime.engine,
        providers={**runtime.engine.providers, "acct": Upstream()},
        catalog=Catalog([priced, unpriced]),
        deployments={"acct": DeploymentConfig(name="acct", provider="acct")},
    )
    return JobService(ctx)


def _request(model: str = "sandbox") -> VideoRequest:
    return VideoRequest(model=model, prompt="p", seconds=4, size="320x240")


async def _ledger(runtime: Runtime) -> list[tuple[str, str, Decimal]]:
    async with runtime.db.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT job_id, step, amount FROM ledger ORDER BY created_at, job_id")
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def _count_jobs(runtime: Runtime) -> int:
    async with runtime.db.connect() as conn:
        return int(await conn.scalar(sa.text("SELECT count(*) FROM jobs")) or 0)


async def _live(runtime: Runtime, name: str) -> Principal:
    async with runtime.db.begin() as conn:
        return await add_caller(conn, name, mode="live")


async def test_every_live_job_reserves_its_estimate_and_test_jobs_nothing(
    runtime: Runtime,
) -> None:
    jobs = _jobs(runtime)
    live = await _live(runtime, "live")
    async with runtime.db.begin() as conn:
        test = await add_caller(conn, "test")
    job = await jobs.create(live, _request())
    assert job.estimated_cost == ESTIMATE
    await jobs.create(test, _request())
    # No budget anywhere: the live job's estimate is reserved all the same.
    assert await _ledger(runtime) == [(job.id, "reserve", ESTIMATE)]
    # A live job of a model without a price and no budget: 0 reserved, not refused.
    unpriced = await jobs.create(live, _request("free-ish"))
    assert unpriced.estimated_cost is None
    assert (unpriced.id, "reserve", Decimal(0)) in await _ledger(runtime)


async def test_a_budget_admits_exactly_what_fits_then_refuses_with_402(
    runtime: Runtime,
) -> None:
    jobs, budgets = _jobs(runtime), BudgetService(runtime.db)
    live = await _live(runtime, "capped")
    async with runtime.db.begin() as conn:
        test = await add_caller(conn, "capped-test")
    status, created = await budgets.set(
        live.tenant_id, usd=ESTIMATE * 3, period="month", key_id=None, actor="cli"
    )
    assert created and status.spent == 0
    # Test-mode jobs of the same project never count.
    for _ in range(5):
        await jobs.create(test, _request())
    for _ in range(3):
        await jobs.create(live, _request())
    before = await _count_jobs(runtime)
    with pytest.raises(InsufficientQuota) as refused:
        await jobs.create(live, _request())
    error = refused.value
    assert (error.status_code, error.type, error.code) == (
        402,
        "insufficient_quota",
        "budget_exceeded",
    )
    # It names the budget and the amounts.
    budget_id = status.budget.id
    assert budget_id in error.message and "0.1476 USD" in error.message
    assert "0.00 USD left" in error.message and "0.0492 USD" in error.message
    # Nothing was created: no job, no ledger row.
    assert await _count_jobs(runtime) == before
    assert len(await _ledger(runtime)) == 3
    listed = await budgets.list(live.tenant_id)
    assert [(s.budget.id, s.spent, s.remaining) for s in listed] == [
        (budget_id, ESTIMATE * 3, Decimal(0))
    ]
    # Raised: room again, for exactly one more.
    again, created = await budgets.set(
        live.tenant_id, usd=ESTIMATE * 4, period="month", key_id=None, actor="cli"
    )
    assert not created and again.budget.id == budget_id
    await jobs.create(live, _request())
    with pytest.raises(InsufficientQuota):
        await jobs.create(live, _request())


async def test_a_released_reservation_makes_room_again(runtime: Runtime) -> None:
    """What counts is the ledger's sum: a failed job's release gives its estimate back
    (the settle helper writes releases; here one is written as it would be)."""
    jobs, budgets = _jobs(runtime), BudgetService(runtime.db)
    live = await _live(runtime, "released")
    await budgets.set(live.tenant_id, usd=ESTIMATE, period="total", key_id=None, actor="cli")
    first = await jobs.create(live, _request())
    with pytest.raises(InsufficientQuota):
        await jobs.create(live, _request())
    from vidgate.db import ledger

    async with runtime.db.begin() as conn:
        assert await ledger.release(conn, first.id)
    await jobs.create(live, _request())


async def test_an_unpriced_model_under_a_budget_is_refused(runtime: Runtime) -> None:
    jobs, budgets = _jobs(runtime), BudgetService(runtime.db)
    live = await _live(runtime, "unknown")
    await budgets.set(live.tenant_id, usd=Decimal(100), period="day", key_id=None, actor="cli")
    before = await _count_jobs(runtime)
    with pytest.raises(InsufficientQuota) as refused:
        await jobs.create(live, _request("free-ish"))
    assert refused.value.code == "budget_unpriced_model"
    assert refused.value.param == "model" and "no price" in refused.value.message
    assert await _count_jobs(runtime) == before and await _ledger(runtime) == []


async def test_a_keys_budget_counts_that_key_only(runtime: Runtime) -> None:
    jobs, budgets = _jobs(runtime), BudgetService(runtime.db)
    one = await _live(runtime, "keyed")
    async with runtime.db.begin() as conn:
        await insert_api_key(
            conn,
            key_id="key_other",
            tenant_id=one.tenant_id,
            name="other",
            prefix="p",
            secret_hash=b"other",
            mode="live",
            role="member",
        )
    other = Principal("key_other", one.tenant_id, "live")
    status, _ = await budgets.set(
        one.tenant_id, usd=ESTIMATE, period="day", key_id=one.key_id, actor="cli"
    )
    assert status.budget.api_key_id == one.key_id
    await jobs.create(one, _request())
    with pytest.raises(InsufficientQuota) as refused:
        await jobs.create(one, _request())
    assert f"key {one.key_id}" in refused.value.message
    # The project's other key is not capped by it.
    for _ in range(3):
        await jobs.create(other, _request())
    # A project budget caps both: it already holds 4 estimates.
    await budgets.set(one.tenant_id, usd=ESTIMATE * 5, period="month", key_id=None, actor="cli")
    await jobs.create(other, _request())
    with pytest.raises(InsufficientQuota):
        await jobs.create(other, _request())


async def test_a_day_budget_counts_only_todays_bookings(runtime: Runtime) -> None:
    jobs, budgets = _jobs(runtime), BudgetService(runtime.db)
    live = await _live(runtime, "daily")
    yesterday = await jobs.create(live, _request())
    async with runtime.db.begin() as conn:
        # Booked in the previous UTC day (the ledger keeps the reservation's time).
        await conn.execute(
            sa.text(
                "UPDATE ledger SET booked_at = date_trunc('day', now() AT TIME ZONE 'UTC')"
                " AT TIME ZONE 'UTC' - interval '1 second' WHERE job_id = :id"
            ),
            {"id": yesterday.id},
        )
    await budgets.set(live.tenant_id, usd=ESTIMATE, period="day", key_id=None, actor="cli")
    await jobs.create(live, _request())
    with pytest.raises(InsufficientQuota):
        await jobs.create(live, _request())
    # A total budget counts yesterday's too.
    await budgets.set(live.tenant_id, usd=ESTIMATE * 2, period="total", key_id=None, actor="cli")
    await budgets.set(live.tenant_id, usd=Decimal(10), period="day", key_id=None, actor="cli")
    with pytest.raises(InsufficientQuota) as refused:
        await jobs.create(live, _request())
    assert "total" in refused.value.message


async def test_concurrent_creates_never_overrun_a_budget(runtime: Runtime) -> None:
    """Forty creates at once on the process's pool against room for seven: exactly
    seven (the cross-process version is tests/e2e/test_budgets.py)."""
    jobs, budgets = _jobs(runtime), BudgetService(runtime.db)
    live = await _live(runtime, "racy")
    await budgets.set(live.tenant_id, usd=ESTIMATE * 7, period="month", key_id=None, actor="cli")

    async def one() -> bool:
        try:
            await jobs.create(live, _request())
        except InsufficientQuota:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(40)))
    assert sum(results) == 7
    rows = await _ledger(runtime)
    assert len(rows) == 7 and sum(r[2] for r in rows) == ESTIMATE * 7
