"""A project's prices and usage on a real database: the override a create is priced
with (the database's over the models file's), the estimate that agrees with it, the
audited admin changes, and usage counted by the day jobs completed."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.errors import InvalidParameter, NotFound
from vidgate.core.pricing import PriceOverride, PriceTable
from vidgate.core.spec import VideoRequest
from vidgate.db.schema import audit_log, jobs
from vidgate.engine.prices import project_price
from vidgate.engine.service import Principal
from vidgate.runtime import Runtime

MODELS = """
projects:
  t:
    prices:
      sora-2: {multiplier: 0.5}
"""


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS)
    async with runtime_on(database_url, tmp_path, models_file=models) as rt:
        yield rt


def _admin(principal: Principal, role: str = "admin") -> Principal:
    return Principal(principal.key_id, principal.tenant_id, principal.mode, role)  # type: ignore[arg-type]


SORA_8S = VideoRequest(model="sora-2", prompt="p", seconds=8)  # list price 0.80


async def test_creates_and_estimates_use_the_projects_override(runtime: Runtime) -> None:
    async with runtime.db.begin() as conn:
        t = await add_caller(conn, "t")
        u = await add_caller(conn, "u")
    jobs_ = runtime.jobs
    # The file's override for project t; u pays the list price.
    assert (await jobs_.create(t, SORA_8S)).estimated_cost == Decimal("0.4")
    assert (await jobs_.estimate(t, SORA_8S)).estimated_cost == Decimal("0.4")
    assert (await jobs_.create(u, SORA_8S)).estimated_cost == Decimal("0.8")
    found = await jobs_.estimate(u, SORA_8S)
    assert (found.estimated_cost, found.price_source) == (Decimal("0.8"), "list")
    assert (found.deployment, found.spec.seconds) == ("sandbox", 8)

    # One set through the admin service wins over the file's, for its project only.
    prices = runtime.services.prices
    await prices.put(_admin(t), "sora-2", PriceOverride(multiplier=Decimal(2)))
    assert (await jobs_.create(t, SORA_8S)).estimated_cost == Decimal("1.6")
    table = PriceOverride(pricing=PriceTable(per_second={"720p": Decimal("0.01")}))
    await prices.put(_admin(u), "sora-2", table)
    found = await jobs_.estimate(u, SORA_8S)
    assert (found.estimated_cost, found.price_source) == (Decimal("0.08"), "project_table")
    # What settlement calls: the seconds produced, not necessarily whole.
    card = runtime.catalog.get("sora-2")
    async with runtime.db.connect() as conn:
        settled = await project_price(
            runtime.engine, conn, u.tenant_id, card, "720p", Decimal("8.5")
        )
    assert settled == Decimal("0.085")

    # Removing it falls back to the file's override, which cannot be removed here.
    await prices.delete(_admin(t), "sora-2")
    assert (await jobs_.estimate(t, SORA_8S)).estimated_cost == Decimal("0.4")
    listed = await prices.list(_admin(t))
    assert [(r.model, r.source, r.override.multiplier) for r in listed] == [
        ("sora-2", "file", Decimal("0.5"))
    ]
    with pytest.raises(InvalidParameter, match="models file"):
        await prices.delete(_admin(t), "sora-2")
    with pytest.raises(NotFound):
        await prices.delete(_admin(u), "sandbox")
    # A table that misses a resolution of the model is refused before anything is stored.
    with pytest.raises(InvalidParameter, match="240p"):
        await prices.put(_admin(u), "sandbox", table)

    async with runtime.db.connect() as conn:
        entries = (
            await conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.action, audit_log.c.tenant_id)
                .where(audit_log.c.action.like("price_overrides.%"))
                .order_by(audit_log.c.id)
            )
        ).all()
    assert [tuple(e) for e in entries] == [
        ("key_t", "price_overrides.set", t.tenant_id),
        ("key_u", "price_overrides.set", u.tenant_id),
        ("key_t", "price_overrides.delete", t.tenant_id),
    ]


async def test_an_admin_acts_on_its_own_project_an_operator_on_any(runtime: Runtime) -> None:
    async with runtime.db.begin() as conn:
        t = await add_caller(conn, "t")
        u = await add_caller(conn, "u")
    prices, usage = runtime.services.prices, runtime.services.usage
    for project in (u.tenant_id, "u", "nobody"):
        with pytest.raises(NotFound):
            await prices.list(_admin(t), project)
        with pytest.raises(NotFound):
            await usage.usage(_admin(t), start=None, end=None, group_by=None, project=project)
    # Its own project, by id or by name, is fine.
    assert await prices.list(_admin(t), "t") == await prices.list(_admin(t), t.tenant_id)
    operator = _admin(t, "operator")
    await prices.put(operator, "sora-2", PriceOverride(multiplier=Decimal(3)), project="u")
    assert [r.project_id for r in await prices.list(operator, "u")] == [u.tenant_id]
    assert await prices.list(_admin(u)) == await prices.list(operator, u.tenant_id)


async def test_usage_counts_completed_jobs_by_the_utc_day_they_completed(
    runtime: Runtime,
) -> None:
    async with runtime.db.begin() as conn:
        t = await add_caller(conn, "t")
        u = await add_caller(conn, "u")

    async def job(
        principal: Principal, state: str, at: str, cost: str | None, **kw: object
    ) -> None:
        created = await runtime.jobs.create(
            principal, VideoRequest(model="sandbox", prompt="p", seconds=2, n=2, size="320x240")
        )
        async with runtime.db.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == created.id)
                .values(
                    state=state,
                    completed_at=dt.datetime.fromisoformat(at),
                    cost=None if cost is None else Decimal(cost),
                    **kw,
                )
            )

    await job(t, "completed", "2026-03-01T00:00:00+00:00", "0.10", mode="live")
    await job(t, "completed", "2026-03-01T23:59:59.999+00:00", "0.20", mode="live", model="m2")
    # 00:30 in Berlin is still the previous UTC day.
    await job(t, "completed", "2026-03-02T00:30:00+01:00", None, mode="live")
    # A test job is charged nothing; usage shows its price.
    await job(t, "completed", "2026-03-02T12:00:00+00:00", "0", estimated_cost=Decimal("0.05"))
    await job(t, "completed", "2026-03-03T00:00:00+00:00", "9")  # after the range
    await job(t, "completed", "2026-02-28T23:59:59+00:00", "9")  # before it
    await job(t, "failed", "2026-03-01T10:00:00+00:00", "0")  # never counts
    await job(u, "completed", "2026-03-01T10:00:00+00:00", "7", mode="live")  # another project

    usage = runtime.services.usage
    whole = await usage.usage(_admin(t), start="2026-03-01", end="2026-03-02", group_by=None)
    assert (whole.total.count, whole.total.seconds, whole.total.cost) == (3, 12, Decimal("0.3"))
    assert (whole.test_total.count, whole.test_total.seconds) == (1, 4)
    assert whole.test_total.cost == Decimal("0.05")
    assert [(r.mode, r.count) for r in whole.data] == [("live", 3), ("test", 1)]

    by = await usage.usage(
        _admin(t), start="2026-03-01", end="2026-03-02", group_by="day,model,key"
    )
    assert [(str(r.day), r.model, r.key_id, r.mode, r.count, r.cost) for r in by.data] == [
        ("2026-03-01", "m2", "key_t", "live", 1, Decimal("0.2")),
        ("2026-03-01", "sandbox", "key_t", "live", 2, Decimal("0.1")),
        ("2026-03-02", "sandbox", "key_t", "test", 1, Decimal("0.05")),
    ]
    assert by.total == whole.total
    operator = await usage.usage(
        _admin(t, "operator"), start="2026-03-01", end="2026-03-01", group_by=None, project="u"
    )
    assert (operator.total.count, operator.total.cost) == (1, Decimal("7"))
