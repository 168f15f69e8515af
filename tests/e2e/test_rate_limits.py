"""Rate limits through two ``vidgate serve --no-worker`` processes on one database: the
limits of a key and of a project hold across both (exact counts, not one per process),
every create route answers with them, and the CLI and the admin API set them."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import VIDGATE, ServerProcess, cli, fast_env, make_database

from vidgate.accounts.keys import NewKey, create_key
from vidgate.core.keys import Role
from vidgate.db.database import create_engine

pytestmark = pytest.mark.slow

KEY_ID = re.compile(r"\bkey_[0-9a-z]{26}\b")
# Jobs that nobody works on stay queued, in flight; a worker (the remix test) leaves
# them waiting on the sandbox for ten minutes, in flight still, and renders nothing.
IDLE = {"sandbox_latency_ms": "600000"}
VIDEO = {"model": "sandbox", "prompt": "p", "seconds": "1", "size": "320x240", "metadata": IDLE}
GENERATION = {"model": "sandbox", "prompt": "p", "duration": 1, "metadata": IDLE}


@pytest.fixture(scope="module")
def pair(
    pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    env = fast_env(VIDGATE_DATABASE_URL=make_database(pg_server))
    base = tmp_path_factory.mktemp("limits")
    servers = tuple(
        ServerProcess(data_dir=base / f"api{i}", env=env, extra_args=("--no-worker",))
        for i in (1, 2)
    )
    try:
        for srv in servers:
            srv.log_path = base / f"api-{srv.port}.log"
            with srv.log_path.open("a") as log:
                srv.proc = srv._spawn(log)
        for srv in servers:
            srv._wait_healthy(60)
        yield servers  # type: ignore[misc]
    finally:
        for srv in servers:
            srv.stop()


def _cli_key(srv: ServerProcess, tenant: str, *flags: str) -> tuple[str, str]:
    """A new key of ``tenant`` from ``vidgate keys create``: (its id, its secret)."""
    out = cli(
        "keys",
        "create",
        "--name",
        "k",
        "--tenant",
        tenant,
        "--data-dir",
        str(srv.data_dir),
        *flags,
        env=srv.env,
        in_process=True,
    ).stdout
    found = KEY_ID.search(out)
    assert found is not None, out
    return found.group(0), out.strip().splitlines()[-1]


def _key(srv: ServerProcess, tenant: str, role: Role = "member") -> tuple[str, str]:
    """A new key of ``tenant``, made in this process (a CLI run costs seconds)."""

    async def make() -> NewKey:
        db = create_engine(srv.env["VIDGATE_DATABASE_URL"], pool_size=1)
        try:
            async with db.begin() as conn:
                return await create_key(conn, name="k", tenant=tenant, role=role)
        finally:
            await db.dispose()

    new = asyncio.run(make())
    return new.id, new.secret


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _db(srv: ServerProcess) -> psycopg.Connection[Any]:
    return psycopg.connect(srv.env["VIDGATE_DATABASE_URL"], autocommit=True)


def _project_id(srv: ServerProcess, name: str) -> str:
    with _db(srv) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return str(row[0])


async def _fire(
    pair: tuple[ServerProcess, ServerProcess], secret: str, n: int
) -> list[httpx.Response]:
    """``n`` creates at once, alternating between the processes and the two API shapes."""
    async with httpx.AsyncClient(timeout=30, headers=_auth(secret)) as client:

        async def one(i: int) -> httpx.Response:
            srv = pair[i % 2]
            if i % 4 < 2:
                return await client.post(f"{srv.base_url}/v1/videos", json=VIDEO)
            return await client.post(f"{srv.base_url}/v1/videos/generations", json=GENERATION)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def _split(responses: list[httpx.Response]) -> tuple[list[httpx.Response], list[httpx.Response]]:
    assert {r.status_code for r in responses} <= {200, 429}, [r.text for r in responses]
    return [r for r in responses if r.status_code == 200], [
        r for r in responses if r.status_code == 429
    ]


def test_rpm_60_over_two_processes_accepts_exactly_60_of_100(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    _, secret = _cli_key(pair[0], "rpm-project", "--rpm", "60")
    ok, refused = _split(asyncio.run(_fire(pair, secret, 100)))
    assert (len(ok), len(refused)) == (60, 40)
    # Both processes took some; the counts were serial: each accepted create saw a
    # different number left, 59 down to 0.
    assert {r.url.port for r in ok} == {pair[0].port, pair[1].port}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
    assert remaining == list(range(60))
    assert all(r.headers["x-ratelimit-limit-requests"] == "60" for r in ok)
    assert all(r.headers["x-ratelimit-reset-requests"] == "1m0s" for r in ok)
    for r in refused:
        error = r.json()["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "rate_limit_error",
            "rate_limit_exceeded",
            None,
        )
        assert "60 creates per minute" in error["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["x-ratelimit-limit-requests"] == "60"
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert re.fullmatch(r"(1m0|[1-5]?\d(\.\d+)?)s", r.headers["x-ratelimit-reset-requests"])
    # Nothing was created for the refusals.
    with _db(pair[0]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM jobs j JOIN tenants t ON t.id = j.tenant_id"
            " WHERE t.name = 'rpm-project'"
        ).fetchone()
    assert row == (60,)
    # Reads are not limited and carry no limit headers.
    video_id = ok[0].json()["id"]
    status = httpx.get(f"{pair[1].base_url}/v1/videos/{video_id}", headers=_auth(secret))
    assert status.status_code == 200 and "x-ratelimit-limit-requests" not in status.headers
    listing = httpx.get(f"{pair[0].base_url}/v1/videos", headers=_auth(secret))
    assert listing.status_code == 200


def test_max_concurrent_over_two_processes(pair: tuple[ServerProcess, ServerProcess]) -> None:
    key_id, secret = _key(pair[0], "conc-project")
    shown = cli(
        "keys",
        "limits",
        key_id,
        "--max-concurrent",
        "4",
        "--data-dir",
        str(pair[0].data_dir),
        env=pair[0].env,
        in_process=True,
    ).stdout
    assert f"key {key_id}: no creates-per-minute limit, 4 jobs in flight" in " ".join(shown.split())
    ok, refused = _split(asyncio.run(_fire(pair, secret, 20)))
    assert (len(ok), len(refused)) == (4, 16)
    assert sorted(r.headers["x-ratelimit-remaining-concurrent"] for r in ok) == list("0123")
    r = refused[0]
    assert r.headers["retry-after"] == "1" and r.headers["x-ratelimit-limit-concurrent"] == "4"
    assert "4 jobs in flight" in r.json()["error"]["message"]
    # A deleted job leaves the flight: one more create fits, on the other process.
    deleted = httpx.delete(
        f"{pair[0].base_url}/v1/videos/{ok[0].json()['id']}", headers=_auth(secret)
    )
    assert deleted.status_code == 200
    again = _split(asyncio.run(_fire(pair, secret, 3)))
    assert (len(again[0]), len(again[1])) == (1, 2)


def test_project_limits_from_the_cli_hold_for_all_its_keys(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    srv = pair[0]
    _, one = _key(srv, "cli-project")
    _, two = _key(srv, "cli-project")
    base = ("projects", "limits", "cli-project", "--data-dir", str(srv.data_dir))
    # A bad value (the others: tests/unit/test_cli_limits.py) changes nothing.
    bad = cli(
        *base, "--rpm", "0", "--max-concurrent", "2", env=srv.env, check=False, in_process=True
    )
    assert bad.returncode == 2 and "--rpm must be" in bad.stderr
    shown = cli(*base, "--rpm", "3", env=srv.env, in_process=True).stdout
    assert "project cli-project: 3 creates per minute, no jobs-in-flight limit" in " ".join(
        shown.split()
    )
    codes = [
        httpx.post(f"{pair[i % 2].base_url}/v1/videos", json=VIDEO, headers=_auth(k)).status_code
        for i, k in enumerate((one, two, one, two))
    ]
    assert codes == [200, 200, 200, 429]
    with _db(srv) as conn:
        rows = conn.execute(
            "SELECT actor, action, detail FROM audit_log WHERE target = %s ORDER BY id",
            (_project_id(srv, "cli-project"),),
        ).fetchall()
    # keys create --tenant made the project (audited as well), then the limit was set.
    assert rows == [
        ("cli", "projects.create", {"name": "cli-project"}),
        ("cli", "projects.limits", {"rpm": 3}),
    ]


def test_admin_api_sets_limits_in_its_own_project_only(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    _, admin = _key(a, "team-a", "admin")
    member_id, member = _key(a, "team-a")
    other_id, _ = _key(a, "team-b")
    _, operator = _key(a, "ops", "operator")
    team_a, team_b = _project_id(a, "team-a"), _project_id(a, "team-b")

    def call(
        method: str, path: str, secret: str, body: Any = None, srv: ServerProcess = a
    ) -> httpx.Response:
        return httpx.request(
            method, f"{srv.base_url}/v1/admin{path}", json=body, headers=_auth(secret)
        )

    got = call("GET", f"/projects/{team_a}/limits", admin)
    assert got.status_code == 200
    assert got.json() == {
        "object": "project.limits",
        "project_id": team_a,
        "key_id": None,
        "rpm": None,
        "max_concurrent": None,
    }
    set_ = call("PATCH", f"/keys/{member_id}/limits", admin, {"max_concurrent": 1}, srv=b)
    assert set_.status_code == 200, set_.text
    assert set_.json() == {
        "object": "key.limits",
        "project_id": team_a,
        "key_id": member_id,
        "rpm": None,
        "max_concurrent": 1,
    }
    first = httpx.post(f"{a.base_url}/v1/videos", json=VIDEO, headers=_auth(member))
    second = httpx.post(f"{b.base_url}/v1/videos", json=VIDEO, headers=_auth(member))
    assert (first.status_code, second.status_code) == (200, 429)
    # A field left out stays; null removes.
    patched = call("PATCH", f"/keys/{member_id}/limits", admin, {"rpm": 100})
    assert (patched.json()["rpm"], patched.json()["max_concurrent"]) == (100, 1)
    cleared = call("PATCH", f"/keys/{member_id}/limits", admin, {"max_concurrent": None})
    assert (cleared.json()["rpm"], cleared.json()["max_concurrent"]) == (100, None)
    assert (
        httpx.post(f"{b.base_url}/v1/videos", json=VIDEO, headers=_auth(member)).status_code == 200
    )

    # Another project's ids read as missing to an admin; an operator reaches them.
    for path in (f"/projects/{team_b}/limits", f"/keys/{other_id}/limits"):
        assert call("GET", path, admin).status_code == 404
        missing = call("PATCH", path, admin, {"rpm": 1})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] in ("project_not_found", "key_not_found")
        assert call("PATCH", path, operator, {"rpm": 7}).json()["rpm"] == 7
    assert call("GET", "/projects/tenant_nope/limits", operator).status_code == 404
    assert call("GET", "/keys/key_nope/limits", operator).status_code == 404
    assert call("PATCH", "/keys/key_%00/limits", operator, {"rpm": 1}).status_code == 404
    assert call("GET", "/projects/tenant_%00x/limits", operator).status_code == 404
    # Member keys have no admin rights.
    denied = call("GET", f"/projects/{team_a}/limits", member)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "admin_required"

    # Bad bodies.
    path = f"/projects/{team_a}/limits"
    for body, code in (
        ({"rpm": 5, "burst": 1}, "unknown_parameter"),
        ({"rpm": "5"}, "invalid_request"),
        ({"rpm": True}, "invalid_request"),
        ({"rpm": 1.5}, "invalid_request"),
        ({"rpm": 0}, "invalid_request"),
        ({"max_concurrent": 1_000_001}, "invalid_request"),
        ([1], "invalid_json"),
    ):
        bad = call("PATCH", path, admin, body)
        assert bad.status_code == 400, (body, bad.text)
        assert bad.json()["error"]["code"] == code, (body, bad.text)
    assert call("GET", path, admin).json()["rpm"] is None

    with _db(a) as conn:
        entries = conn.execute(
            "SELECT actor, action, target, detail, remote_addr FROM audit_log"
            " WHERE tenant_id = %s AND action IN ('keys.limits', 'projects.limits') ORDER BY id",
            (team_a,),
        ).fetchall()
    assert [e[1:4] for e in entries] == [
        ("keys.limits", member_id, {"max_concurrent": 1}),
        ("keys.limits", member_id, {"rpm": 100}),
        ("keys.limits", member_id, {"max_concurrent": None}),
    ]
    assert all(e[0].startswith("key_") and e[4] == "127.0.0.1" for e in entries)


def test_remix_and_extension_count_too(pair: tuple[ServerProcess, ServerProcess]) -> None:
    """With a worker beside the API processes, a completed video is remixed and
    extended by a key limited to 2 creates per minute: its own create, one remix, then
    the extension is refused."""
    a, b = pair
    key_id, secret = _key(a, "remix-project")
    with _db(a) as conn:
        conn.execute("UPDATE api_keys SET rpm = 2 WHERE id = %s", (key_id,))
    log = a.data_dir.parent / "worker.log"
    with log.open("w") as fh:
        worker = subprocess.Popen(
            [*VIDGATE, "worker", "--data-dir", str(a.data_dir)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **a.env},
        )
    try:
        body = {**VIDEO, "metadata": {"sandbox_latency_ms": "100"}}
        created = httpx.post(f"{a.base_url}/v1/videos", json=body, headers=_auth(secret))
        assert created.headers["x-ratelimit-remaining-requests"] == "1"
        video_id = created.json()["id"]
        deadline = time.monotonic() + 30
        status = ""
        while status != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = httpx.get(f"{b.base_url}/v1/videos/{video_id}", headers=_auth(secret)).json()[
                "status"
            ]
        assert status == "completed", log.read_text()[-3000:]
        remix = httpx.post(
            f"{b.base_url}/v1/videos/{video_id}/remix",
            json={"prompt": "again"},
            headers=_auth(secret),
        )
        assert remix.status_code == 200 and remix.headers["x-ratelimit-remaining-requests"] == "0"
        extend = httpx.post(
            f"{a.base_url}/v1/videos/extensions",
            json={"prompt": "more", "seconds": 1, "video": {"id": video_id}},
            headers=_auth(secret),
        )
        assert extend.status_code == 429 and extend.json()["error"]["code"] == "rate_limit_exceeded"
    finally:
        worker.terminate()
        worker.wait(20)
