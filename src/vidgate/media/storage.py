"""Content-addressed blob storage.

Blobs are named by the SHA-256 of their bytes, so storing the same video twice costs
nothing and a name can never point at different content. ``BlobStore`` is what the
rest of vidgate uses; ``LocalBlobStore`` keeps blobs on local disk, and
``media/s3_storage.py``'s ``S3BlobStore`` in a bucket (``media/stores.py`` picks one).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from vidgate.core.errors import NotFound, StorageFull

__all__ = [
    "BlobStore",
    "LocalBlobStore",
    "StoredBlob",
    "is_disk_full",
    "owner_tag",
    "validate_sha256",
]

_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COPY_CHUNK = 1 << 20
# What tags a write's temp file (a job id, say).
_OWNER = re.compile(r"[A-Za-z0-9_-]{1,100}")


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int


class BlobStore(Protocol):
    async def put_file(self, path: Path, *, owner: str | None = None) -> StoredBlob:
        """Store a copy of ``path`` (the caller still owns and deletes the file). A
        write cut short by a crash may leave a partial copy behind: ``owner`` tags it,
        for ``discard_partial``."""
        ...

    async def discard_partial(self, owner: str) -> None:
        """Remove what writes tagged ``owner`` left unfinished. Only while no write for
        ``owner`` is under way."""
        ...

    async def put_bytes(self, data: bytes) -> StoredBlob: ...

    async def exists(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int:
        """Size in bytes; ``NotFound`` if absent."""
        ...

    def iter_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Bytes [start, end) of the blob, in chunks; ``end=None`` means to the end.

        A plain ``def`` returning an async iterator, so implementations can be async
        generators and callers write ``async for chunk in store.iter_range(...)``.
        ``NotFound`` if absent (raised on first iteration).
        """
        ...

    async def copy_to(self, sha256: str, dest: Path) -> None:
        """Write the blob to ``dest`` (atomically); ``NotFound`` if absent."""
        ...

    def local_path(self, sha256: str) -> Path | None:
        """Where the blob would live on local disk (for sendfile), or None for remote
        stores. Does not check that it exists."""
        ...

    async def delete(self, sha256: str) -> None:
        """Remove the blob; nothing if it is absent. Only the media sweeper calls it,
        holding the blob's row (engine/media_gc.py)."""
        ...

    async def ready(self) -> None:
        """Return when the store takes writes now (``/readyz``); raise, with what is
        wrong in the message, when it does not. Cheap: it runs on every probe."""
        ...


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a write that found no space: the store's
    own ``StorageFull``, or an ``OSError`` with ENOSPC/EDQUOT from anything else that
    writes under the data directory (downloads, the encoder, previews)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, StorageFull):
            return True
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


@contextlib.contextmanager
def _space_checked() -> Iterator[None]:
    """A full disk as ``StorageFull`` (507 at an upload), not a bare ``OSError``."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise StorageFull(
                "the gateway's storage is full; nothing was stored. Retry once the"
                " operator has freed space"
            ) from exc
        raise


def validate_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is 64 lowercase hex digits, else raise ``ValueError``.

    Blob names become path components, so anything else (``..``, ``/``, upper case
    that would alias on case-insensitive disks) is refused before touching the disk.
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r:.80}")
    return sha256


class LocalBlobStore:
    """Blobs under ``root/ab/abcdef...`` (first two hex digits, then the full digest).

    Writes go to ``root/.tmp`` and are moved into place with ``os.replace``, which is
    atomic on one file system: readers see a blob completely or not at all. File I/O
    runs in worker threads so the event loop never blocks on disk.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / ".tmp"

    def local_path(self, sha256: str) -> Path:
        return self._path(sha256)

    async def put_file(self, path: Path, *, owner: str | None = None) -> StoredBlob:
        with _space_checked():
            return await asyncio.to_thread(self._put_file, path, owner)

    async def discard_partial(self, owner: str) -> None:
        await asyncio.to_thread(self._discard_partial, owner)

    async def put_bytes(self, data: bytes) -> StoredBlob:
        with _space_checked():
            return await asyncio.to_thread(self._put_bytes, data)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self._path(sha256).is_file)

    async def size(self, sha256: str) -> int:
        return await asyncio.to_thread(self._size, sha256)

    async def iter_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start) or chunk_size < 1:
            raise ValueError(f"invalid range start={start} end={end} chunk_size={chunk_size}")
        path = self._path(sha256)
        f = await asyncio.to_thread(_open_blob, path, sha256)
        try:
            total = await asyncio.to_thread(lambda: os.fstat(f.fileno()).st_size)
            stop = total if end is None else min(end, total)
            pos = start
            if pos < stop:
                await asyncio.to_thread(f.seek, pos)
            while pos < stop:
                chunk = await asyncio.to_thread(f.read, min(chunk_size, stop - pos))
                if not chunk:  # The file cannot shrink (blobs are immutable) but be safe.
                    break
                pos += len(chunk)
                yield chunk
        finally:
            f.close()

    async def copy_to(self, sha256: str, dest: Path) -> None:
        with _space_checked():
            await asyncio.to_thread(self._copy_to, sha256, dest)

    async def delete(self, sha256: str) -> None:
        await asyncio.to_thread(self._path(sha256).unlink, missing_ok=True)

    async def ready(self) -> None:
        await asyncio.to_thread(self._ready)

    # --- blocking parts, run in threads ---

    def _path(self, sha256: str) -> Path:
        validate_sha256(sha256)
        return self.root / sha256[:2] / sha256

    def _size(self, sha256: str) -> int:
        try:
            return self._path(sha256).stat().st_size
        except FileNotFoundError:
            raise _not_found(sha256) from None

    def _temp(self, owner: str | None) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(8)
        return self._tmp / (f"{owner_tag(owner)}.{token}.part" if owner else f"{token}.part")

    def _ready(self) -> None:
        # A file made and removed where writes start: permissions alone would not tell
        # (root ignores them; a read-only mount or a full disk does not).
        fd, name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="ready.", suffix=".part")
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(name)

    def _tmp_dir(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp

    def _discard_partial(self, owner: str) -> None:
        if self._tmp.is_dir():
            for leftover in self._tmp.glob(f"{owner_tag(owner)}.*.part"):
                leftover.unlink(missing_ok=True)

    def _put_file(self, path: Path, owner: str | None) -> StoredBlob:
        # Hash while copying into a temp file: one read of the source, not two.
        tmp = self._temp(owner)
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as src, tmp.open("wb") as dst:
                while chunk := src.read(_COPY_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                sha = digest.hexdigest()
                if self._path(sha).is_file():
                    # Stored already, and synced by the write that stored it: this copy
                    # is dropped unsynced (a burst of the same result costs no fsync).
                    return StoredBlob(sha256=sha, size=size)
                dst.flush()
                os.fsync(dst.fileno())
            return self._commit(tmp, sha, size)
        finally:
            tmp.unlink(missing_ok=True)

    def _put_bytes(self, data: bytes) -> StoredBlob:
        sha = hashlib.sha256(data).hexdigest()
        if self._path(sha).is_file():
            return StoredBlob(sha256=sha, size=len(data))
        tmp = self._temp(None)
        try:
            with tmp.open("wb") as dst:
                dst.write(data)
                dst.flush()
                os.fsync(dst.fileno())
            return self._commit(tmp, sha, len(data))
        finally:
            tmp.unlink(missing_ok=True)

    def _commit(self, tmp: Path, sha: str, size: int) -> StoredBlob:
        final = self._path(sha)
        if not final.is_file():
            final.parent.mkdir(parents=True, exist_ok=True)
            # If another writer got there first, replacing its file with identical
            # bytes is harmless, so concurrent puts need no lock.
            os.replace(tmp, final)
        return StoredBlob(sha256=sha, size=size)

    def _copy_to(self, sha256: str, dest: Path) -> None:
        src = self._path(sha256)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except FileNotFoundError:
            if not src.is_file():
                raise _not_found(sha256) from None
            raise
        finally:
            tmp.unlink(missing_ok=True)


def owner_tag(owner: str) -> str:
    """``owner`` as a file name part that no glob pattern or path can hide in."""
    if not _OWNER.fullmatch(owner):
        raise ValueError(f"not an owner tag: {owner!r:.80}")
    return owner


def _open_blob(path: Path, sha256: str) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise _not_found(sha256) from None


def _not_found(sha256: str) -> NotFound:
    return NotFound(f"blob {sha256} not found")
