"""A webhook URL the delivery step cannot use is a logged, final refusal, never a crash.

Rows written before URLs were parsed strictly can hold URLs that today's create
refuses, and an address can become non-public between create and delivery; the step is
called directly, against a real PostgreSQL, and must return without raising, without
scheduling a retry, and with a ``webhook.refused`` log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.spec import VideoRequest
from vidgate.engine import steps, webhooks
from vidgate.engine.service import JobService
from vidgate.runtime import Runtime


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(database_url, tmp_path) as rt:
        yield rt


async def _ended_job_with_hook(runtime: Runtime, stored_url: str) -> str:
    async with runtime.db.begin() as conn:
        principal = await add_caller(conn, "w")
    job = await JobService(runtime.engine).create(
        principal,
        VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240"),
        webhook_url="https://hooks.example/ok",
    )
    # As a row from before strict parsing, or after an address changed hands.
    with psycopg.connect(runtime.database_url) as conn:
        conn.execute(
            "UPDATE jobs SET state = 'completed', progress = 100, completed_at = now(),"
            " webhook_url = %s WHERE id = %s",
            (stored_url, job.id),
        )
    return job.id


def _webhook_tasks(runtime: Runtime, job_id: str) -> int:
    with psycopg.connect(runtime.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s AND args->>'job_id' = %s",
            (steps.WEBHOOK, job_id),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("stored_url", "words"),
    [
        ("https://[::1/hook", "host part is malformed"),
        ("https://hooks.example:abc/hook", "port"),
        ("https://hooks.example/a\x7fb", "control character"),
        ("https://127.0.0.1/hook", "127.0.0.1 is loopback"),
        ("http://hooks.example/hook", "https://"),
    ],
)
async def test_an_unusable_stored_url_is_refused_and_logged(
    runtime: Runtime, stored_url: str, words: str
) -> None:
    job_id = await _ended_job_with_hook(runtime, stored_url)
    with capture_logs() as logs:
        await webhooks.deliver(runtime.engine, job_id, 1)
    refused = [e for e in logs if e["event"] == "webhook.refused"]
    assert len(refused) == 1, logs
    assert refused[0]["job_id"] == job_id and words in refused[0]["reason"]
    assert _webhook_tasks(runtime, job_id) == 0  # final: no retry


async def test_a_name_that_resolves_to_loopback_is_never_called(runtime: Runtime) -> None:
    connections: list[object] = []

    async def trap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(trap, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        job_id = await _ended_job_with_hook(runtime, f"https://localhost:{port}/hook")
        with capture_logs() as logs:
            await webhooks.deliver(runtime.engine, job_id, 1)
    finally:
        server.close()
        await server.wait_closed()
    refused = [e for e in logs if e["event"] == "webhook.refused"]
    assert len(refused) == 1, logs
    assert "non-public address (loopback)" in refused[0]["reason"]
    assert connections == []
    assert _webhook_tasks(runtime, job_id) == 0
