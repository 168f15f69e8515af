"""Connection limits of ``vidgate serve`` (api/protocol.py), against a real server over
raw sockets: slow headers and bodies, oversized header sections, too many connections
and malformed HTTP are each answered in the OpenAI error shape, and the server stays
healthy afterwards."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, fast_env, make_database

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.5
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def limited(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        data_dir=tmp_path_factory.mktemp("limits") / "vidgate",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            VIDGATE_HEADER_TIMEOUT_S=str(TIMEOUT_S),
            VIDGATE_BODY_TIMEOUT_S=str(TIMEOUT_S),
            VIDGATE_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
            VIDGATE_MAX_HEADER_COUNT="50",
            VIDGATE_MAX_HEADER_BYTES=str(16 * 1024),
        ),
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(limited: ServerProcess) -> str:
    return limited.create_key("limits")


def exchange(srv: ServerProcess, data: bytes, *, wait_s: float = 10.0) -> tuple[float, bytes]:
    """Send ``data`` on a fresh connection and read until the server closes it (or
    ``wait_s`` passes): (seconds taken, everything received)."""
    with socket.create_connection(("127.0.0.1", srv.port)) as sock:
        sock.settimeout(wait_s)
        started = time.monotonic()
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return time.monotonic() - started, received


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return status, headers, json.loads(body) if body else None


def assert_error(raw: bytes, status: int, code: str) -> dict[str, Any]:
    got, headers, body = parse(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    return dict(error)


def job_count(srv: ServerProcess) -> int:
    with psycopg.connect(srv.env["VIDGATE_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        assert row is not None
        return int(row[0])


def test_a_body_that_stops_arriving_is_answered_408(limited: ServerProcess, key: str) -> None:
    before = job_count(limited)
    head = (
        "POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    took, raw = exchange(limited, head + b'{"model": "')
    error = assert_error(raw, 408, "request_timeout")
    assert "body" in error["message"]
    # Cut off at the deadline, not held open (today: held as long as the client likes).
    assert TIMEOUT_S * 0.8 <= took < TIMEOUT_S + 5
    assert job_count(limited) == before
    assert "api.unhandled_error" not in limited.log()


def test_a_body_trickling_a_byte_at_a_time_is_cut_off(limited: ServerProcess, key: str) -> None:
    head = (
        "POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", limited.port)) as sock:
        sock.settimeout(0.3)
        sock.sendall(head)
        started, received = time.monotonic(), b""
        # A byte every 0.3 s: each read is quick, the whole never ends.
        while time.monotonic() - started < TIMEOUT_S + 6:
            try:
                sock.sendall(b" ")
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            except TimeoutError:
                continue
            except OSError:
                break
    assert_error(received, 408, "request_timeout")
    assert time.monotonic() - started < TIMEOUT_S + 5


def test_headers_that_stop_arriving_are_answered_408(limited: ServerProcess) -> None:
    took, raw = exchange(limited, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    error = assert_error(raw, 408, "request_timeout")
    assert "headers" in error["message"]
    assert took < TIMEOUT_S + 5


def test_an_idle_connection_is_closed_quietly(limited: ServerProcess) -> None:
    took, raw = exchange(limited, b"")
    assert raw == b""
    assert took < TIMEOUT_S + 5


def test_too_many_header_fields_are_refused(limited: ServerProcess) -> None:
    fields = b"".join(b"X-Field-%d: y\r\n" % i for i in range(5000))
    _, raw = exchange(limited, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    error = assert_error(raw, 431, "headers_too_large")
    assert "50 header fields" in error["message"]


def test_a_huge_header_is_refused(limited: ServerProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    _, raw = exchange(limited, request)
    error = assert_error(raw, 431, "headers_too_large")
    assert str(16 * 1024) in error["message"]


def test_a_long_url_counts_toward_the_header_limit(limited: ServerProcess) -> None:
    request = b"GET /healthz?" + b"q" * (32 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _, raw = exchange(limited, request)
    assert_error(raw, 431, "headers_too_large")


@pytest.mark.parametrize(
    "request_bytes",
    [b"HELLO\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n"],
    ids=["not-http", "header-without-colon", "nul-in-target"],
)
def test_malformed_http_is_answered_in_the_error_shape(
    limited: ServerProcess, request_bytes: bytes
) -> None:
    _, raw = exchange(limited, request_bytes)
    assert_error(raw, 400, "invalid_http")


def test_connections_over_the_cap_get_503_and_the_server_recovers(limited: ServerProcess) -> None:
    held = [socket.create_connection(("127.0.0.1", limited.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # every one accepted by the server
        _, raw = exchange(limited, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        error = assert_error(raw, 503, "server_busy")
        assert error["type"] == "service_unavailable"
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"{limited.base_url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the server did not take connections again"
        time.sleep(0.1)


def test_ordinary_requests_are_unaffected(limited: ServerProcess, key: str) -> None:
    """Keep-alive reuse across requests, a body sent in pieces within the deadline."""
    with httpx.Client(base_url=limited.base_url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
        body = b'{"model": "sandbox", "prompt": "limits", "seconds": 1}'

        def pieces() -> Iterator[bytes]:
            for i in range(0, len(body), 8):
                time.sleep(0.05)
                yield body[i : i + 8]

        created = client.post(
            "/v1/videos",
            content=pieces(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        assert created.status_code == 200, created.text
    assert "api.unhandled_error" not in limited.log()
