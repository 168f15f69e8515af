"""One tenant's slow webhook receiver delays neither another tenant's webhooks nor
upstream cancels (issue 10, point 1): deliveries have a total deadline, a queue of
their own and a cap per destination and per tenant; cancels keep slots of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, fast_env, make_database
from tests.e2e.test_webhooks import Receiver
from tests.peers import ThreadedPeer, trickle_headers

# Tenant A's events: well above every cap below, and above the 8 slots that cancels and
# webhooks shared before they were apart.
A_EVENTS = 16
PER_DESTINATION = 4


@pytest.fixture
def gateway(pg_server: str, tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(
        data_dir=tmp_path / "vidgate",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            # Before the split: the slots cancels and webhooks shared. After: webhook
            # slots (cancels have their own, 8 by default).
            VIDGATE_WORKER_CONCURRENCY="8",
            # Longer than the test waits for B's event and the cancel: a deadline
            # alone (slots freed every 15 s) is not what makes them prompt.
            VIDGATE_WEBHOOK_TIMEOUT_S="15",
            VIDGATE_WEBHOOK_PER_DESTINATION=str(PER_DESTINATION),
        ),
    )
    srv.start()
    yield srv
    srv.stop()


def _create(srv: ServerProcess, key: str, **extra: Any) -> str:
    response = httpx.post(
        f"{srv.base_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "sandbox", "prompt": "p", "duration": 1, "size": "320x240", **extra},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _wait(what: str, done: Any, timeout: float) -> float:
    """Seconds until ``done()`` held, polled every 0.1 s; fails after ``timeout``."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _row(url: str, query: str, *args: object) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, args).fetchone()
    return None if row is None else row[0]


def test_a_trickling_receiver_delays_neither_other_tenants_nor_cancels(
    gateway: ServerProcess,
) -> None:
    db = gateway.env["VIDGATE_DATABASE_URL"]
    key_a = gateway.create_key("a", "--tenant", "tenant-a")
    key_b = gateway.create_key("b", "--tenant", "tenant-b")
    # A receiver that sends its status line, then a header byte every 2 s, forever.
    with ThreadedPeer(trickle_headers(interval_s=2.0)) as slow:
        receiver = Receiver()
        try:
            # A job that stays upstream for 10 minutes, to be deleted while A's
            # deliveries hang.
            long_job = _create(gateway, key_b, metadata={"sandbox_latency_ms": "600000"})
            _wait(
                "the long job is waiting upstream",
                lambda: _row(db, "SELECT upstream_id FROM jobs WHERE id = %s", long_job),
                30,
            )
            for _ in range(A_EVENTS):
                _create(gateway, key_a, webhook_url=f"{slow.url}/hook")
            # All of A's events are due, and the first of them hang at the receiver
            # (before the split: in every slot that cancels and webhooks shared).
            _wait(
                "A's jobs complete",
                lambda: (
                    _row(
                        db,
                        "SELECT count(*) FROM jobs WHERE state = 'completed' AND webhook_url = %s",
                        f"{slow.url}/hook",
                    )
                    == A_EVENTS
                ),
                60,
            )
            _wait("A's deliveries hang", lambda: slow.open >= PER_DESTINATION, 30)

            deleted = httpx.delete(
                f"{gateway.base_url}/v1/videos/{long_job}",
                headers={"Authorization": f"Bearer {key_b}"},
            )
            assert deleted.status_code == 200, deleted.text
            # Before the split the cancel waited for a slot: until the first of A's
            # deliveries timed out (WEBHOOK_TIMEOUT_S), or for good with no deadline.
            _wait(
                "the upstream cancel runs",
                lambda: _row(
                    db,
                    "SELECT cancelled_at FROM sandbox_tasks WHERE idempotency_key = %s",
                    long_job,
                ),
                5,
            )

            _create(gateway, key_b, webhook_url=receiver.url)
            # Its job takes ~0.3 s upstream. Before, B's event queued behind all of A's:
            # two rounds of 8 slots held to the deadline (30 s), or for good.
            _wait("B's event is delivered", lambda: len(receiver.calls) >= 1, 12)

            # A's deliveries never held more than the destination's cap at once.
            assert slow.open >= 1, "A's deliveries should still hang"
            assert slow.max_open <= PER_DESTINATION
        finally:
            receiver.close()
