"""engine/due.py's leases: a claim stays leased until its result is written back.

A submission that the provider has accepted is still ``submitting`` in the database
until the submitter's batched write-back commits it. Were its lease left to run out
before that (a slow write-back, a busy event loop), another worker would claim the job
and submit it again: one more upstream task where the provider takes no idempotency
key. tests/e2e/test_cluster.py saw such jobs sent twice with no worker killed.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest

from vidgate.engine import due
from vidgate.engine.due import DueWorker

LEASE_S = 0.3


class SlowWriteBack(DueWorker[str, str]):
    """One job to claim; its step ends at once; its write-back takes two leases."""

    channel = "unused"
    name = "probe"

    def __init__(self) -> None:
        ctx = SimpleNamespace(settings=SimpleNamespace(stalled_after_s=LEASE_S), database_url=None)
        super().__init__(ctx, concurrency=4, batch=4, idle_s=0.05)  # type: ignore[arg-type]
        self.due = ["job-1"]
        self.renewed: set[str] = set()
        self.writing = False
        self.written: list[str] = []

    async def claim(self, limit: int) -> list[str]:
        claims, self.due = self.due[:limit], self.due[limit:]
        return claims

    def job_id(self, claim: str) -> str:
        return claim

    async def work(self, claim: str) -> str:
        return claim

    async def write_back(self, results: list[str]) -> None:
        self.writing = True
        await asyncio.sleep(2 * LEASE_S)
        self.written += results

    async def next_due_in(self) -> float | None:
        return None

    async def renew(self, claims: list[str]) -> None:
        if self.writing:
            self.renewed.update(claims)

    async def release(self, claims: list[str]) -> None:
        pass


async def test_a_claim_is_renewed_until_its_result_is_written_back() -> None:
    loop = SlowWriteBack()
    runner = asyncio.create_task(loop.run())
    await asyncio.sleep(3 * LEASE_S)
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    assert loop.written == ["job-1"]
    # The write-back took two leases: the claim must have been renewed meanwhile, or
    # another worker could have claimed the job again before it was recorded.
    assert "job-1" in loop.renewed


class FlakyWriteBack(SlowWriteBack):
    """The write-back fails once (a database blip), then works."""

    async def write_back(self, results: list[str]) -> None:
        if not self.writing:
            self.writing = True
            raise OSError("connection lost")
        self.written += results


async def test_a_failed_write_back_is_tried_again_and_its_claim_kept() -> None:
    loop = FlakyWriteBack()
    runner = asyncio.create_task(loop.run())
    for _ in range(40):
        await asyncio.sleep(0.05)
        if loop.written:
            break
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    # Dropped, the result would leave the job to be claimed again when its lease ran
    # out: a second submission upstream.
    assert loop.written == ["job-1"]
    assert "job-1" in loop.renewed


class TwoSteps(SlowWriteBack):
    """Two jobs; the second's step ends a moment after the first's; quick write-backs."""

    def __init__(self) -> None:
        super().__init__()
        self.due = ["job-1", "job-2"]
        self.flushes: list[list[str]] = []
        self.flushed = asyncio.Event()

    async def work(self, claim: str) -> str:
        await asyncio.sleep(0.01 if claim == "job-1" else 0.05)
        return claim

    async def write_back(self, results: list[str]) -> None:
        self.flushes.append(results)
        self.flushed.set()


async def test_a_write_back_waits_for_steps_in_flight_only_while_there_are_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Were the wait for others to join the full delay, both would still wait here.
    monkeypatch.setattr(due, "_FLUSH_DELAY_S", 30.0)
    loop = TwoSteps()
    runner = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(5):
            await loop.flushed.wait()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    # The first result waited for the second, then both went in one write-back as soon
    # as nothing was in flight.
    assert loop.flushes == [["job-1", "job-2"]]
