"""Previews after completion (engine/previews.py): a job completes with its video
stored and probed; its thumbnail and spritesheet links work at once, made by the first
request (once, however many ask together) or by the low-priority previews step, and a
previews step that fails leaves the job completed."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from PIL import Image
from tests.integration.conftest import add_caller, runtime_on
from tests.integration.test_job_runner import ScriptedProvider

from vidgate.api.app import create_app
from vidgate.core.catalog import Catalog, DeploymentRef
from vidgate.core.jobs import OutputRecord
from vidgate.core.spec import VideoRequest
from vidgate.db.finalize_claims import finalize_due
from vidgate.db.jobs import get_job, get_outputs
from vidgate.engine import previews as previews_module
from vidgate.engine import steps
from vidgate.engine.context import EngineContext
from vidgate.engine.runner import JobRunner
from vidgate.engine.service import JobService
from vidgate.media.render import ClipRequest, render_clip
from vidgate.providers.base import UpstreamStatus
from vidgate.runtime import Runtime


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


def _engine(runtime: Runtime, provider: ScriptedProvider) -> EngineContext:
    card = runtime.catalog.get("sandbox").model_copy(
        update={"deployments": [DeploymentRef(provider="scripted")]}
    )
    return dataclasses.replace(
        runtime.engine,
        providers={**runtime.engine.providers, "scripted": provider},
        catalog=Catalog([card]),
        deployments={},
    )


async def _completed_job(runtime: Runtime, video: bytes | None = None) -> tuple[EngineContext, str]:
    """A job taken through submit, poll and finalize, with no worker running; its
    result ``video``, else the provider's own clip."""
    provider = ScriptedProvider()
    provider.fetch_bytes = video
    ctx = _engine(runtime, provider)
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, f"p{id(provider)}", mode="live")
    job = await JobService(ctx).create(
        principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    )
    runner = JobRunner(ctx)
    await runner.submit(job.id)
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job.id)
    await runner.finalize(job.id)
    return ctx, job.id


async def _outputs(runtime: Runtime, job_id: str) -> list[OutputRecord]:
    async with runtime.db.connect() as conn:
        return await get_outputs(conn, job_id)


def _queued_steps(url: str, job_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT task_name, queue_name FROM procrastinate_jobs"
            " WHERE args->>'job_id' = %s AND status = 'todo' ORDER BY id",
            (job_id,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _link(runtime: Runtime, job_id: str, variant: str) -> str:
    links = runtime.services.media.output_links("http://vidgate", job_id, 0)
    url = urlsplit(getattr(links, variant))
    return f"{url.path}?{url.query}"


@pytest.fixture
def counted_makings(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Each time the previews of a video are made (the real work, counted)."""
    made: list[Path] = []
    real = previews_module.make_previews

    def counting(video: Path, **kwargs: Any) -> None:
        made.append(video)
        real(video, **kwargs)

    monkeypatch.setattr(previews_module, "make_previews", counting)
    return made


async def test_a_job_completes_before_its_previews_and_ten_first_requests_make_them_once(
    runtime: Runtime, counted_makings: list[Path]
) -> None:
    ctx, job_id = await _completed_job(runtime)
    async with runtime.db.connect() as conn:
        job = await get_job(conn, job_id)
    assert job is not None and job.state == "completed"
    [output] = await _outputs(runtime, job_id)
    assert (output.thumbnail_sha256, output.spritesheet_sha256) == (None, None)
    assert counted_makings == []
    # The previews follow on a queue of their own, behind nothing of the job's.
    assert _queued_steps(runtime.database_url, job_id) == [(steps.PREVIEWS, steps.PREVIEWS_QUEUE)]

    app = create_app(runtime.services, runtime.settings)
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://vidgate") as client:
        thumbnails = await asyncio.gather(
            *(client.get(_link(runtime, job_id, "thumbnail")) for _ in range(10))
        )
        sprites = await client.get(_link(runtime, job_id, "spritesheet"))
    for response in thumbnails:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/webp"
        assert response.content == thumbnails[0].content
    assert Image.open(io.BytesIO(thumbnails[0].content)).format == "WEBP"
    assert sprites.status_code == 200
    assert Image.open(io.BytesIO(sprites.content)).format == "JPEG"
    # Ten requests side by side, then one for the other preview: made once.
    assert len(counted_makings) == 1
    [made] = await _outputs(runtime, job_id)
    assert made.thumbnail_sha256 is not None and made.spritesheet_sha256 is not None

    # The step that follows finds them made and makes nothing.
    await ctx.previews.for_job(job_id)
    assert len(counted_makings) == 1
    assert await _outputs(runtime, job_id) == [made]


async def test_the_previews_step_makes_them_and_a_failing_one_leaves_the_job_completed(
    runtime: Runtime, counted_makings: list[Path], tmp_path: Path
) -> None:
    ctx, job_id = await _completed_job(runtime)
    await ctx.previews.for_job(job_id)
    [made] = await _outputs(runtime, job_id)
    assert made.thumbnail_sha256 is not None and made.spritesheet_sha256 is not None
    assert len(counted_makings) == 1

    # A second job whose stored video is gone: its previews step fails, logged, and
    # the job stays completed.
    clip = tmp_path / "other.mp4"
    render_clip(ClipRequest(width=64, height=48, fps=8, seconds=1, prompt="y", label="o"), clip)
    ctx, broken = await _completed_job(runtime, clip.read_bytes())
    [output] = await _outputs(runtime, broken)
    assert output.video_sha256 != made.video_sha256
    path = runtime.engine.blobs.local_path(output.video_sha256)
    assert path is not None
    path.unlink()
    await ctx.previews.for_job(broken)
    async with runtime.db.connect() as conn:
        job = await get_job(conn, broken)
    assert job is not None and job.state == "completed"
    assert await _outputs(runtime, broken) == [output]


async def test_the_previews_step_gives_way_to_due_finalizes(runtime: Runtime) -> None:
    url = runtime.database_url
    async with runtime.db.connect() as conn:
        assert not await finalize_due(conn)
    provider = ScriptedProvider()
    ctx = _engine(runtime, provider)
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "p-due", mode="live")
    job = await JobService(ctx).create(
        principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    )
    runner = JobRunner(ctx)
    await runner.submit(job.id)
    provider.statuses = [UpstreamStatus("succeeded")]
    await runner.poll(job.id)
    # Finalizing and due at once (the poller's move): previews wait.
    async with runtime.db.connect() as conn:
        assert await finalize_due(conn)
    # One claimed (its lease ahead), or backing off, waits for nobody.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobs SET next_poll_at = now() + interval '1 hour' WHERE id = %s", (job.id,)
        )
    async with runtime.db.connect() as conn:
        assert not await finalize_due(conn)
