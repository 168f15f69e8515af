"""Operations on real processes: ``/metrics`` after sandbox jobs on the session's
gateway, the request id of every request, and a worker's own ``/metrics``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import VIDGATE, ServerProcess, free_port, make_database

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _ended_in_database(url: str) -> dict[tuple[str, str], float]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT state, model, count(*) FROM jobs"
            " WHERE state IN ('completed', 'failed', 'cancelled') GROUP BY state, model"
        ).fetchall()
    return {(state, model): float(n) for state, model, n in rows}


def _ended_in_metrics(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["state"], dict(labels)["model"]): value
        for (name, labels), value in samples.items()
        if name == "vidgate_jobs_total"
    }


def _wait_terminal(client: httpx.Client, ids: list[str]) -> None:
    deadline = time.monotonic() + 30
    for video_id in ids:
        while client.get(f"/v1/videos/{video_id}").json()["status"] != "completed":
            assert time.monotonic() < deadline, f"{video_id} did not complete"
            time.sleep(0.1)


def test_metrics_add_up_to_the_jobs_and_requests(
    server: ServerProcess, key_a: str, session_db: str
) -> None:
    headers = {"Authorization": f"Bearer {key_a}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as client:
        body = {"model": "sandbox", "prompt": "metrics", "seconds": "1", "size": "320x240"}
        ids = [client.post("/v1/videos", json=body).json()["id"] for _ in range(3)]
        cancelled = client.post("/v1/videos", json=body).json()["id"]
        assert client.delete(f"/v1/videos/{cancelled}").status_code == 200
        _wait_terminal(client, ids)
        content = client.get(f"/v1/videos/{ids[0]}/content")
        assert content.status_code == 200 and content.content
        assert client.get(f"/v1/nothing/{ids[0]}").status_code == 404

        # Cluster numbers: what the database says, once the cache (2 s) has caught up
        # with the jobs that other tests' may still be finishing.
        deadline = time.monotonic() + 15
        while True:
            samples = _samples(client.get("/metrics").text)
            if _ended_in_metrics(samples) == _ended_in_database(session_db):
                break
            assert time.monotonic() < deadline, (
                _ended_in_metrics(samples),
                _ended_in_database(session_db),
            )
            time.sleep(0.5)
    assert _ended_in_metrics(samples)[("completed", "sandbox")] >= 3
    assert _ended_in_metrics(samples)[("cancelled", "sandbox")] >= 1

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    # HTTP by route template, the status reads of the edge's fast lane included; no
    # series names an id.
    status_reads = value(
        "vidgate_http_request_duration_seconds_count",
        route="/v1/videos/{video_id}",
        method="GET",
        status="200",
    )
    assert status_reads >= 3
    assert (
        value(
            "vidgate_http_request_duration_seconds_count",
            route="/v1/videos",
            method="POST",
            status="200",
        )
        >= 4
    )
    routes = {dict(labels).get("route") for (_, labels) in samples}
    assert not any(route and "video_0" in route for route in routes), routes
    # A path no route serves is one series, whatever the path.
    assert (
        value(
            "vidgate_http_request_duration_seconds_count",
            route="<unmatched>",
            method="GET",
            status="404",
        )
        >= 1
    )
    served = value("vidgate_http_response_bytes_total", route="/v1/videos/{video_id}/content")
    assert served >= len(content.content)
    # The sandbox's upstream calls, timed per deployment (this server runs its worker).
    assert (
        value(
            "vidgate_upstream_request_duration_seconds_count",
            deployment="sandbox",
            operation="submit",
        )
        >= 3
    )


def test_every_answer_carries_a_request_id(server: ServerProcess, key_a: str) -> None:
    auth = {"Authorization": f"Bearer {key_a}"}
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=10) as client:
        mine = client.get("/v1/videos/video_missing", headers={"X-Request-Id": "trace-1234"})
        fresh = client.get("/v1/models")
        other = client.get("/healthz")
        hostile = client.get("/v1/models", headers={"X-Request-Id": "a b\tc" + "x" * 200})
    assert mine.status_code == 404 and mine.headers["x-request-id"] == "trace-1234"
    assert fresh.headers["x-request-id"].startswith("req_")
    assert other.headers["x-request-id"] != fresh.headers["x-request-id"]
    assert hostile.headers["x-request-id"].startswith("req_")


def test_a_worker_serves_its_own_metrics(pg_server: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VIDGATE_DATABASE_URL": make_database(pg_server),
        "VIDGATE_DATA_DIR": str(tmp_path / "data"),
        "VIDGATE_LOG_JSON": "true",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*VIDGATE, "worker", "--metrics-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
    finally:
        # Served from its start, before the database is migrated: the test needs no
        # more of the process (a graceful stop would wait for the migration).
        proc.kill()
        proc.wait(30)
    assert answer.status_code == 200
    text = answer.text
    # The process's own metrics; the cluster's are the API's to report.
    assert "# TYPE vidgate_upstream_request_duration_seconds histogram" in text
    assert "# TYPE vidgate_webhook_deliveries_total counter" in text
    assert "vidgate_jobs_total" not in text
    lines = log_path.read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert "metrics.listening" in events
