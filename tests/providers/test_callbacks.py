"""Provider completion callbacks, end to end through a real gateway.

The gateway runs with ``VIDGATE_PUBLIC_BASE_URL`` set, so every adapter that takes a
callback hands its upstream a signed ``/v1/callbacks/{job_id}`` URL. The fakes never
finish a task by being polled (``polls_to_finish`` is huge); the test makes a task
succeed with ``fake.finish()``, which POSTs the provider's callback. Luma, Replicate
and fal poll only every 30 s here, so a job that completes within seconds of
``finish()`` completed because of the callback.

A callback is only a hint: it makes the gateway read the upstream status now, by
pulling the job's next poll (``jobs.next_poll_at``) forward (engine/nudge.py). These
tests also check that the job keeps one poll schedule, and that the callback route
refuses a bad signature and answers MiniMax's challenge.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
import yaml

from tests.conftest import ServerProcess, fast_env, make_database
from tests.fakes.harness import FakeServer, FakeUpstream
from tests.fakes.luma import FakeLuma
from tests.fakes.minimax import FakeMiniMax
from tests.providers.test_contract import _card, _create, _fake_class, _get, _wait_all
from vidgate.core.signing import UrlSigner

# Providers with a poll interval option: it is set to 30 s, far beyond any wait below.
SLOW_POLLING = ("luma", "replicate", "fal")
# No poll option (the engine backs off from 1 s): the callback is checked end to end.
ADAPTIVE_POLLING = ("kling", "minimax", "seedance")
SLOW_POLL_S = 30
# A job must complete this soon after its upstream calls back.
CALLBACK_LATENCY_S = 3.0
NEVER = 10**9
MAX_BODY_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeUpstream]]:
    with ExitStack() as stack:
        found: dict[str, FakeUpstream] = {}
        for name in (*SLOW_POLLING, *ADAPTIVE_POLLING):
            fake = _fake_class(importlib.import_module(f"tests.fakes.{name}"))()
            stack.enter_context(FakeServer(fake))
            found[name] = fake
        yield found


@pytest.fixture(scope="module")
def gateway(
    fakes: dict[str, FakeUpstream], pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    deployments: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for name, fake in fakes.items():
        module = importlib.import_module(f"tests.fakes.{name}")
        options = dict(module.DEPLOYMENT.get("options") or {})
        if name in SLOW_POLLING:
            options["poll_s"] = SLOW_POLL_S
        deployments[f"cb-{name}"] = {
            **module.DEPLOYMENT,
            "options": options,
            "base_url": fake.base_url + getattr(module, "BASE_PATH", ""),
        }
        models[f"cb-{name}"] = _card(
            module, [{"provider": f"cb-{name}", "upstream_model": module.UPSTREAM_MODEL}]
        )
    root = tmp_path_factory.mktemp("callbacks")
    models_file = root / "models.yaml"
    models_file.write_text(yaml.safe_dump({"deployments": deployments, "models": models}))
    srv = ServerProcess(
        data_dir=root / "data",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            VIDGATE_MODELS_FILE=str(models_file),
            VIDGATE_WORKER_CONCURRENCY="8",
            VIDGATE_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        ),
    )
    srv.env["VIDGATE_PUBLIC_BASE_URL"] = srv.base_url
    srv.start()
    try:
        yield srv, srv.create_key("callbacks", "--live", "--tenant", "callbacks")
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _never_finish_by_polling(fakes: dict[str, FakeUpstream]) -> None:
    for fake in fakes.values():
        fake.polls_to_finish = NEVER
        fake.fail_tasks = None


def _body(name: str) -> dict[str, Any]:
    module = importlib.import_module(f"tests.fakes.{name}")
    return {"prompt": f"{name} callback test", "duration": module.SECONDS, "size": module.SIZE}


def _db(gateway: tuple[ServerProcess, str]) -> str:
    return gateway[0].env["VIDGATE_DATABASE_URL"]


def _wait_waiting(gateway: tuple[ServerProcess, str], jobs: dict[str, str]) -> None:
    """Until every job waits on its upstream task (its upstream id is committed)."""
    deadline = time.monotonic() + 30
    with psycopg.connect(_db(gateway), autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state = 'waiting'",
                (list(jobs.values()),),
            ).fetchone()
            if row and row[0] == len(jobs):
                return
            time.sleep(0.05)
    raise AssertionError(f"jobs never reached waiting: {jobs}")


def _upstream_id(gateway: tuple[ServerProcess, str], job_id: str) -> str:
    with psycopg.connect(_db(gateway)) as conn:
        row = conn.execute("SELECT upstream_id FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None and row[0]
    return str(row[0])


def _task_of(fake: FakeUpstream, upstream_id: str) -> str:
    """The fake's task: the job keeps the upstream's own id, nothing packed into it."""
    assert upstream_id in fake.tasks, upstream_id
    return upstream_id


def _steps(gateway: tuple[ServerProcess, str], job_id: str) -> list[tuple[str, str, float]]:
    """(task name, status, seconds until due) of the job's queued and running steps,
    but for the previews step that follows a completion (engine/previews.py): it makes
    a thumbnail from the stored video and reads nothing upstream."""
    with psycopg.connect(_db(gateway)) as conn:
        rows = conn.execute(
            "SELECT task_name, status::text,"
            " EXTRACT(EPOCH FROM (COALESCE(scheduled_at, now()) - now()))"
            " FROM procrastinate_jobs WHERE args->>'job_id' = %s"
            " AND status IN ('todo', 'doing') AND task_name <> 'vidgate:previews' ORDER BY id",
            (job_id,),
        ).fetchall()
    return [(r[0], r[1], float(r[2])) for r in rows]


def _next_poll(gateway: tuple[ServerProcess, str], job_id: str) -> float | None:
    """Seconds until the job's next status read (engine/poller.py), or None."""
    with psycopg.connect(_db(gateway)) as conn:
        row = conn.execute(
            "SELECT EXTRACT(EPOCH FROM (next_poll_at - now())) FROM jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
    assert row is not None
    return None if row[0] is None else float(row[0])


def _signer(gateway: tuple[ServerProcess, str]) -> UrlSigner:
    with psycopg.connect(_db(gateway)) as conn:
        row = conn.execute(
            "SELECT value FROM instance_secrets WHERE name = 'url_signing'"
        ).fetchone()
    assert row is not None
    return UrlSigner(bytes(row[0]), 3600)


def _finish_and_time(
    gateway: tuple[ServerProcess, str],
    fakes: dict[str, FakeUpstream],
    jobs: dict[str, str],
) -> dict[str, float]:
    """``finish()`` each job's upstream task; seconds until each job completed."""
    started: dict[str, float] = {}
    for name, job_id in jobs.items():
        fake = fakes[name]
        task = _task_of(fake, _upstream_id(gateway, job_id))
        started[name] = time.monotonic()
        assert fake.finish(task) == [200], f"{name}: callback not accepted"
    took: dict[str, float] = {}
    deadline = time.monotonic() + SLOW_POLL_S - 5
    while time.monotonic() < deadline and len(took) < len(jobs):
        for name, job_id in jobs.items():
            if name not in took and _get(gateway, job_id)["status"] in ("completed", "failed"):
                took[name] = time.monotonic() - started[name]
        time.sleep(0.05)
    missing = sorted(set(jobs) - set(took))
    assert not missing, f"not completed after the callback: {missing}\n{gateway[0].log()[-3000:]}"
    return took


def test_a_callback_completes_the_job_without_waiting_for_the_next_poll(
    fakes: dict[str, FakeUpstream], gateway: tuple[ServerProcess, str]
) -> None:
    jobs = {name: _create(gateway, f"cb-{name}", _body(name)) for name in SLOW_POLLING}
    _wait_waiting(gateway, jobs)
    signer = _signer(gateway)
    for name, job_id in jobs.items():
        # The regular poll is 30 s away: only the callback can finish the job in time.
        due_in = _next_poll(gateway, job_id)
        assert _steps(gateway, job_id) == [], name
        assert due_in is not None and due_in > SLOW_POLL_S - 10, name
        # The upstream was handed this job's signed callback URL.
        fake = fakes[name]
        url = fake.callback_urls[_task_of(fake, _upstream_id(gateway, job_id))]
        assert url.startswith(f"{gateway[0].base_url}/v1/callbacks/{job_id}?"), name
        assert signer.verify_callback(job_id, parse_qs(urlsplit(url).query)["signature"][0])
    took = _finish_and_time(gateway, fakes, jobs)
    for name, seconds in took.items():
        body = _get(gateway, jobs[name])
        assert body["status"] == "completed", f"{name}: {body['error']}"
        assert seconds < CALLBACK_LATENCY_S, f"{name} took {seconds:.2f}s after the callback"
        # Done: no step of the job is left, and nothing else polls it.
        assert _steps(gateway, jobs[name]) == [], name
        assert _next_poll(gateway, jobs[name]) is None, name


def test_callbacks_of_providers_without_a_poll_option(
    fakes: dict[str, FakeUpstream], gateway: tuple[ServerProcess, str]
) -> None:
    jobs = {name: _create(gateway, f"cb-{name}", _body(name)) for name in ADAPTIVE_POLLING}
    _wait_waiting(gateway, jobs)
    took = _finish_and_time(gateway, fakes, jobs)
    for name, seconds in took.items():
        body = _get(gateway, jobs[name])
        assert body["status"] == "completed", f"{name}: {body['error']}"
        assert seconds < CALLBACK_LATENCY_S, f"{name} took {seconds:.2f}s after the callback"
    # MiniMax validated the URL first: the gateway echoed its challenge.
    minimax = cast(FakeMiniMax, fakes["minimax"])
    task = _task_of(minimax, _upstream_id(gateway, jobs["minimax"]))
    assert minimax.challenges[task] is True


def test_a_callback_while_running_keeps_one_poll_chain(
    fakes: dict[str, FakeUpstream], gateway: tuple[ServerProcess, str]
) -> None:
    luma = cast(FakeLuma, fakes["luma"])
    job_id = _create(gateway, "cb-luma", _body("luma"))
    _wait_waiting(gateway, {"luma": job_id})
    task = _task_of(luma, _upstream_id(gateway, job_id))
    reads = luma.reads
    # Luma calls back on each state change; a burst of them while the task runs.
    for _ in range(5):
        assert luma.send_callback(task) == 200
    deadline = time.monotonic() + CALLBACK_LATENCY_S
    while luma.reads == reads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert luma.reads > reads, "the callback did not make the gateway read the status"
    # Once the nudged read is through, the next poll is 30 s away again: the schedule
    # was pulled forward, not forked, and nothing is queued beside it.
    deadline = time.monotonic() + CALLBACK_LATENCY_S
    while time.monotonic() < deadline:
        due_in = _next_poll(gateway, job_id)
        if due_in is not None and due_in > SLOW_POLL_S - 10:
            break
        time.sleep(0.05)
    due_in = _next_poll(gateway, job_id)
    assert due_in is not None and due_in > SLOW_POLL_S - 10
    assert _steps(gateway, job_id) == []
    # Each callback costs at most one status read.
    assert 1 <= luma.reads - reads <= 5
    assert _get(gateway, job_id)["status"] == "processing"
    # The task then ends: one more callback completes the job, and nothing is left.
    took = _finish_and_time(gateway, fakes, {"luma": job_id})
    assert took["luma"] < CALLBACK_LATENCY_S
    assert _steps(gateway, job_id) == [] and _next_poll(gateway, job_id) is None


def test_the_callback_route(
    fakes: dict[str, FakeUpstream], gateway: tuple[ServerProcess, str]
) -> None:
    srv, _ = gateway
    signer = _signer(gateway)
    job_id = _create(gateway, "cb-luma", _body("luma"))
    good = signer.sign_callback(srv.base_url, job_id)
    signature = parse_qs(urlsplit(good).query)["signature"][0]
    other = parse_qs(urlsplit(signer.sign_callback(srv.base_url, "video_other")).query)
    refused = [
        f"{srv.base_url}/v1/callbacks/{job_id}",
        f"{srv.base_url}/v1/callbacks/{job_id}?signature=",
        f"{srv.base_url}/v1/callbacks/{job_id}?signature={signature[:-2]}",
        f"{srv.base_url}/v1/callbacks/{job_id}?signature={other['signature'][0]}",
        f"{srv.base_url}/v1/callbacks/{job_id}?signature=%C3%A9",
    ]
    for url in refused:
        response = httpx.post(url, json={"challenge": "x"})
        assert response.status_code == 404, url
        error = response.json()["error"]
        assert error["code"] == "not_found" and set(error) >= {"message", "type", "param"}
    # MiniMax's validation: the challenge comes back as sent.
    response = httpx.post(good, json={"challenge": "c-123"}, timeout=3)
    assert response.status_code == 200 and response.json() == {"challenge": "c-123"}
    # Anything else is a hint, whatever its body: 200 {"ok": true}.
    for content in (b'{"state": "completed"}', b"not json", b"", b"[1, 2]"):
        response = httpx.post(good, content=content)
        assert response.status_code == 200 and response.json() == {"ok": True}, content
    # A signed URL of a job that does not exist is accepted and does nothing.
    unknown = signer.sign_callback(srv.base_url, "video_unknown")
    assert httpx.post(unknown, json={}).json() == {"ok": True}
    # The body is capped like every request body.
    big = b"x" * (MAX_BODY_BYTES + 1)
    assert httpx.post(good, content=big, timeout=30).status_code == 413
    assert httpx.get(good).status_code == 405
    # No callback signature is ever logged: neither by the route nor in the upstream
    # requests that carry the URL (fal's is a query parameter).
    log = srv.log()
    assert "callback.received" in log and "callback.challenge" in log and job_id in log
    handed_out = [url for fake in fakes.values() for url in fake.callback_urls.values()]
    assert handed_out
    for url in [good, *handed_out]:
        assert parse_qs(urlsplit(url).query)["signature"][0] not in log, url
    _wait_waiting(gateway, {"luma": job_id})
    fakes["luma"].finish()
    _wait_all(gateway, {"luma": job_id}, timeout=SLOW_POLL_S - 5)
