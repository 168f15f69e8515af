"""The loop of the worker's periodic tasks (sweeper, queue statistics, late results,
housekeeping): run a step, log what it raised, wait, again, until cancelled or, given a
``Shutdown``, until it is requested (a pass under way then finishes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from vidgate.db.health import log_failure
from vidgate.engine.shutdown import Shutdown


async def run_periodically(
    step: Callable[[], Awaitable[object]],
    interval_s: float,
    *,
    log: Any,
    error_event: str,
    shutdown: Shutdown | None = None,
) -> None:
    """Run ``step`` every ``interval_s``. An exception is logged as ``error_event`` and
    the loop goes on: one failed pass must not end the worker's housekeeping."""
    while shutdown is None or not shutdown.requested:
        try:
            await step()
        except Exception as exc:
            log_failure(log, error_event, exc)
        if shutdown is None:
            await asyncio.sleep(interval_s)
        else:
            await shutdown.sleep(interval_s)
