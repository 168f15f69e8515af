"""For the memory tests: images huge when decoded yet small on the wire (and fast to
make), and a sampler of another process's resident memory."""

from __future__ import annotations

import struct
import threading
import zlib

import psutil

MIB = 1024 * 1024

_BATCH_BYTES = 4 * 1024 * 1024


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def solid_png(width: int, height: int, rgba: tuple[int, int, int, int] = (0, 0, 0, 0)) -> bytes:
    """A width x height 8-bit RGBA PNG of one colour, built with zlib alone.

    8192x8192 of zeros is ~255 KB and decodes to 256 MiB. Deflating 256 MiB takes over a
    second, so one batch of identical rows is deflated once, ending in a full flush
    (which resets the compressor, so every repeat of the batch deflates to the same
    bytes), and those bytes are repeated; only the checksum walks all the rows.
    """
    row = b"\x00" + bytes(rgba) * width  # filter type 0 ("none"), then the pixels
    per_batch = max(1, _BATCH_BYTES // len(row))
    batches, rest = divmod(height, per_batch)
    batch = row * per_batch
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = deflate.compress(batch) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(row * rest) + deflate.flush()
    adler = 1
    for _ in range(batches):
        adler = zlib.adler32(batch, adler)
    adler = zlib.adler32(row * rest, adler)
    stream = b"\x78\xda" + block * batches + tail + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", stream)
        + _chunk(b"IEND", b"")
    )


def zeros_png(width: int, height: int) -> bytes:
    """All pixels transparent black: the issue's 8192x8192 bomb is zeros_png(8192, 8192)."""
    return solid_png(width, height)


class RssSampler:
    """The peak resident memory (RSS) of one process, sampled every 10 ms by a thread
    while inside ``with``; ``rss()`` reads it once."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def rss(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.rss())
