"""A ``FileResponse`` that streams stored files at close to sendfile speed.

uvicorn has no zero-copy extension (``http.response.pathsend``), so every byte goes
through ``send``. Starlette's ``FileResponse`` reads 64 KiB per worker-thread hop and
reaches a tenth of what nginx does on loopback. Here the file is mapped into memory and
handed to the transport in multi-MiB ``memoryview`` slices: uvloop writes straight from
the mapping and keeps what the socket did not take as a view, not a copy, so the only
copy is the kernel's into the socket.

That copy runs on the event loop, and a page not in memory would make the loop wait
for the disk; so each slice is first probed (``preadv`` with ``RWF_NOWAIT``, which
fails instead of waiting) and, if not cached, read in by a worker thread. The probe
samples pages, so a rare miss still costs the loop one synchronous page read, as it
costs nginx's ``sendfile`` without ``aio threads``.

The mapping needs a file that nobody truncates while it is served (reading a truncated
page raises SIGBUS). Blobs are content addressed and replaced atomically, never
rewritten in place, so that holds for everything vidgate serves.

Only the common requests take this path: the whole file, or one satisfiable byte range,
without ``If-Range``. Everything else (several ranges, malformed or unsatisfiable
ranges, missing files, servers that can send a path themselves) goes to Starlette's
``FileResponse`` unchanged, so those answers stay exactly what they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import stat
from typing import Any

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import FileResponse
from starlette.types import Message, Receive, Scope, Send

__all__ = ["FastFileResponse", "parse_single_range"]

# Big enough that the per-send overhead (middleware wrappers, uvicorn's flow control)
# is noise next to the copy; small enough that a client that is gone stops costing
# work soon. On loopback, 1 MiB cost more CPU per byte and 8 MiB gained nothing.
CHUNK_SIZE = 4 << 20
_PROBE_STRIDE = 1 << 20
# preadv(RWF_NOWAIT) fails instead of waiting for the disk (Linux >= 4.14).
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None


class FastFileResponse(FileResponse):
    """``FileResponse`` with the same headers, status codes and range semantics.

    ``content``: the file's bytes, already read with ``stat_result`` (a small file held
    in memory): sent from there in one piece, without opening the file.
    """

    mapped_chunk_size = CHUNK_SIZE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        content: bytes | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, **kwargs)
        self.content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.content is not None and self.stat_result is not None:
            if self._can_send(scope) and await self._send_content(scope, send, self.content):
                return
            # What it does not answer itself, Starlette answers from the file.
            self.stat_result = None
        if not self._can_map(scope):
            await super().__call__(scope, receive, send)
            return
        try:
            fd, stat_result = await anyio.to_thread.run_sync(_open_regular, self.path)
        except OSError:
            # Missing or not a file: Starlette's error is the error of record.
            await super().__call__(scope, receive, send)
            return
        try:
            served = await self._serve(scope, receive, send, fd, stat_result)
        finally:
            os.close(fd)
        if not served:
            await super().__call__(scope, receive, send)

    def _can_send(self, scope: Scope) -> bool:
        """Whether this is a request answered here: a GET or HEAD of the whole file or
        one byte range, without ``If-Range``."""
        if scope["type"] != "http" or self.status_code != 200 or self.background is not None:
            return False
        if scope["method"].upper() not in ("GET", "HEAD"):
            return False
        headers = Headers(scope=scope)
        if "if-range" in headers:
            return False
        # A server that sends files itself does better than any copy through send().
        return "range" in headers or "http.response.pathsend" not in scope.get("extensions", {})

    def _can_map(self, scope: Scope) -> bool:
        # A size given by the caller could exceed the file, and touching a mapped page
        # past its end raises SIGBUS; only a fresh fstat() is trusted here.
        return self.stat_result is None and self._can_send(scope)

    def _answer(
        self, scope: Scope, stat_result: os.stat_result
    ) -> tuple[int, int, int, list[tuple[bytes, bytes]]] | None:
        """Status, byte range and headers of the answer; None to hand it back."""
        self.set_stat_headers(stat_result)
        size = stat_result.st_size
        range_header = Headers(scope=scope).get("range")
        if range_header is None:
            return 200, 0, size, self.raw_headers
        single = parse_single_range(range_header, size)
        if single is None:
            return None
        start, end = single
        ranged = MutableHeaders(raw=list(self.raw_headers))
        ranged["content-range"] = f"bytes {start}-{end - 1}/{size}"
        ranged["content-length"] = str(end - start)
        return 206, start, end, ranged.raw

    async def _send_content(self, scope: Scope, send: Send, content: bytes) -> bool:
        """Answer from ``content`` in one piece, or return False (having sent nothing)."""
        assert self.stat_result is not None
        answer = self._answer(scope, self.stat_result)
        if answer is None:
            return False
        status, start, end, headers = answer
        body = b"" if scope["method"].upper() == "HEAD" else content[start:end]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return True

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, fd: int, stat_result: os.stat_result
    ) -> bool:
        """Answer the request, or return False (having sent nothing) to hand it back."""
        answer = self._answer(scope, stat_result)
        if answer is None:
            return False
        status, start, end, headers = answer
        if scope["method"].upper() == "HEAD" or start == end:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        # mmap offsets must be multiples of the allocation granularity.
        base = start - start % mmap.ALLOCATIONGRANULARITY
        try:
            mapped = mmap.mmap(fd, end - base, offset=base, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # A file system without mmap support.
            return False
        await send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            await self._stream(receive, send, fd, mapped, base, start, end)
        finally:
            # The transport may still hold the last slices, and closing a mapping with
            # live views raises; it is then unmapped (and its fd closed) when the
            # transport lets them go.
            with contextlib.suppress(BufferError):
                mapped.close()
        return True

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        fd: int,
        mapped: mmap.mmap,
        base: int,
        start: int,
        end: int,
    ) -> None:
        # uvicorn's send() returns quietly once the client is gone, so only receive()
        # tells; without this the rest of the file would still be paged in.
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        step = self.mapped_chunk_size
        try:
            with memoryview(mapped) as view:
                pos = start
                while pos < end and not gone.done():
                    stop = min(pos + step, end)
                    # The event loop copies from the mapping, so a page that is not in
                    # memory would stall it on the disk: check (without blocking) and
                    # otherwise read the slice in, and the next one ahead, in a worker.
                    if not _resident(fd, pos, stop):
                        await anyio.to_thread.run_sync(
                            _page_in, fd, pos, stop, min(stop + step, end)
                        )
                    body = view[pos - base : stop - base]
                    await send(
                        {"type": "http.response.body", "body": body, "more_body": stop < end}
                    )
                    pos = stop
        finally:
            gone.cancel()


def parse_single_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a ``Range`` header that asks for one satisfiable byte range.

    ``None`` for anything else, which the caller hands to Starlette: its answers (400,
    416, multipart/byteranges) are the reference, so this accepts only what it answers
    identically, and only plain ASCII digits.
    """
    units, sep, spec = header.partition("=")
    if not sep or units.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not _is_digits(first or "0") or not _is_digits(last or "0"):
        return None
    if first:
        start = int(first)
        end = size if not last or int(last) >= size else int(last) + 1
    elif last:
        start, end = max(size - int(last), 0), size
    else:
        return None
    if not 0 <= start < end <= size:
        return None
    return start, end


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


async def _wait_disconnect(receive: Receive) -> None:
    try:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
    except Exception:  # A connection that cannot be read is gone as well.
        return


def _open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    fd = os.open(path, os.O_RDONLY)
    try:
        stat_result = os.fstat(fd)
        if not stat.S_ISREG(stat_result.st_mode):
            raise IsADirectoryError(f"not a regular file: {path}")
    except BaseException:
        os.close(fd)
        raise
    return fd, stat_result


def _probes(start: int, stop: int) -> range:
    """Offsets to test for residency in [start, stop): one per probe stride, and the
    last byte. Files are read and evicted in large runs, so a sample tells."""
    return range(stop - 1, start - 1, -_PROBE_STRIDE)


def _resident(fd: int, start: int, stop: int) -> bool:
    """Whether [start, stop) looks cached (by sample), without ever waiting for the disk."""
    if _NOWAIT is None:
        return False
    probe = bytearray(1)
    try:
        return all(os.preadv(fd, [probe], at, _NOWAIT) == 1 for at in _probes(start, stop))
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: the file system cannot tell.
        return False


def _page_in(fd: int, start: int, stop: int, ahead: int) -> None:
    """Blocking: start reading [start, ahead) and wait until [start, stop) is in."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, start, ahead - start, os.POSIX_FADV_WILLNEED)
    for at in reversed(_probes(start, stop)):
        os.pread(fd, 1, at)
