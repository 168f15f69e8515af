"""The loop of the worker's housekeeping tasks (sweeper, queue statistics): run a step,
log what it raised, wait, again, until cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from vidgate.db.health import log_failure


async def run_periodically(
    step: Callable[[], Awaitable[object]], interval_s: float, *, log: Any, error_event: str
) -> None:
    """Run ``step`` every ``interval_s``. An exception is logged as ``error_event`` and
    the loop goes on: one failed pass must not end the worker's housekeeping."""
    while True:
        try:
            await step()
        except Exception as exc:
            log_failure(log, error_event, exc)
        await asyncio.sleep(interval_s)
