"""How much memory decoded images may take in this process at once.

A PNG of zeros is a few hundred KB on the wire and hundreds of MB decoded, and nothing
but the decode itself knows when it is done with that memory. Every full decode in
vidgate (an uploaded image's check, the sandbox's background) therefore reserves its
worst case here first, in bytes, and gives it back when the decoded pixels are freed.
The budget is one per process: the API's checks and the sandbox's renders run in one
process under ``vidgate serve``, and it is the process's memory that must stay bounded.

Waiting is fair enough for both sizes: a reservation that fits is granted at once,
even past older ones still waiting for more room, so small images do not queue behind
a large one unless the budget is full; but the oldest waiter is passed at most
``MAX_PASSES`` times, after which newcomers queue behind it. A reservation larger than
the whole budget is refused at once (``OverBudget``): it could never be granted.

Threads wait with ``reserve`` and event-loop tasks with ``reserve_async``, on the same
budget; ``run_in_thread`` is where decodes run, on a few threads of their own, so that
neither waiting nor decoding occupies anyio's shared worker threads.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread

__all__ = [
    "DEFAULT_IMAGE_MEMORY_BYTES",
    "MAX_PASSES",
    "MemoryBudget",
    "OverBudget",
    "image_memory",
    "run_in_thread",
    "set_image_memory_budget",
]

T = TypeVar("T")

DEFAULT_IMAGE_MEMORY_BYTES = 512 * 1024 * 1024
# How many later, smaller reservations may be granted ahead of the oldest waiter.
MAX_PASSES = 16
# Decodes release the GIL, so a few run in parallel; more would only wait on the
# budget or the cores, each thread with a malloc arena of its own.
DECODE_THREADS = min(4, max(2, os.cpu_count() or 2))


class OverBudget(Exception):
    """A reservation larger than the whole budget: it would wait forever."""

    def __init__(self, needed: int, capacity: int) -> None:
        super().__init__(f"{needed} bytes requested from a budget of {capacity} bytes")
        self.needed = needed
        self.capacity = capacity


@dataclass(eq=False)
class _Waiter:
    nbytes: int
    # Called without the budget's lock, once the waiter is granted or refused.
    wake: Callable[[], None] = lambda: None
    granted: bool = False
    refused: bool = False
    passed: int = 0


class MemoryBudget:
    """A thread-safe, byte-weighted limiter (see the module docstring)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a memory budget must be at least one byte")
        self._capacity = capacity
        self._used = 0
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._used

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def resize(self, capacity: int) -> None:
        """Change the capacity; waiters that can no longer fit at all are refused."""
        if capacity < 1:
            raise ValueError("a memory budget must be at least one byte")
        with self._lock:
            self._capacity = capacity
            refused = [w for w in self._waiters if w.nbytes > capacity]
            for waiter in refused:
                self._waiters.remove(waiter)
                waiter.refused = True
            woken = refused + self._grant_waiters()
        _wake_all(woken)

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` for the ``with`` block, blocking this thread until they fit."""
        event = threading.Event()
        waiter = _Waiter(nbytes, event.set)
        if not self._take_or_queue(waiter):
            event.wait()
            self._check_refused(waiter)
        try:
            yield
        finally:
            self.release(nbytes)

    @asynccontextmanager
    async def reserve_async(self, nbytes: int) -> AsyncIterator[None]:
        """Hold ``nbytes`` for the ``async with`` block, waiting without a thread."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        waiter = _Waiter(nbytes)

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(_resolve, woken)
            except RuntimeError:  # the loop is closed: nobody is left to use the grant
                self._abandon(waiter)

        waiter.wake = wake
        if not self._take_or_queue(waiter):
            try:
                await woken
            except BaseException:
                self._abandon(waiter)
                raise
            self._check_refused(waiter)
        try:
            yield
        finally:
            self.release(nbytes)

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._used -= nbytes
            woken = self._grant_waiters()
        _wake_all(woken)

    def _take_or_queue(self, waiter: _Waiter) -> bool:
        """Grant ``waiter`` at once (True) or queue it; refuse what can never fit."""
        if waiter.nbytes < 0:
            raise ValueError("cannot reserve a negative number of bytes")
        with self._lock:
            if waiter.nbytes > self._capacity:
                raise OverBudget(waiter.nbytes, self._capacity)
            if self._fits(waiter.nbytes) and self._may_pass():
                self._used += waiter.nbytes
                if self._waiters:
                    self._waiters[0].passed += 1
                return True
            self._waiters.append(waiter)
            return False

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiting task went away: leave the queue, or give back its grant."""
        with self._lock:
            if waiter.granted:
                waiter.granted = False
                self._used -= waiter.nbytes
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            # Either may let others in (a head that leaves no longer holds newcomers).
            woken = self._grant_waiters()
        _wake_all(woken)

    def _check_refused(self, waiter: _Waiter) -> None:
        if waiter.refused:
            raise OverBudget(waiter.nbytes, self._capacity)

    def _fits(self, nbytes: int) -> bool:
        return self._used + nbytes <= self._capacity

    def _may_pass(self) -> bool:
        return not self._waiters or self._waiters[0].passed < MAX_PASSES

    def _grant_waiters(self) -> list[_Waiter]:
        """Grant, oldest first, every waiter that fits and may go (the lock is held)."""
        granted: list[_Waiter] = []
        for waiter in list(self._waiters):
            head = waiter is self._waiters[0]
            if not self._fits(waiter.nbytes) or not (head or self._may_pass()):
                continue
            self._waiters.remove(waiter)
            self._used += waiter.nbytes
            waiter.granted = True
            granted.append(waiter)
            if not head:
                self._waiters[0].passed += 1
        return granted


def _wake_all(waiters: list[_Waiter]) -> None:
    for waiter in waiters:
        waiter.wake()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_process_budget = MemoryBudget(DEFAULT_IMAGE_MEMORY_BYTES)
_decode_threads = anyio.CapacityLimiter(DECODE_THREADS)


def image_memory() -> MemoryBudget:
    """This process's budget for decoded images."""
    return _process_budget


def set_image_memory_budget(nbytes: int) -> None:
    """Set this process's budget (``Settings.image_memory_bytes``, from runtime.py)."""
    _process_budget.resize(nbytes)


async def run_in_thread(func: Callable[[], T]) -> T:
    """Run ``func`` on one of the decode threads.

    If the caller is cancelled, this still waits for ``func`` to return, so a
    reservation held around it is never released while the decode runs on.
    """
    return await anyio.to_thread.run_sync(func, limiter=_decode_threads)
