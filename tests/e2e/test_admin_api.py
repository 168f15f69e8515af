"""The admin API (``/v1/admin/projects``, ``/keys``, ``/audit_log``) and the rights of each
role, against the session's server: an admin key manages its own project only, an
operator key any project, members and readers no admin route, readers no write; keys
limited to models or expiring; every change in the audit log."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow

VIDEO = {"model": "sandbox", "prompt": "a key's rights", "seconds": "1", "size": "320x240"}


@dataclass
class Project:
    id: str
    name: str


@dataclass
class Accounts:
    base_url: str
    operator: str
    operator_id: str
    a: Project
    b: Project
    admin_a: str
    admin_a_id: str
    member_b: str
    member_b_id: str

    def call(self, secret: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {secret}"}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=10, **kwargs)


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


@pytest.fixture(scope="module")
def accounts(server: ServerProcess) -> Accounts:
    """Project A (made by the CLI with an operator key in it) and project B (made by that
    operator through the API); an admin key of A and a member key of B."""
    tag = uuid.uuid4().hex[:8]
    operator = server.create_key("ops", "--role", "operator", "--tenant", f"acc-a-{tag}")
    acc = Accounts(server.base_url, operator, "", Project("", ""), Project("", ""), "", "", "", "")
    listed = acc.call(operator, "GET", "/v1/admin/keys").json()["data"]
    (me,) = [k for k in listed if k["prefix"] == operator[:12]]
    acc.operator_id, acc.a = me["id"], Project(me["project_id"], me["project_name"])
    made = acc.call(operator, "POST", "/v1/admin/projects", json={"name": f"acc-b-{tag}"})
    assert made.status_code == 200, made.text
    acc.b = Project(made.json()["id"], made.json()["name"])
    admin = acc.call(
        operator,
        "POST",
        "/v1/admin/keys",
        json={"name": "a admin", "role": "admin", "project": acc.a.id},
    ).json()
    member = acc.call(
        operator, "POST", "/v1/admin/keys", json={"name": "b member", "project": acc.b.id}
    ).json()
    acc.admin_a, acc.admin_a_id = admin["secret"], admin["id"]
    acc.member_b, acc.member_b_id = member["secret"], member["id"]
    assert member["role"] == "member" and member["project_id"] == acc.b.id
    return acc


def test_projects(accounts: Accounts) -> None:
    acc = accounts
    made = acc.call(acc.operator, "POST", "/v1/admin/projects", json={"name": acc.b.name})
    _error(made, 409, "project_exists")
    for body in ({"name": "no spaces"}, {"name": ""}, {"name": 5}, {"name": "x", "extra": 1}, {}):
        assert acc.call(acc.operator, "POST", "/v1/admin/projects", json=body).status_code == 400
    everything = acc.call(acc.operator, "GET", "/v1/admin/projects").json()
    assert {acc.a.id, acc.b.id} <= {p["id"] for p in everything["data"]}
    one = acc.call(acc.operator, "GET", f"/v1/admin/projects/{acc.b.id}").json()
    assert one == {
        "id": acc.b.id,
        "object": "project",
        "name": acc.b.name,
        "created_at": one["created_at"],
    }

    # project= takes a name as well as an id; text PostgreSQL cannot hold reads as missing.
    by_name = acc.call(acc.operator, "GET", f"/v1/admin/keys?project={acc.b.name}").json()
    assert {k["project_id"] for k in by_name["data"]} == {acc.b.id}
    nul = acc.call(acc.operator, "GET", "/v1/admin/keys", params={"project": "a\x00b"})
    _error(nul, 404, "project_not_found")

    # An admin key sees its own project only, and makes none.
    own = acc.call(acc.admin_a, "GET", "/v1/admin/projects").json()
    assert [p["id"] for p in own["data"]] == [acc.a.id]
    _error(acc.call(acc.admin_a, "GET", f"/v1/admin/projects/{acc.b.id}"), 404, "project_not_found")
    made = acc.call(acc.admin_a, "POST", "/v1/admin/projects", json={"name": "mine"})
    _error(made, 403, "operator_required")


def test_an_admin_manages_its_own_projects_keys_only(accounts: Accounts) -> None:
    acc = accounts
    made = acc.call(acc.admin_a, "POST", "/v1/admin/keys", json={"name": "ro", "role": "reader"})
    assert made.status_code == 200, made.text
    reader = made.json()
    assert reader["object"] == "key" and reader["project_id"] == acc.a.id
    assert reader["role"] == "reader" and reader["mode"] == "test" and reader["models"] is None
    assert reader["secret"].startswith(reader["prefix"]) and reader["expires_at"] is None

    # The new key works, read-only.
    assert acc.call(reader["secret"], "GET", "/v1/videos").status_code == 200
    _error(acc.call(reader["secret"], "POST", "/v1/videos", json=VIDEO), 403, "read_only_key")

    # Operator keys come from the CLI only; another project reads as missing.
    body = {"name": "up", "role": "operator"}
    _error(acc.call(acc.admin_a, "POST", "/v1/admin/keys", json=body), 403, "operator_key_cli_only")
    body = {"name": "x", "project": acc.b.id}
    _error(acc.call(acc.admin_a, "POST", "/v1/admin/keys", json=body), 404, "project_not_found")
    _error(
        acc.call(acc.admin_a, "GET", f"/v1/admin/keys?project={acc.b.id}"), 404, "project_not_found"
    )
    _error(acc.call(acc.admin_a, "GET", f"/v1/admin/keys/{acc.member_b_id}"), 404, "key_not_found")
    _error(
        acc.call(acc.admin_a, "DELETE", f"/v1/admin/keys/{acc.member_b_id}"), 404, "key_not_found"
    )
    assert acc.call(acc.member_b, "GET", "/v1/videos").status_code == 200
    # Nor may it revoke the operator key that lives in its project.
    revoke = acc.call(acc.admin_a, "DELETE", f"/v1/admin/keys/{acc.operator_id}")
    _error(revoke, 403, "operator_required")

    listed = acc.call(acc.admin_a, "GET", "/v1/admin/keys").json()
    assert {k["project_id"] for k in listed["data"]} == {acc.a.id}
    assert {acc.operator_id, acc.admin_a_id, reader["id"]} <= {k["id"] for k in listed["data"]}
    assert all("secret" not in k for k in listed["data"])
    first = acc.call(acc.admin_a, "GET", "/v1/admin/keys?limit=1").json()
    assert first["has_more"] is True and len(first["data"]) == 1
    after = first["last_id"]
    second = acc.call(acc.admin_a, "GET", f"/v1/admin/keys?limit=1&after={after}").json()
    assert second["data"][0]["id"] > after

    # Revoked: refused within a second; the key stays listed, revoking again is a no-op.
    revoked = acc.call(acc.admin_a, "DELETE", f"/v1/admin/keys/{reader['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    done = time.monotonic()
    while acc.call(reader["secret"], "GET", "/v1/videos").status_code == 200:
        assert time.monotonic() - done < 1.0, "a revoked key was still accepted after 1 s"
        time.sleep(0.02)
    again = acc.call(acc.admin_a, "DELETE", f"/v1/admin/keys/{reader['id']}")
    assert again.json() == revoked.json()
    log = acc.call(acc.admin_a, "GET", "/v1/admin/audit_log?limit=100").json()["data"]
    assert [e["action"] for e in log if e["target"] == reader["id"]] == [
        "keys.revoke",
        "keys.create",
    ]


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("after=nope", "after")],
)
def test_bad_key_listing_queries(accounts: Accounts, query: str, param: str) -> None:
    response = accounts.call(accounts.admin_a, "GET", f"/v1/admin/keys?{query}")
    assert response.status_code == 400 and response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "k", "models": []}, "models"),
        ({"name": "k", "models": ["no-such-model"]}, "models"),
        ({"name": "k", "models": "sandbox"}, "models"),
        ({"name": "k", "expires_in": "30x"}, "expires_in"),
        ({"name": "k", "expires_in": "0d"}, "expires_in"),
        ({"name": "k", "mode": "prod"}, "mode"),
        ({"name": "k", "role": "root"}, "role"),
        ({"name": ""}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "k", "colour": "red"}, "colour"),
        ({}, "name"),
    ],
)
def test_bad_key_bodies(accounts: Accounts, body: dict[str, Any], param: str) -> None:
    response = accounts.call(accounts.admin_a, "POST", "/v1/admin/keys", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_a_key_limited_to_models_and_one_that_expires(accounts: Accounts) -> None:
    acc = accounts
    body = {"name": "only sandbox", "models": ["sandbox"], "expires_in": "2s"}
    made = acc.call(acc.admin_a, "POST", "/v1/admin/keys", json=body).json()
    assert made["models"] == ["sandbox"]
    assert made["expires_at"] - made["created_at"] in (1, 2, 3)
    secret = made["secret"]
    other = {**VIDEO, "model": "kling-2.0"}
    error = _error(acc.call(secret, "POST", "/v1/videos", json=other), 403, "model_not_allowed")
    assert error["param"] == "model" and "sandbox" in error["message"]
    generation = {"model": "kling-2.0", "prompt": "x", "duration": 5}
    _error(
        acc.call(secret, "POST", "/v1/videos/generations", json=generation),
        403,
        "model_not_allowed",
    )
    estimate = acc.call(secret, "POST", "/v1/videos/estimate", json=other)
    _error(estimate, 403, "model_not_allowed")
    assert acc.call(secret, "POST", "/v1/videos/estimate", json=VIDEO).status_code == 200
    assert acc.call(secret, "POST", "/v1/videos", json=VIDEO).status_code == 200

    # Expired: refused like a revoked key, within a second of its expiry.
    while acc.call(secret, "GET", "/v1/videos").status_code == 200:
        assert time.time() < made["expires_at"] + 2, "an expired key was still accepted"
        time.sleep(0.05)
    _error(acc.call(secret, "GET", "/v1/videos"), 401, "invalid_api_key")


def test_members_and_readers_on_every_route(accounts: Accounts, server: ServerProcess) -> None:
    """Every admin route refuses member and reader keys; every route that writes refuses
    a reader, before its body is read."""
    acc = accounts
    reader = acc.call(acc.admin_a, "POST", "/v1/admin/keys", json={"name": "r", "role": "reader"})
    readonly = reader.json()["secret"]
    doc = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    some_id = "video_" + "0" * 26
    admin_routes = writes = 0
    for path, operations in doc["paths"].items():
        for method in operations:
            url = path.replace("{video_id}", some_id).replace("{job_id}", some_id)
            url = url.replace("{key_id}", acc.member_b_id).replace("{project_id}", acc.b.id)
            url = re.sub(r"\{[^}]+\}", "x", url)
            if path.startswith("/v1/admin/"):
                admin_routes += 1
                for key in (acc.member_b, readonly):
                    _error(acc.call(key, method.upper(), url, json={}), 403, "admin_required")
            elif method not in ("get", "head") and "/callbacks/" not in path:
                if path.endswith("/estimate"):  # reads: creates nothing
                    continue
                writes += 1
                response = acc.call(readonly, method.upper(), url, json={})
                assert response.status_code == 403, (method, path, response.text)
                assert response.json()["error"]["code"] in ("read_only_key", "admin_required")
    assert admin_routes >= 8 and writes >= 5


def test_the_audit_log_is_scoped_and_paginated(accounts: Accounts) -> None:
    acc = accounts
    own = acc.call(acc.admin_a, "GET", "/v1/admin/audit_log?limit=100").json()
    assert own["data"] and {e["project_id"] for e in own["data"]} == {acc.a.id}
    ids = [e["id"] for e in own["data"]]
    assert ids == sorted(ids, reverse=True)
    by_action = {(e["action"], e["target"]): e for e in own["data"]}
    cli_made = by_action[("keys.create", acc.operator_id)]
    assert cli_made["actor"] == "cli" and cli_made["detail"]["role"] == "operator"
    assert by_action[("projects.create", acc.a.id)]["actor"] == "cli"
    api_made = by_action[("keys.create", acc.admin_a_id)]
    assert api_made["actor"] == acc.operator_id and api_made["remote_addr"] == "127.0.0.1"
    assert api_made["detail"]["role"] == "admin" and "secret" not in str(api_made)

    # The admin of A reads nothing of B's; the operator reads B's with project=.
    assert acc.b.id not in str(own)
    _error(
        acc.call(acc.admin_a, "GET", f"/v1/admin/audit_log?project={acc.b.id}"),
        404,
        "project_not_found",
    )
    theirs = acc.call(acc.operator, "GET", f"/v1/admin/audit_log?project={acc.b.id}").json()
    assert [(e["action"], e["actor"]) for e in theirs["data"]] == [
        ("keys.create", acc.operator_id),
        ("projects.create", acc.operator_id),
    ]
    page = acc.call(acc.admin_a, "GET", "/v1/admin/audit_log?limit=2").json()
    assert [e["id"] for e in page["data"]] == ids[:2] and page["has_more"] is True
    nxt = acc.call(acc.admin_a, "GET", f"/v1/admin/audit_log?limit=2&after={page['last_id']}")
    assert [e["id"] for e in nxt.json()["data"]] == ids[2:4]
    for query in ("limit=0", "limit=101", "after=0", "after=x", "project=tenant_x"):
        status = acc.call(acc.operator, "GET", f"/v1/admin/audit_log?{query}").status_code
        assert status == (404 if query.startswith("project") else 400), query
    _error(acc.call(acc.member_b, "GET", "/v1/admin/audit_log"), 403, "admin_required")
