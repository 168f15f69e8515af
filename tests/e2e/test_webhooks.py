"""Signed webhooks when a job ends, verified with the standardwebhooks library."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from tests.conftest import ServerProcess


class Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.calls) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.calls) >= count, f"expected {count} deliveries, got {len(self.calls)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _secret(server: ServerProcess, key: str) -> str:
    response = httpx.get(
        f"{server.base_url}/v1/webhooks/secret", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    return str(secret)


def _create(server: ServerProcess, key: str, url: str, **extra: Any) -> str:
    response = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "sandbox",
            "prompt": "hook",
            "duration": 1,
            "size": "320x240",
            "webhook_url": url,
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_url"] == url
    return str(response.json()["id"])


def test_completed_and_failed_events_are_signed(
    server: ServerProcess, key_a: str, key_b: str, receiver: Receiver
) -> None:
    secret = _secret(server, key_a)
    assert _secret(server, key_a) == secret  # stable
    assert _secret(server, key_b) != secret  # per tenant

    done = _create(server, key_a, receiver.url)
    receiver.wait(1)
    headers, body = receiver.calls[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "video.completed"
    assert event["data"]["id"] == done and event["data"]["status"] == "completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(_secret(server, key_b)).verify(body, headers)  # another tenant's secret fails

    failed = _create(
        server, key_a, receiver.url, metadata={"sandbox_fail": "content_policy_violation"}
    )
    receiver.wait(2)
    event = Webhook(secret).verify(receiver.calls[1][1], receiver.calls[1][0])
    assert event["type"] == "video.failed"
    assert event["data"]["id"] == failed
    assert event["data"]["error"]["code"] == "content_policy_violation"


def test_failed_deliveries_are_retried_with_the_same_id(server: ServerProcess, key_a: str) -> None:
    receiver = Receiver(fail_first=1)
    try:
        _create(server, key_a, receiver.url)
        receiver.wait(2, timeout=45)
        ids = {h["webhook-id"] for h, _ in receiver.calls}
        assert len(ids) == 1
        assert json.loads(receiver.calls[0][1]) == json.loads(receiver.calls[1][1])
    finally:
        receiver.close()


def test_webhook_url_is_validated(server: ServerProcess, key_a: str) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {key_a}"},
        json={
            "model": "sandbox",
            "prompt": "x",
            "duration": 1,
            "webhook_url": "ftp://example.com/hook",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "webhook_url"
