"""LocalBlobStore: content addressing, idempotence, ranges, and refusal of bad names."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from vidgate.core.errors import NotFound
from vidgate.media.storage import BlobStore, LocalBlobStore, StoredBlob

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable
SHA = hashlib.sha256(DATA).hexdigest()
MISSING = "0" * 64


def _blob_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _read(store: BlobStore, sha: str, *args: int, **kw: int) -> bytes:
    return b"".join([chunk async for chunk in store.iter_range(sha, *args, **kw)])


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


async def test_put_bytes_is_content_addressed(store: LocalBlobStore) -> None:
    blob = await store.put_bytes(DATA)
    assert blob == StoredBlob(sha256=SHA, size=len(DATA))
    path = store.root / SHA[:2] / SHA
    assert path.read_bytes() == DATA
    assert store.local_path(SHA) == path
    assert await store.exists(SHA)
    assert await store.size(SHA) == len(DATA)


async def test_put_file_copies_and_is_idempotent(store: LocalBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "video.mp4"
    src.write_bytes(DATA)
    first = await store.put_file(src)
    second = await store.put_file(src)
    third = await store.put_bytes(DATA)
    assert first == second == third == StoredBlob(sha256=SHA, size=len(DATA))
    assert src.read_bytes() == DATA  # copied, not moved: the caller still owns it
    assert _blob_files(store.root) == [store.root / SHA[:2] / SHA]
    assert list((store.root / ".tmp").iterdir()) == []


async def test_concurrent_puts_of_the_same_content(store: LocalBlobStore) -> None:
    blobs = await asyncio.gather(*(store.put_bytes(DATA) for _ in range(8)))
    assert {b.sha256 for b in blobs} == {SHA}
    assert _blob_files(store.root) == [store.root / SHA[:2] / SHA]


async def test_different_content_different_blob(store: LocalBlobStore) -> None:
    a = await store.put_bytes(b"a")
    b = await store.put_bytes(b"b")
    empty = await store.put_bytes(b"")
    assert len({a.sha256, b.sha256, empty.sha256}) == 3
    assert empty.size == 0
    assert await _read(store, empty.sha256) == b""
    assert len(_blob_files(store.root)) == 3


async def test_range_reads(store: LocalBlobStore) -> None:
    await store.put_bytes(DATA)
    assert await _read(store, SHA) == DATA
    assert await _read(store, SHA, 100) == DATA[100:]
    assert await _read(store, SHA, 100, 356) == DATA[100:356]
    assert await _read(store, SHA, 0, 1) == DATA[:1]
    assert await _read(store, SHA, 500, 500) == b""
    assert await _read(store, SHA, 10000, 99999) == DATA[10000:]  # end clamps to size
    assert await _read(store, SHA, 20000) == b""
    chunks = [c async for c in store.iter_range(SHA, 10, 1010, chunk_size=300)]
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert b"".join(chunks) == DATA[10:1010]


async def test_invalid_ranges(store: LocalBlobStore) -> None:
    await store.put_bytes(DATA)
    with pytest.raises(ValueError):
        await _read(store, SHA, -1)
    with pytest.raises(ValueError):
        await _read(store, SHA, 10, 5)


async def test_copy_to(store: LocalBlobStore, tmp_path: Path) -> None:
    await store.put_bytes(DATA)
    dest = tmp_path / "out" / "copy.mp4"
    dest.parent.mkdir()
    await store.copy_to(SHA, dest)
    assert dest.read_bytes() == DATA
    assert _names(dest.parent) == ["copy.mp4"]


async def test_missing_blob_is_not_found(store: LocalBlobStore, tmp_path: Path) -> None:
    assert await store.exists(MISSING) is False
    with pytest.raises(NotFound):
        await store.size(MISSING)
    with pytest.raises(NotFound):
        await _read(store, MISSING)
    dest = tmp_path / "copy.mp4"
    with pytest.raises(NotFound):
        await store.copy_to(MISSING, dest)
    assert not dest.exists()
    assert [n for n in _names(tmp_path) if n != "blobs"] == []  # no temp file beside dest


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        SHA.upper(),
        SHA[:63],
        SHA + "0",
        "../" + SHA[3:],
        "/" + SHA[1:],
        SHA[:62] + "/.",
        "g" * 64,
    ],
)
async def test_bad_digests_are_refused(store: LocalBlobStore, bad: str) -> None:
    with pytest.raises(ValueError):
        await store.exists(bad)
    with pytest.raises(ValueError):
        await store.size(bad)
    with pytest.raises(ValueError):
        await _read(store, bad)
    with pytest.raises(ValueError):
        store.local_path(bad)
    with pytest.raises(ValueError):
        await store.copy_to(bad, store.root / "x")


async def test_partial_writes_of_an_owner_are_discarded(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write killed before its rename leaves its temp behind, named after its owner:
    ``discard_partial`` removes that owner's, and only that owner's."""
    source = tmp_path / "clip.bin"
    source.write_bytes(b"partial")
    renamed: list[Path] = []
    real_replace = os.replace

    def record(src: str | Path, dst: str | Path) -> None:
        renamed.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr("vidgate.media.storage.os.replace", record)
    await store.put_file(source, owner="video_1")
    [temp] = renamed
    assert temp.parent == store.root / ".tmp" and temp.name.startswith("video_1.")

    # What kill -9 mid-write leaves: temps of this owner, of another, and of no owner.
    leftovers = [
        store.root / ".tmp" / name
        for name in ("video_1.ab12.part", "video_10.cd34.part", "ef56.part")
    ]
    for path in leftovers:
        path.write_bytes(b"x")
    await store.discard_partial("video_1")
    assert [p.exists() for p in leftovers] == [False, True, True]
    with pytest.raises(ValueError):
        await store.discard_partial("*")


async def test_a_blob_stored_already_costs_no_second_fsync(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first write of some bytes is synced before it is moved into place; storing
    them again finds them synced already (a burst of one result stored many times)."""
    from vidgate.media import storage

    synced: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(storage.os, "fsync", counting)
    source = tmp_path / "result.mp4"
    source.write_bytes(b"the same result" * 1000)
    first = await store.put_file(source, owner="job_a")
    assert len(synced) == 1
    again = await store.put_file(source, owner="job_b")
    assert again == first and len(synced) == 1
    assert not list((store.root / ".tmp").glob("*.part"))
    other = tmp_path / "other.mp4"
    other.write_bytes(b"another result")
    await store.put_file(other)
    assert len(synced) == 2
