"""Operations against a real PostgreSQL: the cluster's numbers that ``/metrics`` reads
from the database, ``/readyz``'s checks, and the job id bound while each step runs."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.conftest import add_caller, runtime_on
from tests.integration.test_job_runner import ScriptedProvider, _with_deployments

from vidgate.api.app import create_app
from vidgate.core.jobs import ACTIVE, JobState
from vidgate.core.spec import VideoRequest
from vidgate.db.deployments import record_deployment_failure
from vidgate.db.jobs import transition
from vidgate.engine import steps
from vidgate.engine.finalizer import Finalizer
from vidgate.engine.poller import Poller
from vidgate.engine.service import JobService, Principal
from vidgate.engine.submitter import Submitter
from vidgate.providers.base import UpstreamStatus, UpstreamTask
from vidgate.runtime import Runtime
from vidgate.services.metrics import MetricsService


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


async def _jobs(rt: Runtime, principal: Principal, n: int) -> list[str]:
    req = VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    return [(await rt.jobs.create(principal, req)).id for _ in range(n)]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_cluster_metrics_are_what_the_database_holds(runtime: Runtime) -> None:
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "m")
    ids = await _jobs(runtime, principal, 4)
    with psycopg.connect(runtime.database_url, autocommit=True) as pg:
        # Where the submitter and the poller would have taken them: one due to finalize,
        # one a finalizer holds (its lease ahead).
        pg.execute(
            "UPDATE jobs SET state = 'finalizing', next_poll_at = CASE WHEN id = %s"
            " THEN now() - interval '1 minute' ELSE now() + interval '1 minute' END"
            " WHERE id = ANY(%s)",
            (ids[2], ids[2:]),
        )
    async with runtime.db.begin() as conn:
        await transition(conn, ids[0], from_states=ACTIVE, to=JobState.FAILED)
        await transition(conn, ids[1], from_states=ACTIVE, to=JobState.CANCELLED)
        # A finalize task an older version queued: finalize backlog too.
        await steps.enqueue(runtime.engine.app, conn, steps.FINALIZE, ids[3])
        await record_deployment_failure(
            conn, "luma", "upstream_error", threshold=1, cooldown_s=60, unhealthy=False
        )
    # An end that rolls back is not counted; one that does not change the state neither.
    async with runtime.db.connect() as conn:
        await transition(conn, ids[2], from_states=ACTIVE, to=JobState.FAILED)
        await conn.rollback()
    async with runtime.db.begin() as conn:
        assert await transition(conn, ids[0], from_states=ACTIVE, to=JobState.FAILED) is None

    service = MetricsService(
        runtime.db, runtime.health, deployments=["sandbox", "kling"], cache_s=60
    )
    snap = await service.cluster()
    assert snap is not None
    assert snap.ended == {("failed", "sandbox"): 1, ("cancelled", "sandbox"): 1}
    assert snap.inflight == {"queued": 0, "submitting": 0, "waiting": 0, "finalizing": 2}
    assert (snap.queues["submit"].depth, snap.queues["media"].depth) == (0, 2)
    assert snap.queues["media"].oldest_age_s >= 60
    assert (snap.queues["poll"].depth, snap.queues["jobs"].depth) == (0, 0)
    assert snap.breakers["luma"].state == "open"

    samples = _samples((await service.exposition()).decode())
    assert samples[("vidgate_jobs_total", (("model", "sandbox"), ("state", "failed")))] == 1
    assert samples[("vidgate_jobs_in_flight", (("state", "finalizing"),))] == 2
    assert samples[("vidgate_queue_depth", (("queue", "media"),))] == 2
    # Configured deployments without a failure are closed; one that failed is open.
    assert samples[("vidgate_breaker_state", (("deployment", "kling"), ("state", "closed")))] == 1
    assert samples[("vidgate_breaker_state", (("deployment", "luma"), ("state", "open")))] == 1
    assert samples[("vidgate_cluster_metrics_up", ())] == 1

    # Read once per cache interval: a scrape within it sees the same numbers.
    async with runtime.db.begin() as conn:
        await transition(conn, ids[3], from_states={JobState.FINALIZING}, to=JobState.COMPLETED)
    assert (await service.cluster()) is snap
    fresh = await MetricsService(runtime.db, runtime.health, deployments=[], cache_s=0).cluster()
    assert fresh is not None and fresh.ended[("completed", "sandbox")] == 1
    # The counts agree with the jobs table, counted the slow way.
    with psycopg.connect(runtime.database_url) as pg:
        rows = pg.execute(
            "SELECT state, model, count(*) FROM jobs"
            " WHERE state IN ('completed', 'failed', 'cancelled') GROUP BY state, model"
        ).fetchall()
    assert fresh.ended == {(s, m): n for s, m, n in rows}


async def _ready(rt: Runtime) -> httpx.Response:
    app = create_app(rt.services, rt.settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vidgate") as client:
        return await client.get("/readyz")


async def test_readyz_names_what_is_not_ready(runtime: Runtime) -> None:
    ok = await _ready(runtime)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "storage": "ok"},
        "failed": [],
    }

    with psycopg.connect(runtime.database_url, autocommit=True) as pg:
        head = pg.execute("SELECT version_num FROM alembic_version").fetchone()
        assert head is not None
        pg.execute("UPDATE alembic_version SET version_num = '0015'")
        try:
            behind = await _ready(runtime)
        finally:
            pg.execute("UPDATE alembic_version SET version_num = %s", head)
    assert behind.status_code == 503
    assert behind.json()["failed"] == ["migrations"]
    assert "0015" in behind.json()["checks"]["migrations"]

    # A media directory that cannot take a file, whoever runs the test (root included).
    media = runtime.settings.media_dir
    shutil.rmtree(media, ignore_errors=True)
    media.parent.mkdir(parents=True, exist_ok=True)
    media.write_text("not a directory")
    try:
        unwritable = await _ready(runtime)
    finally:
        media.unlink()
    assert unwritable.status_code == 503
    assert unwritable.json()["status"] == "unavailable"
    assert unwritable.json()["failed"] == ["storage"]
    assert (await _ready(runtime)).status_code == 200


class _Witness(ScriptedProvider):
    """Notes the job id bound in the logging context at each of its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, Any]] = []

    def _note(self, call: str) -> None:
        self.seen.append((call, structlog.contextvars.get_contextvars().get("job_id")))

    async def submit(self, spec: Any, *, idempotency_key: str, upstream_model: Any) -> Any:
        self._note("submit")
        return await super().submit(
            spec, idempotency_key=idempotency_key, upstream_model=upstream_model
        )

    async def status(self, task: UpstreamTask) -> UpstreamStatus:
        self._note("status")
        return await super().status(task)

    async def fetch(self, task: UpstreamTask, dest_dir: Path, progress: Any = None) -> Any:
        self._note("fetch")
        return await super().fetch(task, dest_dir, progress)


async def test_each_step_runs_with_its_job_id_in_the_logging_context(runtime: Runtime) -> None:
    provider = _Witness()
    ctx = _with_deployments(runtime, {"scripted": provider})
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "w", mode="live")
    req = VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    job_id = (await JobService(ctx).create(principal, req)).id

    assert await Submitter(ctx, concurrency=2).run_due_once() == 1
    with psycopg.connect(runtime.database_url, autocommit=True) as pg:
        pg.execute("UPDATE jobs SET next_poll_at = now() WHERE id = %s", (job_id,))
    provider.statuses = [UpstreamStatus("succeeded")]
    assert await Poller(ctx, concurrency=2).run_due_once() == 1
    assert await Finalizer(ctx, concurrency=2).run_due_once() == 1

    assert provider.seen == [("submit", job_id), ("status", job_id), ("fetch", job_id)]
    # Nothing leaks into the caller's context.
    assert "job_id" not in structlog.contextvars.get_contextvars()
