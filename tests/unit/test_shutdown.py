"""The shutdown's bound and drain time, and what happens to a step cut short by it."""

from __future__ import annotations

import asyncio

import pytest
from procrastinate.jobs import Job

from vidgate.engine.shutdown import HAND_BACK, Shutdown, drain_time


@pytest.mark.parametrize(("timeout_s", "drain_s"), [(30, 25), (60, 55), (3, 2), (0.6, 0.4)])
def test_steps_in_flight_get_the_bound_less_a_margin(timeout_s: float, drain_s: float) -> None:
    assert drain_time(timeout_s) == pytest.approx(drain_s)


async def test_a_requested_shutdown_counts_down_and_wakes_sleepers() -> None:
    shutdown = Shutdown(30)
    assert not shutdown.requested and shutdown.left() == 30
    woken = asyncio.Event()
    shutdown.wake_on_request(woken)
    sleeping = asyncio.create_task(shutdown.sleep(60))
    shutdown.request()
    await asyncio.wait_for(sleeping, 1)
    assert woken.is_set() and shutdown.requested
    assert 24 < shutdown.drain_left() <= 25 and 29 < shutdown.left() <= 30


def test_a_step_cut_short_by_a_shutdown_is_handed_back_and_nothing_else() -> None:
    job = Job(id=1, queue="media", lock=None, queueing_lock=None, task_name="vidgate:finalize")
    decision = HAND_BACK.get_retry_decision(exception=asyncio.CancelledError(), job=job)
    assert decision is not None and decision.retry_at is None
    assert HAND_BACK.get_retry_decision(exception=RuntimeError("boom"), job=job) is None
