"""Garbage-collector settings for the long-running processes (``serve``, ``worker``).

CPython's full (generation 2) collection walks every tracked object. Once started, the
gateway holds ~160k of them that live as long as the process (modules, the FastAPI app,
SQLAlchemy and pydantic metadata, the catalogue), and under load a full collection ran
every second or so and stopped the event loop for ~90 ms each time: that was B1's p99
(bench/README.md, docs/benchmarks.md). Freezing what exists once startup is done moves
those objects out of the collector's sight for good, so a full collection only walks
what requests and jobs allocated since, a few ms.
"""

from __future__ import annotations

import gc

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
