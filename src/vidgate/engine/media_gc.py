"""Deleting media no job needs any more: the outputs and inputs of deleted videos, and
of videos past their project's retention (``tenants.retention_days``).

Two halves, each safe to cut short at any instant:

1. **Release** (one transaction per batch of jobs): a deleted or expired job's output
   rows go, ``media_deleted_at`` is set, and every blob it referred to is queued in
   ``blob_deletions``. The job row stays; an expired video's content answers 404
   ``video_expired``.
2. **Delete** (one transaction per blob): its row is locked ``FOR UPDATE``, and only if
   nothing refers to it (no output row; no unreleased job's input image, last frame or
   source video) its object is deleted, then its row and request. A kill -9 after the
   object went and before the commit leaves the row and the request: the next pass
   deletes the (missing) object again and finishes. A blob still referred to loses
   only its request.

Content addressing means a finalize (or a create) may store bytes that a deletion is
removing at that moment. So whoever records a reference holds the blob's row ``FOR
SHARE`` in the transaction that records it (``db/blobs.py`` ``hold_blobs``), then makes
sure the object exists, storing it again if it does not: either it holds the row first,
and the deletion then sees its reference; or the deletion finished first, and the
object is put back before the reference commits. Never a reference to a missing object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.blobs import (
    drop_deletion,
    forget_blob,
    hold_blobs,
    is_referenced,
    job_media_released,
    jobs_media_released,
    lock_for_deletion,
    release_due_jobs,
    request_deletions,
    requested_deletions,
)
from vidgate.engine.context import EngineContext
from vidgate.engine.periodic import run_periodically
from vidgate.media.previews import (
    SPRITESHEET_CONTENT_TYPE,
    THUMBNAIL_CONTENT_TYPE,
    VIDEO_CONTENT_TYPE,
)
from vidgate.media.storage import BlobStore, StoredBlob

log = structlog.get_logger("vidgate.media_gc")

_BATCH = 100


async def hold_stored(
    conn: AsyncConnection,
    store: BlobStore,
    blob: StoredBlob,
    content_type: str,
    source: Path | bytes,
) -> None:
    """Record ``blob`` (stored from ``source``) on ``conn``'s transaction so that no
    deletion can take it before that transaction commits; stored again if a deletion
    took it since it was stored."""
    await hold_blobs(conn, [(blob.sha256, blob.size, content_type)])
    await _restore_missing(store, [(blob, source)])


async def hold_outputs(
    conn: AsyncConnection,
    store: BlobStore,
    job_id: str,
    video: tuple[StoredBlob, Path],
    thumbnail: tuple[StoredBlob, Path] | None = None,
    spritesheet: tuple[StoredBlob, Path] | None = None,
) -> bool:
    """Before a job's output rows are written: hold the blobs stored, as
    ``hold_stored`` does (previews may come later, and be held then). False, holding
    nothing, when the job's media was released meanwhile (deleted while it
    finalized): its outputs must not be recorded, and its blobs are queued for
    deletion instead."""
    stored = [
        (item, content_type)
        for item, content_type in (
            (video, VIDEO_CONTENT_TYPE),
            (thumbnail, THUMBNAIL_CONTENT_TYPE),
            (spritesheet, SPRITESHEET_CONTENT_TYPE),
        )
        if item is not None
    ]
    if await job_media_released(conn, job_id):
        await request_deletions(conn, [blob.sha256 for (blob, _), _ in stored])
        return False
    await hold_blobs(conn, [(blob.sha256, blob.size, kind) for (blob, _), kind in stored])
    await _restore_missing(store, [item for item, _ in stored])
    return True


async def hold_jobs_videos(
    conn: AsyncConnection,
    store: BlobStore,
    videos: Mapping[str, Sequence[tuple[StoredBlob, Path]]],
) -> set[str]:
    """``hold_outputs`` for the videos of many jobs at once (a finalize write-back):
    every blob held in one hash-ordered pass, so that two write-backs sharing blobs
    never wait on each other in a cycle. Returns the jobs whose media was released
    meanwhile: their outputs must not be recorded, and their blobs are queued for
    deletion."""
    released = await jobs_media_released(conn, list(videos))
    if released:
        await request_deletions(conn, [blob.sha256 for job in released for blob, _ in videos[job]])
    kept = [item for job, items in videos.items() if job not in released for item in items]
    if kept:
        await hold_blobs(conn, [(blob.sha256, blob.size, VIDEO_CONTENT_TYPE) for blob, _ in kept])
        await _restore_missing(store, kept)
    return released


async def _restore_missing(
    store: BlobStore, stored: Sequence[tuple[StoredBlob, Path | bytes]]
) -> None:
    """Store again what a deletion took (rare); the checks run side by side (on S3,
    one HEAD each)."""
    present = await asyncio.gather(*(store.exists(blob.sha256) for blob, _ in stored))
    for (blob, source), there in zip(stored, present, strict=True):
        if there:
            continue
        log.info("media.restored", sha256=blob.sha256)
        if isinstance(source, Path):
            await store.put_file(source)
        else:
            await store.put_bytes(source)


async def sweep_media(ctx: EngineContext) -> tuple[int, int]:
    """One pass: release every due job, then delete every unreferenced blob queued.
    Returns (jobs released, objects deleted)."""
    released = 0
    while True:
        async with ctx.db.begin() as conn:
            ids = await release_due_jobs(conn, limit=_BATCH)
        released += len(ids)
        if len(ids) < _BATCH:
            break
    deleted = 0
    seen: set[str] = set()
    while True:
        async with ctx.db.connect() as conn:
            shas = [s for s in await requested_deletions(conn, limit=_BATCH) if s not in seen]
        if not shas:
            break
        seen.update(shas)
        for sha in shas:
            deleted += await _delete_if_unreferenced(ctx, sha)
    if released or deleted:
        log.info("media.swept", jobs_released=released, objects_deleted=deleted)
    return released, deleted


async def _delete_if_unreferenced(ctx: EngineContext, sha256: str) -> int:
    async with ctx.db.begin() as conn:
        held = await lock_for_deletion(conn, sha256)
        if held == "busy":
            return 0  # a reference is being recorded: the next pass decides
        if held == "gone" or await is_referenced(conn, sha256):
            await drop_deletion(conn, sha256)
            return 0
        await ctx.blobs.delete(sha256)
        await forget_blob(conn, sha256)
        return 1


async def run_media_sweeper(ctx: EngineContext) -> None:
    await run_periodically(
        lambda: sweep_media(ctx),
        ctx.settings.media_sweep_interval_s,
        log=log,
        error_event="media.sweep_error",
    )
