"""Rate limits on a real PostgreSQL, with many transactions at once: the sliding window
(on a short window, so the test need not wait a minute), jobs in flight, a project's
limits, and a limit set on a scope that already made creates."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.errors import RateLimited
from vidgate.core.spec import VideoRequest
from vidgate.db.limits import write_key_limits, write_project_limits
from vidgate.db.schema import limit_admissions
from vidgate.engine.limits import admit
from vidgate.engine.service import JobService, Principal
from vidgate.runtime import Runtime


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


async def _caller(runtime: Runtime, name: str) -> Principal:
    async with runtime.db.begin() as conn:
        return await add_caller(conn, name)


def _request() -> VideoRequest:
    return VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")


async def _creates(service: JobService, principal: Principal, n: int) -> tuple[int, int]:
    """``n`` creates at once: (accepted, refused with 429)."""
    results = await asyncio.gather(
        *(service.create(principal, _request()) for _ in range(n)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert all(isinstance(r, RateLimited) or hasattr(r, "id") for r in results), results
    return n - len(refused), len(refused)


async def test_no_window_of_the_length_holds_more_than_rpm_creates(runtime: Runtime) -> None:
    """12 writers hammer one key limited to 4 creates per 0.5 s window for 1.6 s: every
    window of 0.5 s (ending at any accepted create) holds at most 4, and the window
    slides (more than 4 are accepted in all, none twice at one instant)."""
    principal = await _caller(runtime, "rpm")
    async with runtime.db.begin() as conn:
        await write_key_limits(conn, principal.key_id, {"rpm": 4})
    window = 0.5
    accepted: list[dt.datetime] = []
    refused = 0
    deadline = time.monotonic() + 1.6

    async def writer() -> None:
        nonlocal refused
        while time.monotonic() < deadline:
            try:
                async with runtime.db.begin() as conn:
                    await admit(conn, principal.key_id, window_s=window)
                    # This create's own row: the newest of its scope, under the lock.
                    at = await conn.scalar(sa.select(sa.func.max(limit_admissions.c.at)))
                assert at is not None
                accepted.append(at)
            except RateLimited:
                refused += 1
                await asyncio.sleep(0.01)

    await asyncio.gather(*(writer() for _ in range(12)))
    accepted.sort()
    assert len(set(accepted)) == len(accepted)
    span = dt.timedelta(seconds=window)
    for i, end in enumerate(accepted):
        in_window = [t for t in accepted[: i + 1] if t > end - span]
        assert len(in_window) <= 4, (end, in_window)
    assert len(accepted) >= 8, accepted
    assert refused > 0
    # Rows that left the window are pruned by later creates.
    async with runtime.db.connect() as conn:
        kept = await conn.scalar(sa.select(sa.func.count()).select_from(limit_admissions))
    assert kept is not None and kept <= 4


async def test_max_concurrent_admits_exactly_that_many_of_simultaneous_creates(
    runtime: Runtime,
) -> None:
    principal = await _caller(runtime, "conc")
    async with runtime.db.begin() as conn:
        await write_key_limits(conn, principal.key_id, {"max_concurrent": 3})
    service = JobService(runtime.engine)
    assert await _creates(service, principal, 10) == (3, 7)
    # A job that ends frees its slot (no worker runs here: they stay queued otherwise).
    jobs, _ = await service.list(principal, after=None, limit=10, order="asc")
    await service.delete(principal, jobs[0].id)
    assert await _creates(service, principal, 4) == (1, 3)


async def test_a_projects_limits_hold_across_its_keys(runtime: Runtime) -> None:
    one = await _caller(runtime, "one")
    async with runtime.db.begin() as conn:
        # A second key of the same project.
        await conn.execute(
            sa.text(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, mode)"
                " VALUES ('key_two', :t, 'two', 'p', 'two', 'test')"
            ),
            {"t": one.tenant_id},
        )
        await write_project_limits(conn, one.tenant_id, {"rpm": 5})
    two = Principal("key_two", one.tenant_id, "test")
    service = JobService(runtime.engine)
    seen = []
    assert (await service.create(one, _request(), on_limits=seen.append)).id
    assert seen[0].headers()["x-ratelimit-remaining-requests"] == "4"
    results = await asyncio.gather(_creates(service, one, 4), _creates(service, two, 4))
    assert sum(a for a, _ in results) == 4
    with pytest.raises(RateLimited) as refused:
        await service.create(two, _request())
    assert refused.value.code == "rate_limit_exceeded" and refused.value.status_code == 429
    assert refused.value.headers["x-ratelimit-limit-requests"] == "5"
    # Another project is not affected.
    other = await _caller(runtime, "other")
    assert await _creates(service, other, 6) == (6, 0)


async def test_a_new_rpm_counts_the_creates_of_the_last_minute(runtime: Runtime) -> None:
    principal = await _caller(runtime, "seed")
    service = JobService(runtime.engine)
    assert await _creates(service, principal, 4) == (4, 0)
    async with runtime.db.begin() as conn:
        await write_key_limits(conn, principal.key_id, {"rpm": 5})
    assert await _creates(service, principal, 3) == (1, 2)
    # No limit again: nothing counts, and its rows are gone.
    async with runtime.db.begin() as conn:
        await write_key_limits(conn, principal.key_id, {"rpm": None})
        assert await conn.scalar(sa.select(sa.func.count()).select_from(limit_admissions)) == 0
    assert await _creates(service, principal, 3) == (3, 0)


async def test_an_unlimited_key_takes_no_lock(runtime: Runtime) -> None:
    """Creates of a key without limits never wait on each other's transactions."""
    principal = await _caller(runtime, "free")
    async with runtime.db.begin() as first:
        assert await admit(first, principal.key_id) is None
        async with runtime.db.begin() as second:
            assert await asyncio.wait_for(admit(second, principal.key_id), 2) is None
