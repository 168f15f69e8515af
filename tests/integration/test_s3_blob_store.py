"""The S3 blob store against moto's S3 server on loopback (tests/s3.py): keys by
content, multipart uploads of large files in small parts, Range reads, what a killed
upload leaves and ``discard_partial`` removes, and the store the settings choose."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.s3 import S3Endpoint

from vidgate.config import Settings
from vidgate.core.errors import NotFound
from vidgate.media.s3_storage import S3BlobStore, S3Location, parse_s3_url
from vidgate.media.storage import LocalBlobStore
from vidgate.media.stores import open_blob_store
from vidgate.media.stores import s3_endpoint as s3_endpoint_of

PART = 64 * 1024


@pytest.fixture
async def store(s3_endpoint: S3Endpoint) -> AsyncIterator[S3BlobStore]:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    async with s3_endpoint.client() as client:
        yield S3BlobStore(client, S3Location(s3_endpoint.bucket, f"{prefix}/"), part_size=PART)


async def _uploads(store: S3BlobStore) -> list[str]:
    answer = await store._s3.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    return [u["Key"] for u in answer.get("Uploads", [])]


async def _collect(store: S3BlobStore, sha: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([c async for c in store.iter_range(sha, start, end, chunk_size=7000)])


def test_s3_urls() -> None:
    assert parse_s3_url("s3://media/videos/prod/") == S3Location("media", "videos/prod/")
    assert parse_s3_url("s3://media") == S3Location("media", "")
    for bad in ("s3:///x", "http://b/x", "media/x"):
        with pytest.raises(ValueError):
            parse_s3_url(bad)


async def test_a_large_file_goes_up_in_parts_under_its_hash(
    store: S3BlobStore, s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART + 123)
    path = tmp_path / "big.mp4"
    path.write_bytes(data)
    blob = await store.put_file(path, owner="video_1")
    sha = hashlib.sha256(data).hexdigest()
    assert (blob.sha256, blob.size) == (sha, len(data))
    assert await s3_endpoint.keys(store.prefix) == [f"{store.prefix}{sha[:2]}/{sha}"]
    head = await store._s3.head_object(Bucket=store.bucket, Key=store.key(sha))
    assert head["ETag"].endswith('-4"')  # a multipart object of four parts
    assert await store.size(sha) == len(data) and await store.exists(sha)
    assert await _collect(store, sha) == data
    # Ranges: inside, to the end, across parts, past the end, empty.
    assert await _collect(store, sha, 10, 20) == data[10:20]
    assert await _collect(store, sha, PART - 5, 2 * PART + 5) == data[PART - 5 : 2 * PART + 5]
    assert await _collect(store, sha, len(data) - 3) == data[-3:]
    assert await _collect(store, sha, len(data) + 10) == b""
    assert await _collect(store, sha, 5, 5) == b""
    assert await _uploads(store) == []
    # Stored again: found by its name, not uploaded again.
    before = head["LastModified"]
    await store.put_file(path, owner="video_2")
    again = await store._s3.head_object(Bucket=store.bucket, Key=store.key(sha))
    assert again["LastModified"] == before


async def test_small_blobs_missing_blobs_copies_and_deletes(
    store: S3BlobStore, tmp_path: Path
) -> None:
    blob = await store.put_bytes(b"a thumbnail")
    assert await store.size(blob.sha256) == 11
    dest = tmp_path / "copy"
    await store.copy_to(blob.sha256, dest)
    assert dest.read_bytes() == b"a thumbnail"
    assert store.local_path(blob.sha256) is None
    missing = "0" * 64
    assert not await store.exists(missing)
    with pytest.raises(NotFound):
        await store.size(missing)
    with pytest.raises(NotFound):
        await _collect(store, missing)
    with pytest.raises(NotFound):
        await store.copy_to(missing, tmp_path / "nothing")
    assert await asyncio.to_thread(os.listdir, tmp_path) == ["copy"]
    with pytest.raises(ValueError):
        store.key("../etc")
    await store.delete(blob.sha256)
    await store.delete(blob.sha256)  # twice: nothing
    assert not await store.exists(blob.sha256)


async def test_an_upload_cut_short_is_aborted(store: S3BlobStore, tmp_path: Path) -> None:
    path = tmp_path / "big.mp4"
    path.write_bytes(os.urandom(6 * PART))
    uploading = asyncio.Event()
    real = store._s3.upload_part

    async def slow_part(**kwargs: object) -> object:
        uploading.set()
        await asyncio.sleep(30)
        return await real(**kwargs)  # type: ignore[arg-type]

    store._s3.upload_part = slow_part  # type: ignore[method-assign]
    task = asyncio.create_task(store.put_file(path, owner="video_cut"))
    await uploading.wait()
    assert len(await _uploads(store)) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _uploads(store) == []
    assert await _markers(store) == []


async def _markers(store: S3BlobStore) -> list[str]:
    answer = await store._s3.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}.partial/")
    return [item["Key"] for item in answer.get("Contents", [])]


async def test_discard_partial_aborts_what_a_killed_upload_of_the_owner_left(
    store: S3BlobStore,
) -> None:
    # What a process killed mid-upload leaves: its marker and the unfinished upload.
    mine, theirs = "1" * 64, "2" * 64
    for owner, sha in (("video_a", mine), ("video_b", theirs)):
        marker = f"{store.prefix}.partial/{owner}/{sha}"
        await store._s3.put_object(Bucket=store.bucket, Key=marker, Body=b"")
        await store._s3.create_multipart_upload(Bucket=store.bucket, Key=store.key(sha))
    await store.discard_partial("video_a")
    assert await _uploads(store) == [store.key(theirs)]
    assert await _markers(store) == [f"{store.prefix}.partial/video_b/{theirs}"]
    await store.discard_partial("video_a")  # nothing left of it: nothing happens
    with pytest.raises(ValueError):
        await store.discard_partial("../video_b")


async def test_the_settings_choose_the_store(
    s3_endpoint: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with open_blob_store(Settings(data_dir=tmp_path)) as local:
        assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "media"
    for name, value in s3_endpoint.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = Settings(data_dir=tmp_path, storage_url=s3_endpoint.storage_url("factory/"))
    async with open_blob_store(settings) as remote:
        assert isinstance(remote, S3BlobStore) and remote.prefix == "factory/"
        # The endpoint from AWS_ENDPOINT_URL_S3, path-style addressing for it.
        blob = await remote.put_bytes(b"from the environment")
        assert await s3_endpoint.keys("factory/") == [f"factory/{blob.sha256[:2]}/{blob.sha256}"]
    # AWS_ENDPOINT_URL when there is no S3-specific one, as botocore reads them.
    assert s3_endpoint_of({"AWS_ENDPOINT_URL": "http://b"}) == "http://b"
    assert s3_endpoint_of({"AWS_ENDPOINT_URL": "http://b", "AWS_ENDPOINT_URL_S3": "http://s"}) == (
        "http://s"
    )
    assert s3_endpoint_of({}) is None


async def test_ready_writes_to_the_bucket_and_fails_on_a_missing_one(
    store: S3BlobStore, s3_endpoint: S3Endpoint
) -> None:
    await store.ready()
    assert f"{store.prefix}.ready" in await s3_endpoint.keys(store.prefix)
    async with s3_endpoint.client() as client:
        missing = S3BlobStore(client, S3Location("no-such-bucket", "x/"), part_size=PART)
        with pytest.raises(Exception, match="NoSuchBucket"):
            await missing.ready()
