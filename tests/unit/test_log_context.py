"""Log lines carry what the context binds: the request id (api/edge.py) and the job id
(the step runners), through the logging that ``serve`` and ``worker`` configure."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import httpx
import pytest
import structlog
from tests.unit.api.test_app import _services

from vidgate.api.app import create_app
from vidgate.config import Settings
from vidgate.logging import configure_logging


@pytest.fixture
def json_log() -> Iterator[StringIO]:
    """The process's logging as ``serve`` sets it with VIDGATE_LOG_JSON, into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    configure_logging("DEBUG", json=True)
    buffer = StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], level, config = saved
        root.setLevel(level)
        structlog.configure(**config)


def test_json_log_lines_carry_the_request_and_job_ids(json_log: StringIO) -> None:
    log = structlog.get_logger("vidgate.test")
    with structlog.contextvars.bound_contextvars(request_id="req_1"):
        log.info("inside.request", api_key="vg_test_abcdefghijklmnop")
    with structlog.contextvars.bound_contextvars(job_id="video_1"):
        logging.getLogger("vidgate.stdlib").warning("from the standard library")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [(line["event"], line.get("request_id"), line.get("job_id")) for line in lines] == [
        ("inside.request", "req_1", None),
        ("from the standard library", None, "video_1"),
    ]
    assert lines[0]["api_key"] == "***"


async def test_every_line_of_a_request_carries_its_id(json_log: StringIO, tmp_path: Path) -> None:
    app = create_app(_services(), Settings(data_dir=tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vidgate") as client:
        answer = await client.get("/healthz", headers={"X-Request-Id": "trace-9"})
        await client.get("/nowhere")
    structlog.get_logger("vidgate.test").info("after")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    lines = [line for line in lines if line.get("logger", "").startswith("vidgate")]
    assert answer.headers["x-request-id"] == "trace-9"
    # The access log of each request (DEBUG), with its id; nothing after them.
    assert [(line["event"], line.get("path"), line.get("request_id")) for line in lines] == [
        ("http.request", "/healthz", "trace-9"),
        ("http.request", "/nowhere", lines[1]["request_id"]),
        ("after", None, None),
    ]
    assert lines[1]["request_id"].startswith("req_")
