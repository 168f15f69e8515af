"""The finalize step: a job that succeeded upstream, its results stored and the job
completed.

A job is ``completed`` as soon as its videos are stored and probed; their thumbnails and
spritesheets follow (engine/previews.py), so a burst of finishes waits on nothing but
the download, a probe of each file's header and one write per video. What a completion
writes is one transaction: the videos' rows (held against a concurrent deletion of the
same bytes, engine/media_gc.py), the outputs, the settled cost, the state and the
steps that follow (webhook, previews). Each video is durable (the store syncs it)
before that transaction commits.

Safe to run again after a crash at any point: outputs are content-addressed and
recorded once per (job, index), so a re-run skips what is already stored; it works in a
scratch directory of the job's own, which a re-run empties first.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from vidgate.core.errors import InvalidParameter
from vidgate.core.jobs import JobRecord, JobState, OutputRecord
from vidgate.db.jobs import db_now, get_job_and_outputs, insert_output, transition
from vidgate.engine import steps
from vidgate.engine.media_gc import hold_outputs
from vidgate.engine.settlement import settled_cost
from vidgate.engine.webhooks import enqueue_event
from vidgate.media.probe import probe_video
from vidgate.media.storage import StoredBlob
from vidgate.providers.base import ProviderError, UpstreamTask

if TYPE_CHECKING:
    from vidgate.engine.runner import JobRunner

log = structlog.get_logger("vidgate.engine")

_FINALIZING = (JobState.FINALIZING,)


@dataclass(frozen=True, slots=True)
class _Stored:
    output: OutputRecord
    blob: StoredBlob
    path: Path  # what it was stored from: stored again if a deletion took it meanwhile


async def finalize(runner: JobRunner, job_id: str) -> None:
    ctx = runner.ctx
    async with ctx.db.connect() as conn:
        found = await get_job_and_outputs(conn, job_id)
    if found is None:
        return
    job, outputs = found
    if job.state != JobState.FINALIZING or job.upstream_id is None:
        return
    if len(outputs) >= job.spec.n:
        await _complete(runner, job, outputs, [])
        return
    tmp = await _scratch(runner, job_id)
    try:
        new = await _store_outputs(runner, job, {o.index for o in outputs}, tmp)
        if new is not None:
            await _complete(runner, job, outputs, new)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)


async def _complete(
    runner: JobRunner, job: JobRecord, outputs: list[OutputRecord], new: list[_Stored]
) -> None:
    """Record the new outputs and complete the job, in one transaction."""
    ctx = runner.ctx
    async with ctx.db.begin() as conn:
        for item in new:
            # The video's blob held against a deletion (engine/media_gc.py); none when
            # the job was deleted while it finalized.
            if not await hold_outputs(conn, ctx.blobs, job.id, (item.blob, item.path)):
                return
            await insert_output(conn, item.output)
        outputs = sorted([*outputs, *(item.output for item in new)], key=lambda o: o.index)
        # Settled in this transaction (db/jobs.py ``transition``), at the real cost.
        cost = await settled_cost(ctx, conn, job, outputs)
        done = await transition(
            conn,
            job.id,
            from_states=_FINALIZING,
            to=JobState.COMPLETED,
            progress=100,
            completed_at=db_now(),
            cost=cost,
            step_attempts=0,
        )
        if done is None:
            return
        await enqueue_event(ctx, conn, done)
        await steps.enqueue(ctx.app, conn, steps.PREVIEWS, job.id, lock=steps.previews_lock(job.id))
    log.info("job.completed", job_id=job.id, outputs=job.spec.n, duration_s=_since(job))


async def _scratch(runner: JobRunner, job_id: str) -> Path:
    """The job's scratch directory, empty. A finalize cut short (kill -9) left its
    files there, and maybe a partial blob write in the store: this run, the job's
    next, removes both first. Steps of a job never run side by side (the job's
    lock, engine/steps.py), so no other run is using them."""
    tmp = runner.ctx.settings.data_dir / "tmp" / job_id
    await asyncio.to_thread(_empty_dir, tmp)
    await runner.ctx.blobs.discard_partial(job_id)
    return tmp


def _empty_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


async def _store_outputs(
    runner: JobRunner, job: JobRecord, stored: set[int], tmp: Path
) -> list[_Stored] | None:
    """Download the job's outputs into ``tmp``, probe and store those not stored yet:
    the outputs to record. None when the download failed (a retry scheduled, or the
    job failed) or a result is not a video."""
    assert job.upstream_id is not None
    ctx = runner.ctx
    task = UpstreamTask(job.upstream_id, job.spec, job.upstream_model, job.upstream_state or {})
    try:
        paths = await runner.ctx.providers[job.provider].fetch(task, tmp)
    except ProviderError as error:
        if error.retryable:
            await runner._retry_later(
                job.id, steps.FINALIZE, _FINALIZING, error, job.step_attempts + 1
            )
            return None
        async with ctx.db.begin() as conn:
            await runner._fail(conn, job.id, _FINALIZING, error.code, error.message, cancel=False)
        return None
    loop = asyncio.get_running_loop()
    new: list[_Stored] = []
    for index, path in enumerate(paths):
        if index in stored:
            continue
        try:
            # On the media threads (Settings.media_threads): FFmpeg's work, off the loop.
            info = await loop.run_in_executor(ctx.media, partial(probe_video, path))
        except InvalidParameter as exc:
            # The provider's result is not a video we can read: its failure, not
            # vidgate's (which internal_error names).
            async with ctx.db.begin() as conn:
                await runner._fail(
                    conn,
                    job.id,
                    _FINALIZING,
                    "upstream_failed",
                    f"{job.provider}: the result is not a playable video ({exc.message})",
                    cancel=False,
                )
            return None
        blob = await ctx.blobs.put_file(path, owner=job.id)
        output = OutputRecord(
            job_id=job.id,
            index=index,
            video_sha256=blob.sha256,
            thumbnail_sha256=None,
            spritesheet_sha256=None,
            width=info.width,
            height=info.height,
            fps=info.fps,
            duration=info.duration,
            size_bytes=info.size_bytes,
        )
        new.append(_Stored(output, blob, path))
    return new


def _since(job: JobRecord) -> float:
    return round(time.time() - job.created_at.timestamp(), 3)
