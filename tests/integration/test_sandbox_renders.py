"""The sandbox provider renders a bounded number of clips at once, however many
finalizes download at once (``MEDIA_CONCURRENCY``): each render holds its fitted
background until it ends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import runtime_on

from vidgate.core.spec import VideoRequest, normalize
from vidgate.providers import sandbox
from vidgate.providers.base import UpstreamTask
from vidgate.runtime import Runtime


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


async def test_renders_at_once_are_bounded(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def render(request: Any, out: Path, progress: Any) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        out.write_bytes(b"clip")
        with lock:
            running -= 1

    monkeypatch.setattr(sandbox, "render_clip", render)
    monkeypatch.setattr(sandbox, "RENDERS_AT_ONCE", 2)
    provider = sandbox.SandboxProvider(runtime.db, runtime.engine.blobs, latency_s=0.0)
    spec = normalize(
        VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240"),
        runtime.catalog.get("sandbox"),
    )
    tasks = [
        UpstreamTask(
            (await provider.submit(spec, idempotency_key=f"k{i}", upstream_model=None)).upstream_id,
            spec,
            None,
            {},
        )
        for i in range(6)
    ]
    dirs = [tmp_path / f"out{i}" for i in range(6)]
    for directory in dirs:
        directory.mkdir()
    results = await asyncio.gather(
        *(provider.fetch(t, d) for t, d in zip(tasks, dirs, strict=True))
    )
    assert [len(paths) for paths in results] == [1] * 6
    assert most == 2
