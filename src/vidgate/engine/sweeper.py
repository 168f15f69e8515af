"""Finds work that nobody is doing and puts it back in the queue.

Runs at worker start and then every ``sweep_interval_s``. It is idempotent, so any
number of worker processes may sweep the same database.

1. Steps left ``doing`` by a dead worker (kill -9, lost host): retried.
2. Jobs to submit, waiting and finalizing jobs need no such sweeping: a claim whose
   submitter, poller or finalizer died becomes due again when its lease runs out
   (engine/due.py); rows with no due time at all are given one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import anyio
import structlog

from vidgate.db.claims import schedule_unscheduled
from vidgate.engine.context import EngineContext
from vidgate.engine.periodic import run_periodically

log = structlog.get_logger("vidgate.sweeper")


async def sweep_once(ctx: EngineContext) -> tuple[int, int]:
    manager = ctx.app.job_manager
    stalled = list(
        await manager.get_stalled_jobs(seconds_since_heartbeat=ctx.settings.stalled_after_s)
    )
    for job in stalled:
        await manager.retry_job(job)
    await manager.prune_stalled_workers(seconds_since_heartbeat=ctx.settings.stalled_after_s)
    async with ctx.db.begin() as conn:
        requeued = await schedule_unscheduled(conn)
    if stalled or requeued:
        log.info("sweeper.requeued", stalled_steps=len(stalled), lost_jobs=requeued)
    return len(stalled), requeued


def prune_scratch(directories: list[Path], *, older_than_s: float = 3600.0) -> int:
    """Remove what crashed steps left in scratch directories (partial downloads,
    half-written blobs). Only old entries: another process may be using fresh ones."""
    cutoff = time.time() - older_than_s
    removed = 0
    for directory in directories:
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            try:
                if entry.lstat().st_mtime >= cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
            except OSError:
                continue
    return removed


async def run_sweeper(ctx: EngineContext) -> None:
    scratch = [ctx.settings.data_dir / "tmp", ctx.settings.media_dir / ".tmp"]
    removed = await anyio.to_thread.run_sync(prune_scratch, scratch)
    if removed:
        log.info("sweeper.pruned_scratch", entries=removed)
    await run_periodically(
        lambda: sweep_once(ctx), ctx.settings.sweep_interval_s, log=log, error_event="sweeper.error"
    )
