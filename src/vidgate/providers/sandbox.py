"""The sandbox provider: a local stand-in for an upstream video service.

It renders a real H.264 test clip (never a generated video) at exactly the requested
size, fps and duration, after a simulated upstream latency with progress. Its task
store is a table of its own, playing the remote service's database: submissions with
the same idempotency key return the same task, as a well-behaved upstream would.

Test hooks, through the job's ``metadata``:
- ``sandbox_latency_ms``: upstream latency for this job.
- ``sandbox_fail``: ``submit`` rejects the submission; ``fetch`` fails the download;
  any other value ends the upstream task failed with that error code.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.ids import new_id
from vidgate.core.spec import JobSpec
from vidgate.db.jobs import now as db_clock
from vidgate.media.render import Background, ClipRequest, load_background_async, render_clip
from vidgate.media.storage import BlobStore
from vidgate.providers import base, sandbox_store

_MAX_POLL_S = 2.0
# Sandbox clips rendered at once per sandbox deployment (``SandboxProvider.fetch``).
RENDERS_AT_ONCE = 16


class SandboxProvider:
    name = "sandbox"

    def __init__(self, engine: AsyncEngine, blobs: BlobStore, *, latency_s: float) -> None:
        self._engine = engine
        self._blobs = blobs
        self._latency_s = latency_s
        # Each render holds its fitted background (1.5 bytes per output pixel) until
        # it ends: bounded here, not by how many finalizes download at once.
        self._renders = asyncio.Semaphore(RENDERS_AT_ONCE)

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        """The sandbox renders whatever the catalogue allows."""

    def _latency_for(self, spec: JobSpec) -> float:
        raw = spec.metadata.get("sandbox_latency_ms")
        if raw is None:
            return self._latency_s
        try:
            return max(0.0, float(raw) / 1000)
        except ValueError:
            return self._latency_s

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        fail = spec.metadata.get("sandbox_fail")
        if fail == "submit":
            raise base.ProviderError(
                "invalid_request", "sandbox: injected submit rejection", retryable=False
            )
        latency = self._latency_for(spec)
        async with self._engine.begin() as conn:
            task = await sandbox_store.submit(
                conn,
                task_id=new_id("sbx"),
                idempotency_key=idempotency_key,
                request={"spec": spec.model_dump(mode="json"), "label": idempotency_key},
                latency_s=latency,
                fail_code=fail if fail not in (None, "fetch") else None,
            )
        return base.SubmitResult(task.id, poll_after_s=min(task.latency_s, _MAX_POLL_S))

    async def status(self, upstream: base.UpstreamTask) -> base.UpstreamStatus:
        async with self._engine.connect() as conn:
            task = await sandbox_store.get(conn, upstream.id)
            now = await db_clock(conn)
        if task is None:
            raise base.ProviderError(
                "not_found", f"sandbox task {upstream.id} not found", retryable=False
            )
        if task.cancelled_at is not None:
            return base.UpstreamStatus("cancelled")
        elapsed = (now - task.created_at).total_seconds()
        remaining = task.latency_s - elapsed
        if remaining > 0:
            progress = int(100 * elapsed / task.latency_s) if task.latency_s else 0
            return base.UpstreamStatus(
                "queued" if elapsed < 0.1 * task.latency_s else "running",
                progress=max(1, min(99, progress)),
                poll_after_s=min(max(remaining, 0.05), _MAX_POLL_S),
            )
        if task.fail_code:
            return base.UpstreamStatus(
                "failed",
                error_code=task.fail_code,
                error_message=f"sandbox: injected failure {task.fail_code!r}",
            )
        return base.UpstreamStatus("succeeded", progress=100)

    async def fetch(
        self,
        upstream: base.UpstreamTask,
        dest_dir: Path,
        progress: base.ProgressCallback | None = None,
    ) -> list[Path]:
        async with self._engine.connect() as conn:
            task = await sandbox_store.get(conn, upstream.id)
        if task is None:
            raise base.ProviderError(
                "not_found", f"sandbox task {upstream.id} not found", retryable=False
            )
        spec = JobSpec.model_validate(task.request["spec"])
        if spec.metadata.get("sandbox_fail") == "fetch":
            raise base.ProviderError(
                "download_failed", "sandbox: injected fetch failure", retryable=False
            )
        label = str(task.request.get("label", upstream.id))
        # An upstream task has one result: downloading it again (a finalize step re-run
        # after a crash) must give the same bytes, so an unseeded job gets the task's seed.
        seed = spec.seed if spec.seed is not None else _task_seed(task.id)
        async with self._renders:
            return await self._render(spec, label, seed, dest_dir, progress)

    async def _render(
        self,
        spec: JobSpec,
        label: str,
        seed: int,
        dest_dir: Path,
        progress: base.ProgressCallback | None,
    ) -> list[Path]:
        with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
            inputs = Path(tmp)
            # Decoded once for all n outputs, within the process's budget for decoded
            # images, and kept only at the output's size.
            background = await self._background(spec, inputs)
            source = await self._materialize(spec.source.sha256 if spec.source else None, inputs)
            outputs: list[Path] = []
            for index in range(spec.n):
                out = dest_dir / f"{index}.mp4"
                request = ClipRequest(
                    width=spec.width,
                    height=spec.height,
                    fps=spec.fps,
                    seconds=spec.seconds,
                    prompt=spec.prompt,
                    label=f"{label} #{index + 1}",
                    seed=seed + index,
                    background=background,
                    remix_source=source if spec.kind == "remix" else None,
                    extend_source=source if spec.kind == "extend" else None,
                )
                await asyncio.to_thread(render_clip, request, out, _scaled(progress, index, spec.n))
                outputs.append(out)
        return outputs

    async def cancel(self, upstream: base.UpstreamTask) -> None:
        async with self._engine.begin() as conn:
            await sandbox_store.cancel(conn, upstream.id)

    async def probe(self) -> None:
        """Always there: the sandbox is vidgate itself."""

    async def aclose(self) -> None:
        """Nothing to release: the sandbox borrows the engine's database pool."""

    async def _background(self, spec: JobSpec, directory: Path) -> Background | None:
        path = await self._materialize(spec.image.sha256 if spec.image else None, directory)
        if path is None:
            return None
        data = await asyncio.to_thread(path.read_bytes)
        return await load_background_async(data, spec.width, spec.height)

    async def _materialize(self, sha256: str | None, directory: Path) -> Path | None:
        if sha256 is None:
            return None
        path = directory / sha256
        await self._blobs.copy_to(sha256, path)
        return path


def _task_seed(task_id: str) -> int:
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big")


def _scaled(
    progress: base.ProgressCallback | None, index: int, total: int
) -> base.ProgressCallback | None:
    if progress is None:
        return None
    report = progress

    def scaled(fraction: float) -> None:
        report((index + fraction) / total)

    return scaled
