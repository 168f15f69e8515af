"""Deleting media: a deleted or expired video's objects go once nothing refers to them,
and never one that something still does, whatever runs beside the deletion (a
finalize storing the same content) and wherever a deletion is cut short.

On the local store (the deletion logic is the store's protocol; tests/integration/
test_s3_blob_store.py and tests/e2e/test_s3_storage.py run S3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.conftest import cli, make_database
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.jobs import OutputRecord
from vidgate.core.spec import VideoRequest
from vidgate.db.blobs import forget_blob, is_referenced, lock_for_deletion, release_due_jobs
from vidgate.db.jobs import insert_output
from vidgate.engine.media_gc import hold_outputs, sweep_media
from vidgate.engine.service import Principal
from vidgate.media.storage import StoredBlob
from vidgate.runtime import Runtime
from vidgate.services.retention import set_retention


@pytest.fixture(scope="module")
def database(pg_server: str) -> str:
    return make_database(pg_server)


@pytest.fixture(scope="module")
async def rt(database: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    """One runtime for the module (each test's content is its own, and each test ends
    with nothing left to sweep)."""
    async with runtime_on(database, tmp_path_factory.mktemp("gc")) as runtime:
        yield runtime


@pytest.fixture
async def alice(rt: Runtime) -> Principal:
    """A project of the test's own."""
    async with rt.db.begin() as conn:
        return await add_caller(conn, f"alice{uuid.uuid4().hex[:8]}")


async def _job(rt: Runtime, principal: Principal) -> str:
    job = await rt.jobs.create(
        principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    )
    return job.id


async def _files(rt: Runtime, tmp: Path, *contents: bytes) -> list[tuple[StoredBlob, Path]]:
    """``contents`` stored as a finalize stores its files (which stay, like its scratch)."""
    stored = []
    for i, data in enumerate(contents):
        path = tmp / f"{i}-{data.hex()}"
        await asyncio.to_thread(path.write_bytes, data)
        stored.append((await rt.engine.blobs.put_file(path), path))
    return stored


async def _complete(rt: Runtime, job_id: str, tmp: Path, *contents: bytes) -> list[str]:
    """What a finalize does with outputs of ``contents`` (video, thumbnail, sprites),
    then the move to completed. Returns their hashes."""
    video, thumb, sprites = await _files(rt, tmp, *contents)
    async with rt.db.begin() as conn:
        assert await hold_outputs(conn, rt.engine.blobs, job_id, video, thumb, sprites)
        await insert_output(conn, _output(job_id, video[0], thumb[0], sprites[0]))
        await conn.execute(
            sa.text("UPDATE jobs SET state = 'completed', completed_at = now() WHERE id = :id"),
            {"id": job_id},
        )
    return [video[0].sha256, thumb[0].sha256, sprites[0].sha256]


def _output(job_id: str, video: StoredBlob, thumb: StoredBlob, sprites: StoredBlob) -> OutputRecord:
    return OutputRecord(
        job_id, 0, video.sha256, thumb.sha256, sprites.sha256, 320, 240, 8.0, 1.0, video.size
    )


async def _on_disk(rt: Runtime, sha: str) -> bool:
    return await rt.engine.blobs.exists(sha)


async def _rows(rt: Runtime, table: str) -> set[str]:
    async with rt.db.connect() as conn:
        return set(await conn.scalars(sa.text(f"SELECT sha256 FROM {table}")))


async def test_a_deleted_videos_objects_go_unless_another_job_shares_them(
    rt: Runtime, alice: Principal, tmp_path: Path
) -> None:
    first, second = await _job(rt, alice), await _job(rt, alice)
    shared, thumb1, sprites1 = await _complete(rt, first, tmp_path, b"V", b"T1", b"S1")
    _, thumb2, sprites2 = await _complete(rt, second, tmp_path, b"V", b"T2", b"S2")
    await rt.jobs.delete(alice, first)
    # Nothing goes before the sweep: the DELETE only marks the job.
    assert await _on_disk(rt, thumb1)
    assert await sweep_media(rt.engine) == (1, 2)
    for sha in (thumb1, sprites1):
        assert not await _on_disk(rt, sha)
    for sha in (shared, thumb2, sprites2):
        assert await _on_disk(rt, sha)
    assert await _rows(rt, "blobs") >= {shared, thumb2, sprites2}
    assert not await _rows(rt, "blobs") & {thumb1, sprites1}
    assert await _rows(rt, "blob_deletions") == set()
    await rt.jobs.delete(alice, second)
    assert await sweep_media(rt.engine) == (1, 3)
    assert not await _on_disk(rt, shared)
    assert not await _rows(rt, "blobs") & {shared, thumb2, sprites2}
    assert await sweep_media(rt.engine) == (0, 0)


async def test_a_finalize_that_stores_content_being_deleted_keeps_it(
    rt: Runtime, alice: Principal, tmp_path: Path
) -> None:
    """The deletion holds the blob's row and has deleted its object; a finalize of the
    same bytes, stored just before, waits for the row, then puts the object back."""
    old, new = await _job(rt, alice), await _job(rt, alice)
    video, _, _ = await _complete(rt, old, tmp_path, b"same", b"t-old", b"s-old")
    await rt.jobs.delete(alice, old)
    # The new job's finalize stored the same bytes (present: the put found them).
    again = await _files(rt, tmp_path, b"same", b"t-new", b"s-new")
    async with rt.db.begin() as deleting:
        # A sweep, halfway: the job released, the video's row held, its object deleted.
        assert await release_due_jobs(deleting, limit=10) == [old]
        assert await lock_for_deletion(deleting, video) == "held"
        assert not await is_referenced(deleting, video)
        await rt.engine.blobs.delete(video)

        async def finalize() -> None:
            async with rt.db.begin() as conn:
                assert await hold_outputs(conn, rt.engine.blobs, new, *again)
                await insert_output(conn, _output(new, *(blob for blob, _ in again)))

        recording = asyncio.create_task(finalize())
        await asyncio.sleep(0.3)
        assert not recording.done()  # waiting for the deletion's row lock
        await forget_blob(deleting, video)
    await recording
    assert await _on_disk(rt, video)
    assert video in await _rows(rt, "blobs")
    # The next sweep finds the reference and leaves it.
    await sweep_media(rt.engine)
    assert await _on_disk(rt, video)


async def test_a_deletion_waits_for_a_finalize_that_holds_the_blob(
    rt: Runtime, alice: Principal, tmp_path: Path
) -> None:
    old, new = await _job(rt, alice), await _job(rt, alice)
    video, _, _ = await _complete(rt, old, tmp_path, b"kept", b"t-a", b"s-a")
    await rt.jobs.delete(alice, old)
    again = await _files(rt, tmp_path, b"kept", b"t-b", b"s-b")
    async with rt.db.begin() as conn:
        assert await hold_outputs(conn, rt.engine.blobs, new, *again)
        # A sweep meanwhile: the video's row is held, so it is left for later.
        await sweep_media(rt.engine)
        assert video in await _rows(rt, "blob_deletions")
        await insert_output(conn, _output(new, *(blob for blob, _ in again)))
    await sweep_media(rt.engine)
    assert await _on_disk(rt, video)
    assert await _rows(rt, "blob_deletions") == set()


async def test_a_sweep_killed_after_deleting_an_object_is_finished_by_the_next(
    rt: Runtime, alice: Principal, tmp_path: Path
) -> None:
    job = await _job(rt, alice)
    video, thumb, sprites = await _complete(rt, job, tmp_path, b"v", b"t", b"s")
    await rt.jobs.delete(alice, job)
    async with rt.db.begin() as conn:
        await release_due_jobs(conn, limit=10)
    deleting = await rt.db.connect()
    tx = await deleting.begin()
    assert await lock_for_deletion(deleting, video) == "held"
    await rt.engine.blobs.delete(video)
    # kill -9 here: the transaction never commits.
    await tx.rollback()
    await deleting.close()
    assert await _rows(rt, "blob_deletions") == {video, thumb, sprites}
    assert await sweep_media(rt.engine) == (0, 3)
    assert not await _rows(rt, "blobs") & {video, thumb, sprites}


async def test_a_job_deleted_while_it_finalized_records_no_outputs(
    rt: Runtime, alice: Principal, tmp_path: Path
) -> None:
    job = await _job(rt, alice)
    await rt.jobs.delete(alice, job)
    await sweep_media(rt.engine)
    late = await _files(rt, tmp_path, b"late-v", b"late-t", b"late-s")
    async with rt.db.begin() as conn:
        assert not await hold_outputs(conn, rt.engine.blobs, job, *late)
    assert await sweep_media(rt.engine) == (0, 0)
    # Never recorded, so not deleted: an unreferenced file, like a create rolled back.
    assert await _rows(rt, "blob_deletions") == set()


async def test_retention_expires_old_media_and_says_when(
    rt: Runtime, alice: Principal, tmp_path: Path, database: str
) -> None:
    kept, old = await _job(rt, alice), await _job(rt, alice)
    await _complete(rt, kept, tmp_path, b"kept-v", b"kept-t", b"kept-s")
    assert (await rt.jobs.get(alice, kept)).expires_at is None
    # Through the CLI, as an operator would; audited as the CLI's.
    # (In a thread: the command runs its own event loop, in this process.)
    name = alice.tenant_id.removeprefix("tenant_")
    args = ("projects", "retention", name, "--days", "7")
    env = {"VIDGATE_DATABASE_URL": database}
    done = await asyncio.to_thread(cli, *args, env=env, in_process=True)
    assert "kept 7 days" in done.stdout
    job = await rt.jobs.get(alice, kept)
    assert job.completed_at is not None and job.expires_at is not None
    assert job.expires_at - job.completed_at == dt.timedelta(days=7)
    # A job completing now gets its expiry as it completes (the trigger).
    old_shas = await _complete(rt, old, tmp_path, b"old-v", b"old-t", b"old-s")
    assert (await rt.jobs.get(alice, old)).expires_at is not None
    async with rt.db.begin() as conn:
        await conn.execute(
            sa.text("UPDATE jobs SET expires_at = now() - interval '1 s' WHERE id = :id"),
            {"id": old},
        )
        actions = await conn.scalars(
            sa.text(
                "SELECT detail::text FROM audit_log"
                " WHERE action = 'projects.retention' AND tenant_id = :t"
            ),
            {"t": alice.tenant_id},
        )
        assert list(actions) == ['{"days": 7}']
    assert await sweep_media(rt.engine) == (1, 3)
    for sha in old_shas:
        assert not await _on_disk(rt, sha)
    # The job row stays, completed, with no outputs.
    expired, outputs = await rt.jobs.get_with_outputs(alice, old)
    assert expired.state == "completed" and outputs == []
    # Off: kept forever again.
    await set_retention(rt.db, alice.tenant_id, None, actor="cli", remote_addr=None)
    assert (await rt.jobs.get(alice, kept)).expires_at is None
