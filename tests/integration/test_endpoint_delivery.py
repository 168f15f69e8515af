"""Projects' webhook endpoints against a real PostgreSQL and real receivers on loopback:
the events the trigger writes on each state change, the deliverer's attempts, and the
rules that take days (retries for over 24 h, the previous secret for 24 h after a
rotation, disabling after 3 days of failures), time-travelled by moving the stored
times back rather than waited for.

The deliverer is driven directly (``run_due_once``), no worker running.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from tests.e2e.test_webhook_endpoints import HookReceiver
from tests.integration.conftest import add_caller, runtime_on

from vidgate.core.jobs import JobState
from vidgate.core.spec import VideoRequest
from vidgate.core.webhook_endpoints import EVENTS, RETRY_DELAYS_S
from vidgate.db import endpoint_deliveries
from vidgate.db.claims import claim_due_submissions
from vidgate.db.database import autocommit
from vidgate.db.jobs import db_now, transition, update_job
from vidgate.engine.endpoint_deliverer import EndpointDeliverer
from vidgate.engine.service import JobService, Principal
from vidgate.runtime import Runtime
from vidgate.services.webhook_endpoints import EndpointService

ADMIN = Principal("key_h", "tenant_h", "test", "admin")
OTHER = Principal("key_o", "tenant_o", "test", "admin")
DAY_S = 86400


@pytest.fixture
async def runtime(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with runtime_on(
        database_url, tmp_path, allow_insecure_urls=True, webhook_timeout_s=2.0
    ) as rt:
        async with rt.db.begin() as conn:
            await add_caller(conn, "h")
            await add_caller(conn, "o")
        yield rt


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    r = HookReceiver()
    yield r
    r.close()


def _service(runtime: Runtime) -> EndpointService:
    return runtime.services.webhook_endpoints


def _sql(runtime: Runtime, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(runtime.database_url, autocommit=True) as conn:
        cur = conn.execute(query, args)
        return cur.fetchall() if cur.description else []


async def _job(runtime: Runtime, principal: Principal = ADMIN) -> str:
    job = await JobService(runtime.engine).create(
        principal, VideoRequest(model="sandbox", prompt="p", seconds=1, size="320x240")
    )
    return job.id


def _deliveries(runtime: Runtime, endpoint_id: str) -> list[tuple[str, str, str]]:
    return [
        (r[0], r[1], r[2])
        for r in _sql(
            runtime,
            "SELECT event_type, job_id, payload FROM webhook_deliveries"
            " WHERE endpoint_id = %s ORDER BY id",
            endpoint_id,
        )
    ]


async def test_each_state_change_writes_its_event_once_in_its_transaction(
    runtime: Runtime,
) -> None:
    service = _service(runtime)
    url = "http://127.0.0.1:9/hook"
    every = await service.create(ADMIN, url=url, events=EVENTS, project=None, remote_addr=None)
    ends = await service.create(
        ADMIN, url=url, events=["video.completed"], project=None, remote_addr=None
    )
    other = await service.create(OTHER, url=url, events=EVENTS, project=None, remote_addr=None)

    job_id = await _job(runtime)
    async with runtime.db.begin() as conn:
        claimed = await claim_due_submissions(conn, limit=10, lease_s=10, capped=[])
        assert [j.id for j in claimed] == [job_id]
        # Back to queued (a fallback) and claimed again: no second in_progress.
        await transition(conn, job_id, from_states=[JobState.SUBMITTING], to=JobState.QUEUED)
        await update_job(conn, job_id, submit_at=db_now())
    async with runtime.db.begin() as conn:
        assert await claim_due_submissions(conn, limit=10, lease_s=10, capped=[])
    async with runtime.db.begin() as conn:
        await update_job(conn, job_id, state="waiting")
        await update_job(conn, job_id, state="finalizing")
        await update_job(conn, job_id, state="completed", completed_at=db_now())
    # A state change rolled back leaves no event behind.
    cancelled = await _job(runtime)
    with pytest.raises(RuntimeError):
        async with runtime.db.begin() as conn:
            await update_job(conn, cancelled, state="failed", error_code="x")
            raise RuntimeError
    await JobService(runtime.engine).delete(ADMIN, cancelled)
    failed = await _job(runtime)
    async with runtime.db.begin() as conn:
        await update_job(
            conn, failed, state="failed", error_code="upstream_failed", error_message="boom"
        )

    got = _deliveries(runtime, every.endpoint.id)
    assert [(e, j) for e, j, _ in got] == [
        ("video.queued", job_id),
        ("video.in_progress", job_id),
        ("video.completed", job_id),
        ("video.queued", cancelled),
        ("video.cancelled", cancelled),
        ("video.queued", failed),
        ("video.failed", failed),
    ]
    body = json.loads(got[-1][2])
    assert body["id"] == f"evt_{failed}_failed" and body["type"] == "video.failed"
    assert body["object"] == "event" and isinstance(body["created_at"], int)
    assert body["data"] == {
        "id": failed,
        "object": "video",
        "model": "sandbox",
        "status": "failed",
        "error": {"code": "upstream_failed", "message": "boom"},
    }
    assert json.loads(got[2][2])["data"]["error"] is None
    assert [e for e, _, _ in _deliveries(runtime, ends.endpoint.id)] == ["video.completed"]
    # Another project's endpoint hears nothing of this project's jobs.
    assert _deliveries(runtime, other.endpoint.id) == []


async def test_a_failing_receiver_is_retried_for_more_than_a_day_every_attempt_recorded(
    runtime: Runtime,
) -> None:
    receiver = HookReceiver(status=500, body=b'{"error": "down for maintenance"}' + b"x" * 2000)
    try:
        made = await _service(runtime).create(
            ADMIN, url=receiver.url, events=["video.queued"], project=None, remote_addr=None
        )
        await _job(runtime)
        deliverer = EndpointDeliverer(runtime.engine, concurrency=4)
        waited = 0.0
        for attempt in range(1, len(RETRY_DELAYS_S) + 2):
            assert await deliverer.run_due_once() == 1
            assert await deliverer.run_due_once() == 0  # nothing due until the wait is over
            (status, attempts, due_in) = _sql(
                runtime,
                "SELECT status, attempts, extract(epoch FROM next_attempt_at - now())"
                " FROM webhook_deliveries WHERE endpoint_id = %s",
                made.endpoint.id,
            )[0]
            assert attempts == attempt
            if status == "failed":
                break
            assert status == "pending"
            waited += float(due_in)
            # Time travel: the wait is over.
            _sql(runtime, "UPDATE webhook_deliveries SET next_attempt_at = now()")
        assert status == "failed" and attempts == len(RETRY_DELAYS_S) + 1
        assert waited >= DAY_S, waited
        assert len(receiver.calls) == attempts
        assert len({h["webhook-id"] for h, _ in receiver.calls}) == 1
        for headers, body in receiver.calls:
            Webhook(made.secret).verify(body, headers)

        page, more = await _service(runtime).deliveries(
            ADMIN, made.endpoint.id, after=None, limit=10
        )
        assert not more and len(page) == 1
        log = page[0].attempt_log
        assert [a.attempt for a in log] == list(range(1, attempts + 1))
        assert all(a.status_code == 500 and a.error == "HTTP 500" for a in log)
        assert all(a.latency_ms >= 0 for a in log)
        snippet = log[0].response_snippet
        assert snippet is not None and snippet.startswith('{"error": "down for maintenance"}')
        assert len(snippet) == 512
    finally:
        receiver.close()


async def test_an_endpoint_failing_for_three_days_is_disabled_with_the_reason(
    runtime: Runtime,
) -> None:
    receiver = HookReceiver(status=503)
    try:
        service = _service(runtime)
        made = await service.create(
            ADMIN, url=receiver.url, events=EVENTS, project=None, remote_addr=None
        )
        endpoint_id = made.endpoint.id
        deliverer = EndpointDeliverer(runtime.engine, concurrency=4)
        await _job(runtime)
        assert await deliverer.run_due_once() == 1
        (since,) = _sql(
            runtime, "SELECT failing_since FROM webhook_endpoints WHERE id = %s", endpoint_id
        )[0]
        assert since is not None

        # Failing for a minute less than three days: still enabled.
        _sql(
            runtime,
            "UPDATE webhook_endpoints SET failing_since = now() - interval '3 days'"
            " + interval '1 minute'",
        )
        _sql(runtime, "UPDATE webhook_deliveries SET next_attempt_at = now()")
        assert await deliverer.run_due_once() == 1
        assert (await service.get(ADMIN, endpoint_id)).disabled_at is None

        # Three days: disabled, its pending deliveries failed, the reason shown.
        _sql(runtime, "UPDATE webhook_endpoints SET failing_since = now() - interval '3 days'")
        _sql(runtime, "UPDATE webhook_deliveries SET next_attempt_at = now()")
        await _job(runtime)  # a second delivery, pending behind the first
        assert await deliverer.run_due_once() >= 1
        endpoint = await service.get(ADMIN, endpoint_id)
        assert endpoint.disabled_at is not None
        assert endpoint.disabled_reason is not None
        assert "failed for 3 days" in endpoint.disabled_reason
        assert "HTTP 503" in endpoint.disabled_reason
        assert {s for (s,) in _sql(runtime, "SELECT status FROM webhook_deliveries")} == {"failed"}
        assert _sql(
            runtime,
            "SELECT actor, tenant_id, detail->>'reason' FROM audit_log"
            " WHERE action = 'webhook_endpoints.disable' AND target = %s",
            endpoint_id,
        ) == [("vidgate", "tenant_h", endpoint.disabled_reason)]
        # No new events for a disabled endpoint, and a resend is refused.
        before = len(_deliveries(runtime, endpoint_id))
        await _job(runtime)
        assert len(_deliveries(runtime, endpoint_id)) == before
        assert await deliverer.run_due_once() == 0

        # Enabled again: events flow, and a success ends the streak.
        await service.enable(ADMIN, endpoint_id, remote_addr="127.0.0.1")
        receiver.status = 204
        await _job(runtime)
        assert await deliverer.run_due_once() == 1
        endpoint = await service.get(ADMIN, endpoint_id)
        assert endpoint.disabled_at is None and endpoint.failing_since is None
    finally:
        receiver.close()


async def test_a_success_ends_the_failure_streak(runtime: Runtime, receiver: HookReceiver) -> None:
    receiver.status = 500
    made = await _service(runtime).create(
        ADMIN, url=receiver.url, events=["video.queued"], project=None, remote_addr=None
    )
    deliverer = EndpointDeliverer(runtime.engine, concurrency=4)
    await _job(runtime)
    await deliverer.run_due_once()
    _sql(runtime, "UPDATE webhook_endpoints SET failing_since = now() - interval '2 days'")
    receiver.status = 200
    await _job(runtime)
    await deliverer.run_due_once()
    assert (await _service(runtime).get(ADMIN, made.endpoint.id)).failing_since is None
    # Later failures start a new streak: three days from now, not from before.
    receiver.status = 500
    await _job(runtime)
    await deliverer.run_due_once()
    (age,) = _sql(
        runtime,
        "SELECT extract(epoch FROM now() - failing_since) FROM webhook_endpoints WHERE id = %s",
        made.endpoint.id,
    )[0]
    assert float(age) < 60


async def test_the_previous_secret_verifies_for_24_hours_after_a_rotation(
    runtime: Runtime, receiver: HookReceiver
) -> None:
    service = _service(runtime)
    made = await service.create(
        ADMIN, url=receiver.url, events=["video.queued"], project=None, remote_addr=None
    )
    rotated = await service.rotate_secret(ADMIN, made.endpoint.id, remote_addr=None)
    assert rotated.secret != made.secret
    expires = rotated.endpoint.previous_secret_expires_at
    assert expires is not None
    deliverer = EndpointDeliverer(runtime.engine, concurrency=4)
    await _job(runtime)
    await deliverer.run_due_once()
    headers, body = receiver.calls[-1]
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(made.secret).verify(body, headers)
    Webhook(rotated.secret).verify(body, headers)

    # 24 hours later the old secret no longer signs.
    _sql(
        runtime,
        "UPDATE webhook_endpoints SET previous_secret_expires_at = now() - interval '1 second'",
    )
    assert (await service.get(ADMIN, made.endpoint.id)).previous_secret_expires_at is None
    await _job(runtime)
    await deliverer.run_due_once()
    headers, body = receiver.calls[-1]
    Webhook(rotated.secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(made.secret).verify(body, headers)


async def test_a_resend_is_one_more_attempt(runtime: Runtime, receiver: HookReceiver) -> None:
    service = _service(runtime)
    made = await service.create(
        ADMIN, url=receiver.url, events=["video.queued"], project=None, remote_addr="10.1.2.3"
    )
    deliverer = EndpointDeliverer(runtime.engine, concurrency=4)
    await _job(runtime)
    await deliverer.run_due_once()
    (delivery,), _ = await service.deliveries(ADMIN, made.endpoint.id, after=None, limit=5)
    assert delivery.status == "delivered"

    receiver.status = 500
    again = await service.resend(ADMIN, made.endpoint.id, delivery.id, remote_addr="10.1.2.3")
    assert again.status == "pending" and again.next_attempt_at is not None
    assert await deliverer.run_due_once() == 1
    (delivery,), _ = await service.deliveries(ADMIN, made.endpoint.id, after=None, limit=5)
    # A resend that fails is not retried.
    assert delivery.status == "failed" and delivery.attempts == 2
    assert [a.status_code for a in delivery.attempt_log] == [200, 500]
    assert len({h["webhook-id"] for h, _ in receiver.calls}) == 1
    assert _sql(
        runtime,
        "SELECT actor, action, target, remote_addr FROM audit_log"
        " WHERE tenant_id = 'tenant_h' ORDER BY id",
    ) == [
        ("key_h", "webhook_endpoints.create", made.endpoint.id, "10.1.2.3"),
        ("key_h", "webhook_deliveries.resend", delivery.id, "10.1.2.3"),
    ]


async def test_a_claim_whose_lease_ran_out_is_sent_again_and_recorded_once(
    runtime: Runtime, receiver: HookReceiver
) -> None:
    made = await _service(runtime).create(
        ADMIN, url=receiver.url, events=["video.queued"], project=None, remote_addr=None
    )
    await _job(runtime)
    deliverer = EndpointDeliverer(runtime.engine, concurrency=4)
    # A worker claims the delivery, sends it, and is killed before its write-back.
    async with autocommit(runtime.db) as conn:
        (claim,) = await endpoint_deliveries.claim_due(conn, limit=5, lease_s=30)
    killed = await deliverer.work(claim)
    assert await deliverer.run_due_once() == 0  # its lease holds
    _sql(runtime, "UPDATE webhook_deliveries SET next_attempt_at = now()")  # ...and runs out
    assert await deliverer.run_due_once() == 1
    # The killed worker's write-back, had it come late, changes nothing.
    await deliverer.write_back([killed])
    (delivery,), _ = await _service(runtime).deliveries(
        ADMIN, made.endpoint.id, after=None, limit=5
    )
    assert delivery.status == "delivered" and delivery.attempts == 1
    assert len(delivery.attempt_log) == 1
    assert len(receiver.calls) == 2
    assert len({h["webhook-id"] for h, _ in receiver.calls}) == 1
