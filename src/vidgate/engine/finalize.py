"""The finalize step: a job that succeeded upstream, its results stored and the job
completed, many jobs at a time (engine/finalizer.py claims them from the job rows).

A job is ``completed`` as soon as its videos are stored and probed; their thumbnails and
spritesheets follow (engine/previews.py), so a burst of finishes waits on nothing but
the download, a probe of each file's header and its share of one write-back. A
write-back is one transaction for a batch of jobs: for each, the videos' rows (held
against a concurrent deletion of the same bytes, engine/media_gc.py), the outputs, the
settled cost, the state and the webhook, each job under a savepoint of its own (one
that fails is retried later and holds back none of the others); then the previews
steps of all of them in one statement. Each video is durable (the store syncs it)
before that transaction commits.

Safe to run again after a crash at any point: outputs are content-addressed and
recorded once per (job, index), so a re-run skips what is already stored; the move to
``completed`` is conditional, so only one run completes the job and settles it; it
works in a scratch directory of the job's own, which a re-run empties first and a
completed write-back removes.
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
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.errors import InvalidParameter
from vidgate.core.jobs import JobRecord, JobState, OutputRecord
from vidgate.core.pricing import PriceOverride
from vidgate.db.finalize_claims import claim_finalize, lock_finalizing
from vidgate.db.jobs import (
    complete_finalized,
    db_now,
    insert_output,
    insert_outputs,
    transition,
)
from vidgate.engine import steps
from vidgate.engine.media_gc import hold_jobs_videos
from vidgate.engine.settlement import settled_cost
from vidgate.engine.webhooks import enqueue_event, enqueue_events
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


@dataclass(frozen=True, slots=True)
class FinalizeClaim:
    """A finalizing job a finalizer has claimed, with the outputs already recorded."""

    job: JobRecord
    outputs: list[OutputRecord]


@dataclass(frozen=True, slots=True)
class Finalized:
    """A claimed job's results, stored and probed: what its write-back records.
    ``scratch`` (None: nothing was downloaded) is removed once they are written."""

    claim: FinalizeClaim
    new: list[_Stored]
    scratch: Path | None


async def finalize(runner: JobRunner, job_id: str) -> None:
    """Finalize one job now, due or not (the finalizer does this in batches)."""
    async with runner.ctx.db.begin() as conn:
        found = await claim_finalize(conn, job_id, lease_s=runner.ctx.settings.stalled_after_s)
    if found is None:
        return
    result = await store(runner, FinalizeClaim(*found))
    if result is not None:
        await complete(runner, [result])


async def store(runner: JobRunner, claim: FinalizeClaim) -> Finalized | None:
    """Download, probe and store a claimed job's outputs not stored yet: the results to
    write back; None when the job cannot complete now (its retry or failure written
    here). Its scratch directory is kept for the write-back, which may have to store a
    video again (engine/media_gc.py)."""
    job, outputs = claim.job, claim.outputs
    if job.upstream_id is None:
        return None
    if len(outputs) >= job.spec.n:
        return Finalized(claim, [], None)
    tmp = await _scratch(runner, job.id)
    new: list[_Stored] | None = None
    try:
        new = await _store_outputs(runner, job, {o.index for o in outputs}, tmp)
    finally:
        if new is None:
            await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)
    return None if new is None else Finalized(claim, new, tmp)


async def complete(runner: JobRunner, results: list[Finalized]) -> None:
    """Record a batch of jobs' outputs and complete them, in one transaction. A job no
    longer finalizing (cancelled, or completed by another run after a lease ran out)
    is left as it is; one whose write fails is retried later (engine/runner.py
    ``step_failed``)."""
    if not results:
        return
    ctx = runner.ctx
    completed: list[JobRecord] = []
    failed: list[tuple[str, Exception]] = []
    async with ctx.db.begin() as conn:
        live = await lock_finalizing(conn, sorted({r.claim.job.id for r in results}))
        batch: dict[str, Finalized] = {}
        for result in results:
            # Twice in a batch (a claim taken again after its lease ran out): the
            # first one writes it.
            if result.claim.job.id in live:
                batch.setdefault(result.claim.job.id, result)
        # The videos' blobs held against a deletion (engine/media_gc.py); none recorded
        # for a job deleted while it finalized.
        released = await hold_jobs_videos(
            conn,
            ctx.blobs,
            {job_id: [(i.blob, i.path) for i in r.new] for job_id, r in batch.items()},
        )
        todo = [result for job_id, result in sorted(batch.items()) if job_id not in released]
        prices: dict[tuple[str, str], PriceOverride | None] = {}
        try:
            async with conn.begin_nested():
                completed = await _complete_all(runner, conn, todo, prices)
        except Exception as exc:
            # One job the batch's statements could not write must not hold back the
            # others: each again, under a savepoint of its own.
            log.warning("finalize.batch_failed", jobs=len(todo), error=str(exc)[:300])
            completed = []
            for result in todo:
                try:
                    async with conn.begin_nested():
                        done = await _complete_one(runner, conn, result, prices)
                except Exception as exc:
                    failed.append((result.claim.job.id, exc))
                    continue
                if done is not None:
                    completed.append(done)
        await steps.enqueue_many(
            ctx.app, conn, steps.PREVIEWS, [j.id for j in completed], lock=steps.previews_lock
        )
    # Committed: the status reads held for these jobs answer now (engine/status_hold.py).
    ctx.holds.wake(job.id for job in completed)
    # Only once written: a write-back tried again may need the files (a kill -9 before
    # this leaves them for the job's next run, or the sweeper, to remove).
    await asyncio.to_thread(_remove, [r.scratch for r in results if r.scratch is not None])
    for job in completed:
        log.info("job.completed", job_id=job.id, outputs=job.spec.n, duration_s=_since(job))
    for job_id, error in failed:
        await runner.step_failed(steps.FINALIZE, job_id, error)


async def _complete_all(
    runner: JobRunner,
    conn: AsyncConnection,
    results: list[Finalized],
    prices: dict[tuple[str, str], PriceOverride | None],
) -> list[JobRecord]:
    """The write-back of a batch, its videos held already, in a statement per table:
    the outputs, the state changes (settled in the ledger at the real cost) and the
    webhooks. The jobs completed (those still finalizing)."""
    ctx = runner.ctx
    costs = [
        (
            result.claim.job.id,
            await settled_cost(ctx, conn, result.claim.job, _outputs(result), prices),
        )
        for result in results
    ]
    await insert_outputs(conn, [item.output for result in results for item in result.new])
    completed = await complete_finalized(conn, costs)
    await enqueue_events(ctx, conn, completed)
    return completed


async def _complete_one(
    runner: JobRunner,
    conn: AsyncConnection,
    result: Finalized,
    prices: dict[tuple[str, str], PriceOverride | None],
) -> JobRecord | None:
    """One job's part of a write-back, its videos held already: the job as completed,
    or None when it is no longer finalizing."""
    ctx = runner.ctx
    job = result.claim.job
    for item in result.new:
        await insert_output(conn, item.output)
    # Settled in this transaction (db/jobs.py ``transition``), at the real cost.
    cost = await settled_cost(ctx, conn, job, _outputs(result), prices)
    done = await transition(
        conn,
        job.id,
        from_states=_FINALIZING,
        to=JobState.COMPLETED,
        progress=100,
        completed_at=db_now(),
        cost=cost,
        step_attempts=0,
        next_poll_at=None,
    )
    if done is not None:
        await enqueue_event(ctx, conn, done)
    return done


def _outputs(result: Finalized) -> list[OutputRecord]:
    """The job's outputs once its write-back is done, in index order."""
    return sorted(
        [*result.claim.outputs, *(item.output for item in result.new)], key=lambda o: o.index
    )


def _remove(directories: list[Path]) -> None:
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


async def _scratch(runner: JobRunner, job_id: str) -> Path:
    """The job's scratch directory, empty. A finalize cut short (kill -9) left its
    files there, and maybe a partial blob write in the store: this run, the job's
    next, removes both first. A job's finalizes never run side by side (its claim's
    lease, renewed while it runs), so no other run is using them."""
    tmp = runner.ctx.settings.data_dir / "tmp" / job_id
    # Side by side: each is a thread's turn (or, on S3, a listing), and a burst of
    # finalizes queues for those.
    await asyncio.gather(
        asyncio.to_thread(_empty_dir, tmp), runner.ctx.blobs.discard_partial(job_id)
    )
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
