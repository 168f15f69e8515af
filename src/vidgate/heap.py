"""Heap settings for the long-running processes (``serve``, ``worker``): the garbage
collector's, and the C allocator's (``pin_malloc_thresholds``).

CPython's full (generation 2) collection walks every tracked object. Once started, the
gateway holds ~160k of them that live as long as the process (modules, the FastAPI app,
SQLAlchemy and pydantic metadata, the catalogue), and under load a full collection ran
every second or so and stopped the event loop for ~90 ms each time: that was B1's p99
(bench/README.md, docs/benchmarks.md). Freezing what exists once startup is done moves
those objects out of the collector's sight for good, so a full collection only walks
what requests and jobs allocated since, a few ms.
"""

from __future__ import annotations

import ctypes
import gc
import platform

import structlog

log = structlog.get_logger("vidgate.heap")


def freeze_startup_heap() -> int:
    """Collect startup garbage, then freeze every surviving object (they are never
    freed: call once, when the process has built what it keeps). Returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("heap.frozen", objects=frozen)
    return frozen


# glibc's mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks of at least this size get pages of their own (mmap), which go back to the
# system when freed: decoded images (Pillow allocates them in blocks of up to 16 MiB),
# upload bodies, 4K frames. Smaller ones come from the heap, as before; a render's
# 1080p frames (3 to 6 MB) stay below it, so the sandbox renders no slower.
MMAP_THRESHOLD = 8 * 1024 * 1024
# Free memory at the top of a heap beyond this goes back to the system: glibc's default.
TRIM_THRESHOLD = 128 * 1024


def pin_malloc_thresholds() -> bool:
    """Stop glibc from raising its mmap threshold as the process runs; True if applied.

    By default glibc raises the threshold to the size of each mmapped block freed (up
    to 32 MiB), and the trim threshold to twice that: after the first large image, the
    next ones come from heaps (one per thread that allocates: anyio's workers, the
    decoders) that keep their freed middle for good. Measured, six parallel uploads of
    an 8192x8192 PNG left a server at 6.0 GB after the work; with the thresholds pinned
    it went back to 0.16 GB. A no-op off glibc (musl, macOS), whose allocators differ.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("heap.malloc_thresholds", mmap=MMAP_THRESHOLD, trim=TRIM_THRESHOLD, ok=applied)
    return applied
