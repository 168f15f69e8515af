"""Thumbnails and spritesheets, made after the job has completed.

A job is completed as soon as its video is stored and probed (engine/finalize.py): a
burst of finishes must not wait on decoding frames. Its previews follow, made by
whichever comes first: the previews step (a procrastinate task on the previews queue,
enqueued for a whole write-back of completions at once, which waits while finalizes
are due: engine/finalizer.py), or the first
request for one (api/routes/videos.py, through services/media.py). Either way the
result is recorded on the output, so neither makes it again; the two racing is
harmless, since blobs are content-addressed and the first recording is kept
(db/jobs.py ``set_previews``). Within a process, concurrent requests for one output
share one making.

The stored video is read through the blob store's protocol (``copy_to`` a scratch
file), so a store with no local files (S3) serves the same. The previews' blobs are
held against a concurrent deletion of the same bytes as finalize's are
(engine/media_gc.py).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from functools import partial
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.errors import NotFound
from vidgate.core.jobs import OutputRecord
from vidgate.db.blobs import hold_blobs, job_media_released, request_deletions
from vidgate.db.finalize_claims import finalize_due
from vidgate.db.health import log_failure
from vidgate.db.jobs import get_job, get_outputs, set_previews
from vidgate.media.previews import SPRITESHEET_CONTENT_TYPE, THUMBNAIL_CONTENT_TYPE, make_previews
from vidgate.media.storage import BlobStore, StoredBlob

log = structlog.get_logger("vidgate.engine")

_Key = tuple[str, int]
# While finalizes are due and unclaimed, the previews step looks again this often; past the
# longest wait it goes ahead (a queue never empty must not starve previews for ever).
_RECHECK_S = 1.0
_MAX_WAIT_S = 600.0


def has_previews(output: OutputRecord) -> bool:
    return output.thumbnail_sha256 is not None and output.spritesheet_sha256 is not None


class PreviewMaker:
    """Makes and records an output's previews, once per output at a time in this
    process (one per process, shared by the previews step and the API)."""

    def __init__(self, blobs: BlobStore, db: AsyncEngine, scratch: Path) -> None:
        self._blobs = blobs
        self._db = db
        self._scratch = scratch
        self._making: dict[_Key, asyncio.Task[OutputRecord]] = {}

    async def ensure(
        self, output: OutputRecord, *, scratch: Path | None = None, owner: str | None = None
    ) -> OutputRecord:
        """``output`` with its previews: as recorded, or made now (in ``scratch``, its
        writes to the store tagged ``owner``, where the caller cleans up after a kill;
        else in a directory of its own, which the sweeper removes once old). A caller
        that gives up (a request cancelled) leaves the making to finish for the others."""
        if has_previews(output):
            return output
        key = (output.job_id, output.index)
        task = self._making.get(key)
        if task is None:
            scratch = scratch or self._scratch / f"previews-{secrets.token_hex(8)}"
            making = self._make(output, scratch, owner)
            task = asyncio.create_task(making, name=f"vidgate-previews-{key}")
            self._making[key] = task
            task.add_done_callback(partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: _Key, task: asyncio.Task[OutputRecord]) -> None:
        if self._making.get(key) is task:
            del self._making[key]
        if not task.cancelled():
            task.exception()  # seen, even when every waiter gave up

    async def for_job(self, job_id: str) -> None:
        """The previews step: make those the job's outputs lack, once no finalize is
        due (a burst of finishes goes first). A job deleted meanwhile is left
        alone. A failure is logged, not raised: the job stays completed, and the first
        request for a preview makes it."""
        try:
            await self._after_finalizes()
            await self._for_job(job_id)
        except Exception as exc:
            log_failure(log, "job.previews_failed", exc, job_id=job_id)

    async def _after_finalizes(self) -> None:
        waited = 0.0
        while waited < _MAX_WAIT_S:
            async with self._db.connect() as conn:
                if not await finalize_due(conn):
                    return
            await asyncio.sleep(_RECHECK_S)
            waited += _RECHECK_S

    async def _for_job(self, job_id: str) -> None:
        async with self._db.connect() as conn:
            job = await get_job(conn, job_id)
            outputs = await get_outputs(conn, job_id) if job is not None else []
        # Like finalize's: a run cut short (kill -9) left its files here and maybe a
        # partial write in the store; the step's next run (one at a time per job, its
        # lock) removes both first.
        scratch, owner = self._scratch / f"{job_id}-previews", f"{job_id}-previews"
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
        await self._blobs.discard_partial(owner)
        if all(has_previews(output) for output in outputs):
            return
        try:
            for output in outputs:
                await self.ensure(output, scratch=scratch / str(output.index), owner=owner)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)

    async def _make(self, output: OutputRecord, scratch: Path, owner: str | None) -> OutputRecord:
        try:
            await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
            video = scratch / "video"
            await self._blobs.copy_to(output.video_sha256, video)
            thumbnail, spritesheet = scratch / "thumb.webp", scratch / "sprites.jpg"
            # Not on the media threads: a finalize's probe never queues behind this.
            await asyncio.to_thread(
                make_previews, video, thumbnail=thumbnail, spritesheet=spritesheet
            )
            # Durable before the row that names them commits (put_file syncs).
            made = [
                (
                    await self._blobs.put_file(thumbnail, owner=owner),
                    THUMBNAIL_CONTENT_TYPE,
                    thumbnail,
                ),
                (
                    await self._blobs.put_file(spritesheet, owner=owner),
                    SPRITESHEET_CONTENT_TYPE,
                    spritesheet,
                ),
            ]
            done = await self._record(output, made)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
        if done is None:
            raise NotFound(f"video {output.job_id} has no output {output.index}")
        log.info("job.previews", job_id=output.job_id, index=output.index)
        return done

    async def _record(
        self, output: OutputRecord, made: list[tuple[StoredBlob, str, Path]]
    ) -> OutputRecord | None:
        """Record the previews on the output, their blobs held against a deletion of the
        same bytes as finalize holds a video's (engine/media_gc.py): stored again from
        ``made``'s files if a deletion took them meanwhile. Blobs nothing records (the
        job's media released meanwhile, or another making recorded other bytes first)
        are queued for deletion."""
        shas = {blob.sha256 for blob, _, _ in made}
        async with self._db.begin() as conn:
            if await job_media_released(conn, output.job_id):
                await request_deletions(conn, shas)
                return None
            await hold_blobs(conn, [(blob.sha256, blob.size, kind) for blob, kind, _ in made])
            for blob, _, path in made:
                if not await self._blobs.exists(blob.sha256):
                    await self._blobs.put_file(path)
            thumb, sprites = (blob.sha256 for blob, _, _ in made)
            done = await set_previews(
                conn, output.job_id, output.index, thumbnail=thumb, spritesheet=sprites
            )
            recorded = set() if done is None else {done.thumbnail_sha256, done.spritesheet_sha256}
            await request_deletions(conn, shas - recorded)
        return done
