"""The budget for decoded images: byte-weighted, fair, never deadlocked, always released."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from vidgate.media.budget import MAX_PASSES, MemoryBudget, OverBudget

# Generous: a blocked waiter must show up as blocked within this, on a loaded machine.
SETTLE_S = 0.2


class Holder:
    """A reservation taken on a thread of its own, held until ``release``."""

    def __init__(self, budget: MemoryBudget, nbytes: int) -> None:
        self.granted = threading.Event()
        self._done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(budget, nbytes), daemon=True)
        self._thread.start()

    def _run(self, budget: MemoryBudget, nbytes: int) -> None:
        try:
            with budget.reserve(nbytes):
                self.granted.set()
                self._done.wait(30)
        except BaseException as exc:
            self.error = exc
            self.granted.set()

    def release(self) -> None:
        self._done.set()
        self._thread.join(30)
        assert not self._thread.is_alive()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for holder in made:
        holder.release()


def hold(budget: MemoryBudget, nbytes: int, holders: list[Holder], *, wait: bool = True) -> Holder:
    holder = Holder(budget, nbytes)
    holders.append(holder)
    if wait:
        assert holder.granted.wait(10)
    return holder


def test_reservations_are_weighted_by_bytes(holders: list[Holder]) -> None:
    budget = MemoryBudget(100)
    hold(budget, 60, holders)
    hold(budget, 40, holders)  # fits beside it: granted at once
    assert budget.in_use == 100
    third = hold(budget, 1, holders, wait=False)
    assert not third.granted.wait(SETTLE_S)  # full: even one byte waits
    holders[0].release()
    assert third.granted.wait(10)
    assert budget.in_use == 41


def test_a_small_image_does_not_wait_behind_a_large_one(holders: list[Holder]) -> None:
    budget = MemoryBudget(100)
    hold(budget, 60, holders)
    large = hold(budget, 50, holders, wait=False)
    assert not large.granted.wait(SETTLE_S)
    assert budget.waiting == 1
    small = hold(budget, 30, holders, wait=False)  # fits in what is free: no queueing
    assert small.granted.wait(10)
    holders[0].release()
    assert large.granted.wait(10)


def test_the_oldest_waiter_is_passed_a_bounded_number_of_times(holders: list[Holder]) -> None:
    budget = MemoryBudget(100)
    hold(budget, 60, holders)
    large = hold(budget, 50, holders, wait=False)
    assert not large.granted.wait(SETTLE_S)
    for _ in range(MAX_PASSES):
        with budget.reserve(10):  # each fits, and passes the large one
            pass
    late = hold(budget, 10, holders, wait=False)
    assert not late.granted.wait(SETTLE_S), "passed the oldest waiter once too often"
    holders[0].release()
    assert large.granted.wait(10) and late.granted.wait(10)
    assert budget.in_use == 60


def test_a_reservation_larger_than_the_budget_is_refused_at_once() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(OverBudget) as err, budget.reserve(101):
        pass
    assert (err.value.needed, err.value.capacity) == (101, 100)
    with budget.reserve(100):  # the whole budget is fine
        assert budget.in_use == 100
    assert budget.in_use == 0


def test_released_when_the_block_raises() -> None:
    budget = MemoryBudget(100)
    with pytest.raises(RuntimeError), budget.reserve(70):
        raise RuntimeError("decoder failed")
    assert budget.in_use == 0
    with budget.reserve(100):  # all of it is back
        pass


async def test_async_waiters_hold_no_thread_and_are_woken_by_threads() -> None:
    budget = MemoryBudget(100)
    threads_before = threading.active_count()
    release = threading.Event()
    granted = threading.Event()

    def hold_in_thread() -> None:
        with budget.reserve(80):
            granted.set()
            release.wait(30)

    holder = threading.Thread(target=hold_in_thread)
    holder.start()
    assert granted.wait(10)
    order: list[str] = []

    async def waiter(name: str, nbytes: int) -> None:
        async with budget.reserve_async(nbytes):
            order.append(name)
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(waiter(f"w{i}", 50)) for i in range(5)]
    await asyncio.sleep(SETTLE_S)
    assert order == [] and budget.waiting == 5
    assert threading.active_count() == threads_before + 1  # the holder only
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    holder.join(10)
    assert order == [f"w{i}" for i in range(5)]  # oldest first
    assert budget.in_use == 0


async def test_a_cancelled_async_waiter_leaves_the_queue() -> None:
    budget = MemoryBudget(100)
    with budget.reserve(90):
        blocked = asyncio.create_task(_hold_async(budget, 50, asyncio.Event()))
        await asyncio.sleep(SETTLE_S)
        assert budget.waiting == 1
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert budget.waiting == 0
    assert budget.in_use == 0


async def test_a_grant_to_a_task_cancelled_before_it_ran_is_given_back() -> None:
    budget = MemoryBudget(100)
    entered = asyncio.Event()
    with ExitStack() as stack:
        stack.enter_context(budget.reserve(90))
        task = asyncio.create_task(_hold_async(budget, 50, entered))
        await asyncio.sleep(SETTLE_S)
        # Granted on its behalf, then cancelled before it could run.
        stack.close()
        assert budget.in_use == 50  # granted on its behalf
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not entered.is_set()
    assert budget.in_use == 0


async def _hold_async(budget: MemoryBudget, nbytes: int, entered: asyncio.Event) -> None:
    async with budget.reserve_async(nbytes):
        entered.set()
        await asyncio.sleep(30)


def test_shrinking_refuses_waiters_that_can_no_longer_fit(holders: list[Holder]) -> None:
    budget = MemoryBudget(100)
    hold(budget, 90, holders)
    waiter = hold(budget, 80, holders, wait=False)
    assert not waiter.granted.wait(SETTLE_S)
    budget.resize(70)
    assert waiter.granted.wait(10)
    assert isinstance(waiter.error, OverBudget)
    assert budget.waiting == 0


async def test_no_deadlock_under_mixed_load() -> None:
    """Threads and tasks, random sizes up to the whole budget, some failing: all finish,
    the budget is never exceeded and ends empty."""
    budget = MemoryBudget(1000)
    rng = random.Random(10)
    peak = 0
    lock = threading.Lock()

    def use(nbytes: int, fail: bool) -> None:
        nonlocal peak
        with lock:
            peak = max(peak, budget.in_use)
        time.sleep(0.001)
        if fail:
            raise ValueError("damaged")

    def in_thread(nbytes: int, fail: bool) -> None:
        try:
            with budget.reserve(nbytes):
                use(nbytes, fail)
        except ValueError:
            pass

    async def in_task(nbytes: int, fail: bool) -> None:
        try:
            async with budget.reserve_async(nbytes):
                use(nbytes, fail)
                await asyncio.sleep(0.001)
        except ValueError:
            pass

    jobs = [(rng.choice([1, 10, 100, 400, 1000]), rng.random() < 0.2) for _ in range(200)]
    threads = [threading.Thread(target=in_thread, args=job) for job in jobs[:100]]
    for thread in threads:
        thread.start()
    await asyncio.wait_for(asyncio.gather(*(in_task(*job) for job in jobs[100:])), 60)
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert peak <= 1000
    assert budget.in_use == 0 and budget.waiting == 0
