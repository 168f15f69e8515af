"""Stored files (media/storage.py keeps the bytes): their content types by hash, and
the bookkeeping of their deletion once no job refers to them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import blob_deletions, blobs, job_outputs, jobs


async def record_blob(conn: AsyncConnection, sha256: str, size: int, content_type: str) -> None:
    await conn.execute(
        pg_insert(blobs)
        .values(sha256=sha256, size=size, content_type=content_type)
        .on_conflict_do_nothing()
    )


async def get_blob_content_type(conn: AsyncConnection, sha256: str) -> str | None:
    value = await conn.scalar(sa.select(blobs.c.content_type).where(blobs.c.sha256 == sha256))
    return str(value) if value is not None else None


# --- deletion (engine/media_gc.py) -----------------------------------------------------
# A blob's object is deleted only by a transaction that holds its row FOR UPDATE and has
# found nothing referring to it; whoever adds a reference (a finalize, a create) first
# holds the row FOR SHARE, and so waits for that transaction or makes it wait.

_INPUT_REFS = ("image", "last_frame", "source")

# Each arm is answered by an index of migration 0017.
_REFERENCED = sa.text(
    "SELECT EXISTS (SELECT 1 FROM job_outputs WHERE video_sha256 = :sha)"
    " OR EXISTS (SELECT 1 FROM job_outputs WHERE thumbnail_sha256 = :sha)"
    " OR EXISTS (SELECT 1 FROM job_outputs WHERE spritesheet_sha256 = :sha)"
    + "".join(
        f" OR EXISTS (SELECT 1 FROM jobs WHERE ((spec -> '{ref}') ->> 'sha256') = :sha"
        " AND media_deleted_at IS NULL)"
        for ref in _INPUT_REFS
    )
)


async def hold_blobs(conn: AsyncConnection, found: Sequence[tuple[str, int, str]]) -> None:
    """Record the blobs ``(sha256, size, content_type)`` that are new, and hold every
    one's row FOR SHARE until the transaction ends: no deletion of them runs meanwhile.
    The caller then checks that the objects exist (a deletion may have removed one
    after the caller stored it, and before this lock). In hash order, so that two
    callers holding the same blobs never wait on each other in a cycle."""
    pending = {sha: (size, content_type) for sha, size, content_type in found}
    for _ in range(8):
        ordered = sorted(pending)
        rows = [
            {"sha256": s, "size": pending[s][0], "content_type": pending[s][1]} for s in ordered
        ]
        await conn.execute(pg_insert(blobs).values(rows).on_conflict_do_nothing())
        held = await conn.scalars(
            sa.select(blobs.c.sha256)
            .where(blobs.c.sha256.in_(ordered))
            .order_by(blobs.c.sha256)
            .with_for_update(read=True)
        )
        for sha in held:
            pending.pop(sha, None)
        if not pending:
            return
        # Deleted by a sweep that committed between the insert and the lock: again.
    raise RuntimeError(f"blobs {sorted(pending)} could not be held")


async def job_media_released(conn: AsyncConnection, job_id: str) -> bool:
    """Whether the job's media was already released (deleted or expired), holding the
    job's row FOR KEY SHARE: a release waits until the caller's outputs are recorded."""
    released = await conn.scalar(
        sa.select(jobs.c.media_deleted_at.isnot(None))
        .where(jobs.c.id == job_id)
        .with_for_update(key_share=True)
    )
    return bool(released)


async def jobs_media_released(conn: AsyncConnection, job_ids: Sequence[str]) -> set[str]:
    """``job_media_released`` for many jobs in one statement (rows held in id order):
    the ids of those whose media was released."""
    rows = await conn.scalars(
        sa.select(jobs.c.id)
        .where(jobs.c.id.in_(sorted(job_ids)), jobs.c.media_deleted_at.isnot(None))
        .order_by(jobs.c.id)
        .with_for_update(key_share=True)
    )
    return set(rows)


async def request_deletions(conn: AsyncConnection, shas: Iterable[str]) -> None:
    wanted = sorted(set(shas))
    if wanted:
        await conn.execute(
            pg_insert(blob_deletions)
            .values([{"sha256": sha} for sha in wanted])
            .on_conflict_do_nothing()
        )


async def release_due_jobs(conn: AsyncConnection, *, limit: int) -> list[str]:
    """Release the media of up to ``limit`` deleted or expired jobs (their output rows
    go, their blobs are queued for deletion); returns their ids. Jobs another
    transaction holds are left for the next pass."""
    pending = jobs.c.media_deleted_at.is_(None)
    ids: list[str] = []
    for due in (
        sa.and_(jobs.c.deleted_at.isnot(None), pending),
        sa.and_(jobs.c.expires_at.isnot(None), jobs.c.expires_at <= sa.func.now(), pending),
    ):
        found = await conn.scalars(
            sa.select(jobs.c.id)
            .where(due)
            .limit(limit - len(ids))
            .with_for_update(skip_locked=True)
        )
        ids.extend(found)
        if len(ids) >= limit:
            break
    if not ids:
        return []
    specs = await conn.scalars(
        sa.update(jobs)
        .where(jobs.c.id.in_(ids))
        .values(media_deleted_at=sa.func.now())
        .returning(jobs.c.spec)
    )
    shas = [
        str(spec[ref]["sha256"])
        for spec in specs
        for ref in _INPUT_REFS
        if isinstance(spec.get(ref), dict) and spec[ref].get("sha256")
    ]
    outputs = await conn.execute(
        sa.delete(job_outputs)
        .where(job_outputs.c.job_id.in_(ids))
        .returning(
            job_outputs.c.video_sha256,
            job_outputs.c.thumbnail_sha256,
            job_outputs.c.spritesheet_sha256,
        )
    )
    # Previews may not be made yet (NULL): only the hashes there are.
    shas.extend(sha for row in outputs for sha in row if sha is not None)
    await request_deletions(conn, shas)
    return ids


async def requested_deletions(conn: AsyncConnection, *, limit: int) -> list[str]:
    found = await conn.scalars(
        sa.select(blob_deletions.c.sha256).order_by(blob_deletions.c.requested_at).limit(limit)
    )
    return list(found)


async def lock_for_deletion(conn: AsyncConnection, sha256: str) -> Literal["held", "gone", "busy"]:
    """Take the blob's row FOR UPDATE: ``held``; ``gone`` when there is no row (its
    object is not ours to delete: a write may be on its way to record it); ``busy``
    when another transaction holds it (a reference being added): try later."""
    held = await conn.scalar(
        sa.select(blobs.c.sha256).where(blobs.c.sha256 == sha256).with_for_update(skip_locked=True)
    )
    if held is not None:
        return "held"
    exists = await conn.scalar(sa.select(sa.literal(1)).where(blobs.c.sha256 == sha256))
    return "gone" if exists is None else "busy"


async def is_referenced(conn: AsyncConnection, sha256: str) -> bool:
    return bool(await conn.scalar(_REFERENCED, {"sha": sha256}))


async def forget_blob(conn: AsyncConnection, sha256: str) -> None:
    """The blob's row and its deletion request, once its object is gone."""
    await conn.execute(sa.delete(blobs).where(blobs.c.sha256 == sha256))
    await drop_deletion(conn, sha256)


async def drop_deletion(conn: AsyncConnection, sha256: str) -> None:
    await conn.execute(sa.delete(blob_deletions).where(blob_deletions.c.sha256 == sha256))
