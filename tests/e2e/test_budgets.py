"""Budgets end to end: two `vidgate serve` processes on one database (one of them
with the worker), live jobs served by a fake OpenAI Videos upstream on loopback.

- 200 creates at once, split over both processes and both API shapes, against a
  budget that fits exactly N: exactly N accepted, the rest 402 ``budget_exceeded``
  naming the budget; once the N have finished (each settled at its real cost), the
  ledger, the jobs' costs and the usage total agree to the cent.
- ``vidgate budgets set/list/delete`` and ``/v1/admin/budgets``: scoped to the caller's
  project (an operator's to any), bad input refused, every change audited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, cli, fast_env, make_database
from tests.fakes import openai_videos
from tests.fakes.harness import FakeServer

from vidgate.accounts.keys import NewKey, create_key
from vidgate.db.database import create_engine
from vidgate.db.migrate import migrate

# 4 s at 0.0123 USD a second: 0.0492 a video, not a whole number of cents.
RATE = Decimal("0.0123")
ESTIMATE = RATE * 4
N = 20
CREATES = 200


@dataclass
class Gateway:
    a: ServerProcess  # serve, with the worker
    b: ServerProcess  # serve --no-worker
    database_url: str
    member: str  # live member key of project "capped"
    member_id: str
    admin: str  # admin key of "capped"
    operator: str  # operator key, of project "ops"
    rival: str  # admin key of project "rival"
    rival_id: str
    ops_member: str  # live member key of project "ops"

    def run(self, *args: str, check: bool = True) -> Any:
        return cli(
            *args, "--data-dir", str(self.a.data_dir), env=self.a.env, check=check, in_process=True
        )


async def _keys(url: str) -> dict[str, NewKey]:
    """The keys, written straight to the database before the servers start (one
    process instead of a CLI run per key; `keys create` is tested in test_cli.py)."""
    db = create_engine(url, pool_size=1)
    try:
        async with db.begin() as conn:
            return {
                "member": await create_key(conn, name="app", mode="live", tenant="capped"),
                "admin": await create_key(
                    conn, name="boss", mode="live", role="admin", tenant="capped"
                ),
                "operator": await create_key(
                    conn, name="ops", mode="live", role="operator", tenant="ops"
                ),
                "rival": await create_key(
                    conn, name="rival", mode="live", role="admin", tenant="rival"
                ),
                "ops_member": await create_key(conn, name="opsapp", mode="live", tenant="ops"),
            }
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def gateway(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("budgets")
    with FakeServer(openai_videos.FakeOpenAIVideos()) as fake:
        models = root / "models.yaml"
        models.write_text(
            f"""
deployments:
  oai:
    provider: openai_videos
    base_url: "{fake.url}{openai_videos.BASE_PATH}"
    credentials: {{api_key: "{openai_videos.API_KEY}"}}
models:
  capped-model:
    owned_by: tests
    default_seconds: 4
    pricing: {{default_per_second: {RATE}}}
    deployments: [{{provider: oai, upstream_model: {openai_videos.UPSTREAM_MODEL}}}]
  unpriced-model:
    owned_by: tests
    default_seconds: 4
    deployments: [{{provider: oai, upstream_model: {openai_videos.UPSTREAM_MODEL}}}]
"""
        )
        url = make_database(pg_server)
        migrate(url)
        keys = asyncio.run(_keys(url))
        env = fast_env(
            VIDGATE_DATABASE_URL=url,
            VIDGATE_MODELS_FILE=str(models),
            # 100 creates at once per process queue for its pool's connections, on a
            # loaded 2-core runner for longer than the default 5 s (a 503, with or
            # without a budget): this test is about which creates a budget admits.
            VIDGATE_DB_TIMEOUT_S="60",
            # Each process's pools stay small (20 + 8 + 4 connections): two processes
            # with their default pools full take PostgreSQL's default 100.
            VIDGATE_WEBHOOK_CONCURRENCY="2",
            VIDGATE_CANCEL_CONCURRENCY="2",
        )
        data_dir = root / "data"
        a = ServerProcess(data_dir=data_dir, env=env)
        b = ServerProcess(data_dir=data_dir, env=env, extra_args=("--no-worker",))
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(a.start), pool.submit(b.start)]:
                started.result()
        try:
            yield Gateway(
                a,
                b,
                url,
                member=keys["member"].secret,
                member_id=keys["member"].id,
                admin=keys["admin"].secret,
                operator=keys["operator"].secret,
                rival=keys["rival"].secret,
                rival_id=keys["rival"].id,
                ops_member=keys["ops_member"].secret,
            )
        finally:
            b.stop()
            a.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _sql(gw: Gateway, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(gw.database_url) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


async def _storm(gw: Gateway) -> list[httpx.Response]:
    """``CREATES`` creates at once: half to each process, in both API shapes."""
    limits = httpx.Limits(max_connections=CREATES, max_keepalive_connections=0)
    async with httpx.AsyncClient(headers=_auth(gw.member), timeout=60, limits=limits) as client:

        async def one(i: int) -> httpx.Response:
            if i % 2:
                return await client.post(
                    f"{gw.a.base_url}/v1/videos/generations",
                    json={"model": "capped-model", "prompt": f"storm {i}", "duration": 4},
                )
            return await client.post(
                f"{gw.b.base_url}/v1/videos",
                json={"model": "capped-model", "prompt": f"storm {i}", "seconds": "4"},
            )

        return await asyncio.gather(*(one(i) for i in range(CREATES)))


def test_a_budget_admits_exactly_what_fits_across_two_processes(gateway: Gateway) -> None:
    gw = gateway
    budget = N * ESTIMATE
    set_out = gw.run(
        "budgets", "set", "--tenant", "capped", "--usd", str(budget), "--period", "day"
    )
    budget_id = re.search(r"budget_\w+", set_out.stdout)
    assert budget_id, set_out.stdout
    assert "Created the day budget of project in capped: 0.984 USD" in " ".join(
        set_out.stdout.split()
    )

    responses = asyncio.run(_storm(gw))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == N, {s: statuses.count(s) for s in set(statuses)}
    others = [(r.status_code, r.text[:300]) for r in responses if r.status_code not in (200, 402)]
    assert others == []
    assert statuses.count(402) == CREATES - N
    for refused in (r for r in responses if r.status_code == 402):
        error = refused.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "insufficient_quota",
            "budget_exceeded",
            None,
        )
        assert budget_id.group(0) in error["message"] and "0.0492 USD" in error["message"]
    accepted = sorted(r.json()["id"] for r in responses if r.status_code == 200)
    assert all(
        r.json()["estimated_cost"] == pytest.approx(0.0492)
        for r in responses
        if r.status_code == 200
    )

    # Exactly the accepted jobs exist, each with one reservation of its estimate.
    jobs = _sql(
        gw,
        "SELECT j.id, j.estimated_cost FROM jobs j JOIN tenants t ON t.id = j.tenant_id"
        " WHERE t.name = 'capped' ORDER BY j.id",
    )
    assert [j[0] for j in jobs] == accepted
    ledger = _sql(gw, "SELECT job_id, step, amount FROM ledger WHERE job_id = ANY(%s)", accepted)
    assert sorted((row[0], row[1]) for row in ledger) == [(j, "reserve") for j in accepted]
    assert sum(row[2] for row in ledger) == budget == sum(j[1] for j in jobs)

    # The admin API sees the budget full.
    listed = httpx.get(f"{gw.b.base_url}/v1/admin/budgets", headers=_auth(gw.admin))
    assert listed.status_code == 200, listed.text
    [shown] = listed.json()["data"]
    assert (shown["id"], shown["period"], shown["key_id"]) == (budget_id.group(0), "day", None)
    assert shown["usd"] == pytest.approx(0.984) and shown["spent"] == pytest.approx(0.984)
    assert shown["remaining"] == 0

    # Every accepted job finishes (the worker of process a, the fake upstream).
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        states = _sql(gw, "SELECT state FROM jobs WHERE id = ANY(%s)", accepted)
        if all(s[0] in ("completed", "failed", "cancelled") for s in states):
            break
        time.sleep(0.3)
    assert sorted(s[0] for s in states) == ["completed"] * N, gw.a.log()[-3000:]
    costs = _agree(gw, accepted)
    # The budget's balance derives from the ledger: now the settled costs.
    [after] = httpx.get(f"{gw.a.base_url}/v1/admin/budgets", headers=_auth(gw.admin)).json()["data"]
    assert Decimal(str(after["spent"])) == costs


def _agree(gw: Gateway, accepted: list[str]) -> Decimal:
    """The ledger, the jobs' costs and the usage total agree to the cent, job by job
    and in all."""
    per_job = _sql(
        gw,
        "SELECT j.id, j.cost, coalesce(sum(l.amount), 0), count(*) FILTER (WHERE l.step = 'settle')"
        " FROM jobs j LEFT JOIN ledger l ON l.job_id = j.id WHERE j.id = ANY(%s) GROUP BY j.id",
        accepted,
    )
    assert len(per_job) == N
    for job_id, cost, booked, settles in per_job:
        assert cost is not None and cost == booked and settles == 1, (job_id, cost, booked)
    costs = sum(row[1] for row in per_job)
    ledger_total = sum(row[2] for row in per_job)
    cent = Decimal("0.01")
    assert costs.quantize(cent) == ledger_total.quantize(cent) and costs == ledger_total
    today = dt.datetime.now(dt.UTC).date()
    usage = httpx.get(
        f"{gw.a.base_url}/v1/usage",
        params={"start": str(today - dt.timedelta(days=1)), "end": str(today)},
        headers=_auth(gw.admin),
    )
    assert usage.status_code == 200, usage.text
    total = Decimal(str(usage.json()["total"]["cost"]))
    assert usage.json()["total"]["count"] == N
    assert total.quantize(cent) == costs.quantize(cent)
    return costs


def test_the_admin_api_sets_reads_and_deletes_budgets_of_the_callers_project(
    gateway: Gateway,
) -> None:
    gw = gateway
    api = f"{gw.b.base_url}/v1/admin/budgets"
    rival = _auth(gw.rival)
    made = httpx.post(api, headers=rival, json={"usd": 5, "period": "month"})
    assert made.status_code == 200, made.text
    budget = made.json()
    assert budget["object"] == "budget" and budget["id"].startswith("budget_")
    assert (budget["project_name"], budget["key_id"], budget["period"]) == ("rival", None, "month")
    assert (budget["usd"], budget["spent"], budget["remaining"]) == (5.0, 0.0, 5.0)
    assert budget["period_end"] > time.time() >= budget["period_start"]
    project = budget["project"]
    # Set again: the same budget, changed (a decimal string is taken as well).
    again = httpx.post(api, headers=rival, json={"usd": "7.25", "period": "month"}).json()
    assert (again["id"], again["usd"]) == (budget["id"], 7.25)
    keyed = httpx.post(
        api, headers=rival, json={"usd": 2, "period": "day", "key_id": gw.rival_id}
    ).json()
    assert keyed["key_id"] == gw.rival_id and keyed["id"] != budget["id"]
    listed = httpx.get(api, headers=rival).json()
    assert [b["id"] for b in listed["data"]] == [budget["id"], keyed["id"]]
    assert httpx.get(f"{api}/{budget['id']}", headers=rival).json()["usd"] == 7.25

    # A member key: no admin routes.
    for call in (
        httpx.get(api, headers=_auth(gw.member)),
        httpx.post(api, headers=_auth(gw.member), json={"usd": 1}),
    ):
        assert call.status_code == 403 and call.json()["error"]["code"] == "admin_required"
    # Another project's admin: the budget and the project read as missing.
    capped = _auth(gw.admin)
    for call in (
        httpx.get(f"{api}/{budget['id']}", headers=capped),
        httpx.delete(f"{api}/{budget['id']}", headers=capped),
    ):
        assert call.status_code == 404 and call.json()["error"]["code"] == "budget_not_found"
    for call in (
        httpx.get(api, headers=capped, params={"project": project}),
        httpx.post(api, headers=capped, json={"usd": 1, "project": project}),
    ):
        assert call.status_code == 404 and call.json()["error"]["code"] == "project_not_found"
    # An operator: any project.
    ops = _auth(gw.operator)
    seen = httpx.get(api, headers=ops, params={"project": project}).json()["data"]
    assert [b["id"] for b in seen] == [budget["id"], keyed["id"]]
    by_ops = httpx.post(api, headers=ops, json={"usd": 1, "period": "total", "project": project})
    assert by_ops.status_code == 200 and by_ops.json()["project_name"] == "rival"
    assert httpx.get(f"{api}/{budget['id']}", headers=ops).status_code == 200
    missing = "tenant_" + "0" * 26
    for value in (missing, "not-an-id"):
        gone = httpx.get(api, headers=ops, params={"project": value})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "project_not_found"

    # Bad input.
    bad: list[tuple[Any, str, str | None]] = [
        ({"usd": 1, "perod": "day"}, "unknown_parameter", "perod"),
        ({"period": "day"}, "missing_parameter", "usd"),
        ({"usd": -1}, "invalid_request", "usd"),
        ({"usd": "abc"}, "invalid_request", "usd"),
        ({"usd": 1.1234567}, "invalid_request", "usd"),
        ({"usd": 10**9}, "invalid_request", "usd"),
        ({"usd": [1]}, "invalid_request", "usd"),
        ({"usd": 1, "period": "week"}, "invalid_request", "period"),
        ({"usd": 1, "key_id": 7}, "invalid_request", "key_id"),
        # A key of another project.
        ({"usd": 1, "key_id": gw.member_id}, "key_not_found", "key_id"),
    ]
    for body, code, param in bad:
        refused = httpx.post(api, headers=rival, json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert (refused.json()["error"]["code"], refused.json()["error"]["param"]) == (code, param)
    garbled = httpx.post(api, content=b"{", headers={**rival, "content-type": "application/json"})
    assert garbled.status_code == 400 and garbled.json()["error"]["code"] == "invalid_json"
    for path in ("budget_nope", "x" * 300):
        assert httpx.get(f"{api}/{path}", headers=rival).status_code == 404

    deleted = httpx.delete(f"{api}/{keyed['id']}", headers=rival)
    assert deleted.json() == {"id": keyed["id"], "object": "budget.deleted", "deleted": True}
    assert httpx.get(f"{api}/{keyed['id']}", headers=rival).status_code == 404
    assert httpx.delete(f"{api}/{keyed['id']}", headers=rival).status_code == 404

    # Every change is audited: who, what, on which budget, from where.
    entries = _sql(
        gw,
        "SELECT actor, action, target, remote_addr, detail->>'usd' FROM audit_log"
        " WHERE tenant_id = %s AND action LIKE 'budgets.%%' ORDER BY id",
        project,
    )
    assert [(e[0], e[1], e[2], e[3]) for e in entries] == [
        (gw.rival_id, "budgets.set", budget["id"], "127.0.0.1"),
        (gw.rival_id, "budgets.set", budget["id"], "127.0.0.1"),
        (gw.rival_id, "budgets.set", keyed["id"], "127.0.0.1"),
        (entries[3][0], "budgets.set", by_ops.json()["id"], "127.0.0.1"),
        (gw.rival_id, "budgets.delete", keyed["id"], "127.0.0.1"),
    ]
    assert entries[3][0] != gw.rival_id and entries[1][4] == "7.25"


def test_the_cli_sets_lists_and_deletes_budgets_and_creates_meet_them(gateway: Gateway) -> None:
    gw = gateway
    made = gw.run("budgets", "set", "--tenant", "ops", "--usd", "0.05", "--period", "total")
    assert "Created the total budget of project in ops: 0.05 USD" in " ".join(made.stdout.split())
    budget_id = re.search(r"budget_\w+", made.stdout)
    assert budget_id
    member = _auth(gw.ops_member)
    create = f"{gw.a.base_url}/v1/videos/generations"
    # Unknown is not free: a model without a price under a budget is refused.
    unpriced = httpx.post(create, headers=member, json={"model": "unpriced-model", "prompt": "x"})
    assert unpriced.status_code == 402, unpriced.text
    error = unpriced.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "insufficient_quota",
        "budget_unpriced_model",
        "model",
    )
    assert budget_id.group(0) in error["message"]
    fits = httpx.post(create, headers=member, json={"model": "capped-model", "prompt": "x"})
    assert fits.status_code == 200, fits.text
    over = httpx.post(create, headers=member, json={"model": "capped-model", "prompt": "y"})
    assert over.status_code == 402 and over.json()["error"]["code"] == "budget_exceeded"
    # What is left: 0.05 less the first job's estimate, or less its settled cost once
    # it has completed (the fake's clip is 1 s: 0.0123).
    assert re.search(r"has (0\.0008|0\.0377) USD left", over.json()["error"]["message"])

    listed = gw.run("budgets", "list", "--tenant", "ops")
    row = next(line for line in listed.stdout.splitlines() if budget_id.group(0) in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:5] == [budget_id.group(0), "ops", "", "total", "0.05"]
    assert (cells[5], cells[6]) in (("0.0492", "0.0008"), ("0.0123", "0.0377")), cells
    nobody = gw.run("budgets", "set", "--tenant", "nobody", "--usd", "1", check=False)
    assert nobody.returncode == 1 and "no project named 'nobody'" in nobody.stderr
    bad = gw.run("budgets", "set", "--tenant", "ops", "--usd", "1.0000001", check=False)
    assert bad.returncode == 2 and "--usd" in bad.stderr
    gw.run("budgets", "delete", budget_id.group(0))
    # No cap left: the same create is taken.
    again = httpx.post(create, headers=member, json={"model": "capped-model", "prompt": "z"})
    assert again.status_code == 200, again.text
    actors = _sql(
        gw, "SELECT actor, action FROM audit_log WHERE target = %s ORDER BY id", budget_id.group(0)
    )
    assert actors == [("cli", "budgets.set"), ("cli", "budgets.delete")]


def test_the_openapi_document_has_the_budget_routes_and_the_402_of_creates(
    gateway: Gateway,
) -> None:
    doc = httpx.get(f"{gateway.b.base_url}/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/v1/videos",
        "/v1/videos/generations",
        "/v1/videos/extensions",
        "/v1/videos/{video_id}/remix",
    ):
        assert "402" in paths[path]["post"]["responses"], path
    assert "402" not in paths["/v1/videos/estimate"]["post"]["responses"]
    assert set(paths["/v1/admin/budgets"]) == {"get", "post"}
    assert set(paths["/v1/admin/budgets/{budget_id}"]) == {"get", "delete"}
    body = paths["/v1/admin/budgets"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/SetBudgetBody")
    assert "403" in paths["/v1/admin/budgets"]["get"]["responses"]
