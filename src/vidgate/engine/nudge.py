"""Upstream callbacks as hints: a callback makes vidgate read the job's upstream status
now rather than at its next scheduled poll, and that status read decides what happened.
Nothing in a callback is trusted, so a forged or repeated one costs at most an extra
status read.

A waiting job's next read is its row's ``next_poll_at`` (engine/poller.py). A nudge
moves it to now and wakes the pollers; it never adds a second read schedule, so
repeated callbacks cannot fork anything. A job backing off after an upstream error keeps
its delay (the provider may have asked for it). A read in flight when the nudge lands
cannot undo it: its write-back applies only while the row still holds the read's lease.
"""

from __future__ import annotations

import structlog

from vidgate.db.claims import make_poll_due, notify_pollers
from vidgate.engine.context import EngineContext

log = structlog.get_logger("vidgate.engine")


async def request_nudge(ctx: EngineContext, job_id: str) -> bool:
    """Ask for the job's upstream status to be read now; False when the job is not
    waiting on its upstream (unknown, not submitted yet, or already past it)."""
    async with ctx.db.begin() as conn:
        moved = await make_poll_due(conn, job_id)
        if moved:
            await notify_pollers(conn)
    if moved is None:
        return False
    log.info("job.nudged", job_id=job_id, pulled_forward=moved)
    return True
