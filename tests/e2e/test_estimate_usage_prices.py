"""Prices and usage against a real ``vidgate serve``: ``POST /v1/videos/estimate``,
``/v1/admin/price_overrides`` (with the models file's ``projects:`` section) and
``GET /v1/usage``, and ``vidgate usage`` reading the same through the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, cli, fast_env, make_database

from vidgate.accounts.keys import create_key
from vidgate.db.database import create_engine

MODELS = """
projects:
  acme:
    prices:
      sora-2: {multiplier: 0.5}
      sandbox:
        pricing: {default_per_second: 0.01}
"""


@dataclass
class Key:
    id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


@dataclass
class Gateway:
    server: ServerProcess
    keys: dict[str, Key]

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url(path), headers=self.keys[key].headers, **kwargs)


@pytest.fixture(scope="module")
def gateway(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("prices")
    models = base / "models.yaml"
    models.write_text(MODELS)
    srv = ServerProcess(
        data_dir=base / "vidgate",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            VIDGATE_MODELS_FILE=str(models),
            VIDGATE_SANDBOX_LATENCY_S="0.1",
        ),
    )
    srv.start()
    keys = asyncio.run(_keys(srv.env["VIDGATE_DATABASE_URL"]))
    try:
        yield Gateway(srv, keys)
    finally:
        srv.stop()


async def _keys(database_url: str) -> dict[str, Key]:
    """The keys, made as ``vidgate keys create`` makes them (in this process: four CLI
    starts would cost more than the rest of the module)."""
    db = create_engine(database_url, pool_size=1)
    keys: dict[str, Key] = {}
    try:
        async with db.begin() as conn:
            for name, tenant, role in (
                ("member", "acme", "member"),
                ("admin", "acme", "admin"),
                ("beta", "beta", "admin"),
                ("operator", "ops", "operator"),
            ):
                new = await create_key(conn, name=name, role=role, tenant=tenant)  # type: ignore[arg-type]
                keys[name] = Key(new.id, new.secret)
    finally:
        await db.dispose()
    return keys


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_an_estimate_answers_what_a_create_would_do_and_creates_nothing(gw: Gateway) -> None:
    before = gw.call("GET", "/v1/videos", "member").json()["data"]
    openai_shape = gw.call(
        "POST",
        "/v1/videos/estimate",
        "member",
        json={"model": "sora-2", "prompt": "x", "seconds": "8"},
    )
    assert openai_shape.status_code == 200, openai_shape.text
    found = openai_shape.json()
    assert found["object"] == "video.estimate"
    assert (found["model"], found["deployment"], found["seconds"]) == ("sora-2", "sandbox", 8)
    assert "test key" in found["reason"]
    # acme pays half of sora-2's list price (0.10 USD a second), per the models file.
    assert (found["estimated_cost"], found["currency"]) == (0.4, "USD")
    assert found["price_source"] == "project_multiplier"
    task_shape = gw.call(
        "POST",
        "/v1/videos/estimate",
        "member",
        json={"model": "sora-2", "prompt": "x", "duration": 4, "resolution": "720p"},
    ).json()
    assert (task_shape["seconds"], task_shape["estimated_cost"]) == (4, 0.2)
    listed = gw.call(
        "POST", "/v1/videos/estimate", "beta", json={"model": "sora-2", "prompt": "x", "seconds": 8}
    ).json()
    assert (listed["estimated_cost"], listed["price_source"]) == (0.8, "list")
    assert gw.call("GET", "/v1/videos", "member").json()["data"] == before

    # A create is priced alike.
    created = gw.call(
        "POST", "/v1/videos", "member", json={"model": "sora-2", "prompt": "x", "seconds": "8"}
    ).json()
    assert created["estimated_cost"] == 0.4
    gw.call("DELETE", f"/v1/videos/{created['id']}", "member")


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"prompt": "x", "model": "sora-2", "colour": "red"}, 400, "colour", "unknown_parameter"),
        ({"prompt": "x", "seconds": 4, "duration": 4}, 400, "duration", None),
        ({"prompt": "x", "model": "sora-2", "seconds": 7}, 400, "seconds", "invalid_parameter"),
        ({"prompt": "x", "model": "sandbox", "n": "many"}, 400, "n", "invalid_parameter"),
        ({"prompt": "x", "model": "sandbox", "n": 99}, 400, "n", "invalid_parameter"),
        ({"prompt": ["x"], "model": "sandbox"}, 400, "prompt", None),
        ({"model": "sandbox"}, 400, "prompt", "missing_parameter"),
        ({"prompt": "x", "model": "no-such-model"}, 404, "model", "model_not_found"),
    ],
)
def test_an_estimate_refuses_what_a_create_refuses(
    gw: Gateway, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    error = _error(gw.call("POST", "/v1/videos/estimate", "member", json=body), status)
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_an_estimate_needs_a_key(gw: Gateway) -> None:
    assert httpx.post(gw.url("/v1/videos/estimate"), json={"prompt": "x"}).status_code == 401


def test_price_overrides_are_set_per_project_and_audited(gw: Gateway) -> None:
    path = "/v1/admin/price_overrides"
    assert _error(gw.call("GET", path, "member"), 403)["code"] == "admin_required"
    listed = gw.call("GET", path, "admin").json()
    assert listed["object"] == "list"
    assert [(o["model"], o["source"]) for o in listed["data"]] == [
        ("sandbox", "file"),
        ("sora-2", "file"),
    ]
    assert listed["data"][1]["multiplier"] == 0.5

    put = gw.call(
        "PUT", f"{path}/sora-2", "admin", json={"pricing": {"per_second": {"720p": 0.02}}}
    )
    assert put.status_code == 200, put.text
    assert put.json()["pricing"] == {"points": {}, "per_second": {"720p": 0.02}}
    assert put.json()["source"] == "api"
    estimate = gw.call(
        "POST",
        "/v1/videos/estimate",
        "member",
        json={"model": "sora-2", "prompt": "x", "seconds": 8},
    ).json()
    assert (estimate["estimated_cost"], estimate["price_source"]) == (0.16, "project_table")
    assert gw.call("GET", f"{path}/sora-2", "admin").json()["source"] == "api"

    # Another project's admin sees none of it and cannot name it.
    assert gw.call("GET", path, "beta").json()["data"] == []
    for method in ("GET", "DELETE"):
        other = gw.call(method, f"{path}/sora-2", "beta", params={"project": "acme"})
        assert _error(other, 404)["code"] == "project_not_found"
    assert _error(gw.call("DELETE", f"{path}/sora-2", "beta"), 404)["code"] == (
        "price_override_not_found"
    )
    # An operator names the project.
    set_beta = gw.call("PUT", f"{path}/sora-2", "operator", params={"project": "beta"},
                       json={"multiplier": 2})  # fmt: skip
    assert set_beta.status_code == 200, set_beta.text
    assert gw.call("GET", f"{path}/sora-2", "beta").json()["multiplier"] == 2

    deleted = gw.call("DELETE", f"{path}/sora-2", "admin")
    assert deleted.status_code == 200, deleted.text
    # Back to the file's override, which the API does not remove.
    assert gw.call("GET", f"{path}/sora-2", "admin").json()["source"] == "file"
    assert _error(gw.call("DELETE", f"{path}/sora-2", "admin"), 400)["code"] == (
        "price_override_in_file"
    )

    with psycopg.connect(gw.server.env["VIDGATE_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT actor, action, target, remote_addr FROM audit_log"
            " WHERE action LIKE 'price_overrides.%' ORDER BY id"
        ).fetchall()
    assert rows == [
        (gw.keys["admin"].id, "price_overrides.set", "sora-2", "127.0.0.1"),
        (gw.keys["operator"].id, "price_overrides.set", "sora-2", "127.0.0.1"),
        (gw.keys["admin"].id, "price_overrides.delete", "sora-2", "127.0.0.1"),
    ]


def test_the_cli_sets_and_lists_price_overrides_through_the_database(gw: Gateway) -> None:
    env, data_dir = gw.server.env, str(gw.server.data_dir)
    cli("prices", "set", "--tenant", "beta", "--model", "veo-3", "--multiplier", "0.25",
        "--data-dir", data_dir, env=env, in_process=True)  # fmt: skip
    # An alias names its card; the API sees the change at once.
    found = gw.call("GET", "/v1/admin/price_overrides/veo-3.1", "beta").json()
    assert (found["multiplier"], found["source"]) == (0.25, "api")
    listed = cli(
        "prices", "list", "--tenant", "beta", "--data-dir", data_dir, env=env, in_process=True
    ).stdout
    assert re.search(r"veo-3\.1\s.*0\.25\s.*api", listed), listed
    with psycopg.connect(gw.server.env["VIDGATE_DATABASE_URL"]) as conn:
        row = conn.execute(
            "SELECT actor, target, detail FROM audit_log WHERE action = 'price_overrides.set'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row == ("cli", "veo-3.1", {"multiplier": "0.25"})


@pytest.mark.parametrize(
    ("model", "body", "status", "param"),
    [
        ("sora-2", {"multiplier": -1}, 400, "multiplier"),
        ("sora-2", {"multiplier": "lots"}, 400, "multiplier"),
        ("sora-2", {"multiplier": 1, "pricing": {"default_per_second": 1}}, 400, None),
        ("sora-2", {}, 400, None),
        ("sora-2", {"factor": 2}, 400, "factor"),
        ("sora-2", {"pricing": {"per_second": {"720p": -1}}}, 400, "pricing.per_second"),
        # The sandbox takes 240p to 1080p: a table of its own must price each.
        ("sandbox", {"pricing": {"per_second": {"720p": 0.1}}}, 400, "pricing"),
        ("no-such-model", {"multiplier": 1}, 404, "model"),
    ],
)
def test_a_bad_price_override_is_refused(
    gw: Gateway, model: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    response = gw.call("PUT", f"/v1/admin/price_overrides/{model}", "beta", json=body)
    assert _error(response, status)["param"] == param


def test_usage_counts_the_projects_completed_jobs(gw: Gateway, tmp_path: Path) -> None:
    ids = []
    for n in (1, 1, 2):
        created = gw.call(
            "POST",
            "/v1/videos",
            "member",
            json={"model": "sandbox", "prompt": "u", "seconds": "1", "size": "320x240", "n": n},
        )
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [gw.call("GET", f"/v1/videos/{i}", "member").json()["status"] for i in ids]
        if all(s in ("completed", "failed") for s in states):
            break
        time.sleep(0.2)
    assert states == ["completed"] * 3
    today = dt.datetime.now(dt.UTC).date().isoformat()
    params = {"start": today, "end": today, "group_by": "model,key,day"}
    found = gw.call("GET", "/v1/usage", "admin", params=params)
    assert found.status_code == 200, found.text
    usage = found.json()
    # Test jobs: priced (the models file's 0.01 USD a second for acme), never charged.
    assert usage == {
        "object": "usage",
        "start": today,
        "end": today,
        "currency": "USD",
        "total": {"count": 0, "seconds": 0, "cost": 0.0},
        "test_total": {"count": 3, "seconds": 4, "cost": 0.04},
        "data": [
            {
                "model": "sandbox",
                "key_id": gw.keys["member"].id,
                "day": today,
                "count": 3,
                "seconds": 4,
                "cost": 0.04,
                "mode": "test",
            }
        ],
    }
    csv = gw.call("GET", "/v1/usage", "admin", params={**params, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [
        "model,key_id,day,mode,count,seconds,cost",
        f"sandbox,{gw.keys['member'].id},{today},test,3,4,0.040000",
    ]
    operator = gw.call("GET", "/v1/usage", "operator", params={**params, "project": "acme"})
    assert operator.json() == usage
    assert gw.call("GET", "/v1/usage", "beta", params=params).json()["test_total"]["count"] == 0

    # The CLI reads the same through the database.
    env, data_dir = gw.server.env, str(gw.server.data_dir)
    base = ["usage", "--tenant", "acme", "--start", today, "--end", today, "--data-dir", data_dir]
    printed = cli(*base, "--group-by", "model,key,day", "--json", env=env, in_process=True).stdout
    assert json.loads(printed) == usage
    assert cli(
        *base, "--group-by", "model,key,day", "--csv", env=env, in_process=True
    ).stdout == csv.text.replace("\r\n", "\n")
    table = cli(*base, env=env, in_process=True).stdout
    assert "test_total: 3 video(s), 4 s, 0.040000 USD" in table
    assert "total: 0 video(s), 0 s, 0.000000 USD" in table


@pytest.mark.parametrize(
    ("key", "params", "status", "param"),
    [
        ("member", {}, 403, None),
        ("admin", {"start": "2026-02-30"}, 400, "start"),
        ("admin", {"start": "2026-03-02", "end": "2026-03-01"}, 400, "end"),
        ("admin", {"group_by": "model,colour"}, 400, "group_by"),
        ("admin", {"format": "xml"}, 400, "format"),
        ("admin", {"project": "beta"}, 404, "project"),
        ("operator", {"project": "nobody"}, 404, "project"),
    ],
)
def test_usage_refuses_bad_parameters_and_other_projects(
    gw: Gateway, key: str, params: dict[str, str], status: int, param: str | None
) -> None:
    assert _error(gw.call("GET", "/v1/usage", key, params=params), status)["param"] == param


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    return gateway
