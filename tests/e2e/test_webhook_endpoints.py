"""Projects' webhook endpoints through a real ``vidgate serve``: managed with admin keys
only, scoped to their project, and a job's events delivered, signed, to a real receiver
on loopback, each attempt readable at ``/deliveries``.

The session's server is shared: these tests use projects of their own (``hooks-*``),
so that no other test's job sends events here.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks import Webhook
from tests.conftest import ServerProcess, cli


class HookReceiver:
    """Answers every POST with ``status`` and ``body`` (changeable at any time) and keeps
    each request's headers and body."""

    def __init__(self, status: int = 200, body: bytes = b"ok") -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        self.body = body
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, data))
                body = b"" if receiver.status in (204, 304) else receiver.body
                self.send_response(receiver.status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.calls) >= count, f"expected {count} deliveries, got {len(self.calls)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    r = HookReceiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    return {
        "admin": server.create_key("hooks admin", "--tenant", "hooks-a", "--role", "admin"),
        "member": server.create_key("hooks member", "--tenant", "hooks-a"),
        "reader": server.create_key("hooks reader", "--tenant", "hooks-a", "--role", "reader"),
        "other": server.create_key("hooks other", "--tenant", "hooks-b", "--role", "admin"),
        "operator": server.create_key(
            "hooks operator", "--tenant", "hooks-o", "--role", "operator"
        ),
    }


def _call(
    server: ServerProcess,
    key: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.base_url}/v1/webhook_endpoints{path}",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        timeout=10,
        **kw,
    )


def _tenant_of(server: ServerProcess, name: str) -> str:
    with psycopg.connect(server.env["VIDGATE_DATABASE_URL"]) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_jobs_events_reach_the_endpoint_signed_and_each_attempt_is_recorded(
    server: ServerProcess, keys: dict[str, str], receiver: HookReceiver
) -> None:
    made = _call(
        server,
        keys["admin"],
        "POST",
        "",
        json={"url": receiver.url, "events": ["video.completed", "video.queued"]},
    )
    assert made.status_code == 200, made.text
    endpoint = made.json()
    secret = endpoint.pop("secret")
    assert secret.startswith("whsec_")
    assert endpoint["events"] == ["video.queued", "video.completed"]
    assert endpoint["status"] == "enabled" and endpoint["disabled_reason"] is None
    assert endpoint["project_id"] == _tenant_of(server, "hooks-a")
    # The secret is shown once: never again.
    listed = _call(server, keys["admin"], "GET", "").json()
    assert endpoint in listed["data"]
    assert "secret" not in _call(server, keys["admin"], "GET", f"/{endpoint['id']}").json()

    video = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {keys['member']}"},
        json={"model": "sandbox", "prompt": "hooked", "seconds": "1", "size": "320x240"},
    )
    assert video.status_code == 200, video.text
    video_id = video.json()["id"]
    receiver.wait(2)
    events = [Webhook(secret).verify(body, headers) for headers, body in receiver.calls]
    assert [e["type"] for e in events] == ["video.queued", "video.completed"]
    assert all(e["data"]["id"] == video_id for e in events)
    assert receiver.calls[1][0]["webhook-id"] == f"evt_{video_id}_completed"

    page = _call(server, keys["admin"], "GET", f"/{endpoint['id']}/deliveries").json()
    deadline = time.monotonic() + 5
    while any(d["status"] == "pending" for d in page["data"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        page = _call(server, keys["admin"], "GET", f"/{endpoint['id']}/deliveries").json()
    assert [d["event_type"] for d in page["data"]] == ["video.completed", "video.queued"]
    first = page["data"][0]
    assert first["status"] == "delivered" and first["video_id"] == video_id
    (attempt,) = first["attempts"]
    assert attempt["status_code"] == 200 and attempt["response_snippet"] == "ok"
    assert attempt["error"] is None and attempt["latency_ms"] >= 0
    assert abs(attempt["attempted_at"] - time.time()) < 60

    # A resend: one more attempt, same event.
    resent = _call(
        server, keys["admin"], "POST", f"/{endpoint['id']}/deliveries/{first['id']}/resend"
    )
    assert resent.status_code == 200, resent.text
    receiver.wait(3)
    assert receiver.calls[2][0]["webhook-id"] == f"evt_{video_id}_completed"

    rotated = _call(server, keys["admin"], "POST", f"/{endpoint['id']}/rotate_secret").json()
    assert rotated["secret"] != secret and rotated["previous_secret_expires_at"] > time.time()
    gone = _call(server, keys["admin"], "DELETE", f"/{endpoint['id']}")
    assert gone.json() == {
        "id": endpoint["id"],
        "object": "webhook_endpoint.deleted",
        "deleted": True,
    }
    assert _call(server, keys["admin"], "GET", f"/{endpoint['id']}").status_code == 404

    with psycopg.connect(server.env["VIDGATE_DATABASE_URL"]) as conn:
        actions = conn.execute(
            "SELECT action, actor, remote_addr, detail::text FROM audit_log WHERE target = %s"
            " OR target = %s ORDER BY id",
            (endpoint["id"], first["id"]),
        ).fetchall()
    assert [a[0] for a in actions] == [
        "webhook_endpoints.create",
        "webhook_deliveries.resend",
        "webhook_endpoints.rotate_secret",
        "webhook_endpoints.delete",
    ]
    assert all(a[1].startswith("key_") and a[2] == "127.0.0.1" for a in actions)
    assert not any("whsec_" in a[3] for a in actions)


def test_only_admin_and_operator_keys_manage_endpoints_each_in_its_project(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    body = {"url": "https://hooks.example.com/in", "events": ["video.failed"]}
    for role in ("member", "reader"):
        refused = _call(server, keys[role], "POST", "", json=body)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "admin_required"
        assert _call(server, keys[role], "GET", "").status_code == 403

    mine = _call(server, keys["admin"], "POST", "", json=body).json()["id"]
    theirs = _call(server, keys["other"], "POST", "", json=body).json()["id"]
    # Another project's endpoint reads as missing, through every route.
    for method, path in (
        ("GET", f"/{theirs}"),
        ("DELETE", f"/{theirs}"),
        ("POST", f"/{theirs}/rotate_secret"),
        ("POST", f"/{theirs}/enable"),
        ("GET", f"/{theirs}/deliveries"),
        ("POST", f"/{theirs}/deliveries/whd_00000000000000000000000000/resend"),
    ):
        missing = _call(server, keys["admin"], method, path)
        assert missing.status_code == 404, (method, path, missing.text)
        assert missing.json()["error"]["code"] == "webhook_endpoint_not_found"
    assert [e["id"] for e in _call(server, keys["admin"], "GET", "").json()["data"]] == [mine]
    other_project = _tenant_of(server, "hooks-b")
    assert (
        _call(server, keys["admin"], "GET", "", params={"project": other_project}).status_code
        == 404
    )

    # An operator reaches any project: by id, and with project= to list or create.
    listed = _call(server, keys["operator"], "GET", "", params={"project": other_project}).json()
    assert [e["id"] for e in listed["data"]] == [theirs]
    assert _call(server, keys["operator"], "GET", f"/{mine}").status_code == 200
    made = _call(server, keys["operator"], "POST", "", json=body, params={"project": other_project})
    assert made.status_code == 200 and made.json()["project_id"] == other_project
    unknown = _call(server, keys["operator"], "GET", "", params={"project": "tenant_nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "project_not_found"
    for endpoint_id, key in ((mine, "admin"), (theirs, "other"), (made.json()["id"], "other")):
        assert _call(server, keys[key], "DELETE", f"/{endpoint_id}").status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (
            {"url": "https://a.example.com", "events": ["video.failed"], "x": 1},
            "x",
            "unknown_parameter",
        ),
        ({"events": ["video.failed"]}, "url", "missing_parameter"),
        ({"url": "https://a.example.com"}, "events", "missing_parameter"),
        ({"url": "https://a.example.com", "events": []}, "events", "invalid_request"),
        ({"url": "https://a.example.com", "events": ["video.done"]}, "events.0", "invalid_request"),
        ({"url": "https://a.example.com", "events": "video.failed"}, "events", "invalid_request"),
        ({"url": 5, "events": ["video.failed"]}, "url", "invalid_request"),
        ({"url": "ftp://a.example.com/x", "events": ["video.failed"]}, "url", "invalid_parameter"),
        ({"url": "https://a.example.com/\n", "events": ["video.failed"]}, "url", None),
        ({"url": "https://" + "a" * 2050, "events": ["video.failed"]}, "url", "invalid_request"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(
    server: ServerProcess, keys: dict[str, str], body: dict[str, Any], param: str, code: str | None
) -> None:
    refused = _call(server, keys["admin"], "POST", "", json=body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_bad_ids_and_pages_are_refused(server: ServerProcess, keys: dict[str, str]) -> None:
    admin = keys["admin"]
    assert _call(server, admin, "GET", "/we_nope").status_code == 404
    assert _call(server, admin, "GET", "/we_nope%00").status_code in (400, 404)
    made = _call(
        server, admin, "POST", "", json={"url": "https://a.example.com", "events": ["video.failed"]}
    ).json()
    path = f"/{made['id']}/deliveries"
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"after": "nope"}):
        refused = _call(server, admin, "GET", path, params=params)
        assert refused.status_code == 400, (params, refused.text)
    resend = _call(server, admin, "POST", f"{path}/whd_00000000000000000000000000/resend")
    assert resend.status_code == 404
    assert resend.json()["error"]["code"] == "delivery_not_found"
    not_json = _call(
        server, admin, "POST", "", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert _call(server, admin, "DELETE", f"/{made['id']}").status_code == 200


def test_a_project_has_at_most_sixteen_endpoints(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    body = {"url": "https://many.example.com", "events": ["video.failed"]}
    key = keys["other"]
    made = [_call(server, key, "POST", "", json=body) for _ in range(17)]
    assert [m.status_code for m in made] == [200] * 16 + [400]
    assert made[-1].json()["error"]["code"] == "endpoint_limit_reached"
    for m in made[:16]:
        assert _call(server, key, "DELETE", f"/{m.json()['id']}").status_code == 200


def test_every_route_is_in_the_openapi_document(server: ServerProcess) -> None:
    doc = httpx.get(f"{server.base_url}/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/v1/webhook_endpoints"]) == {"get", "post"}
    assert set(paths["/v1/webhook_endpoints/{endpoint_id}"]) == {"get", "delete"}
    for path in (
        "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
        "/v1/webhook_endpoints/{endpoint_id}/enable",
        "/v1/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/resend",
    ):
        assert set(paths[path]) == {"post"}
    assert set(paths["/v1/webhook_endpoints/{endpoint_id}/deliveries"]) == {"get"}
    create = paths["/v1/webhook_endpoints"]["post"]
    assert "403" in create["responses"] and "422" not in create["responses"]
    assert json.dumps(doc).count("CreateWebhookEndpointBody") >= 1


def test_the_cli_manages_a_projects_endpoints_through_the_database(
    server: ServerProcess, keys: dict[str, str]
) -> None:
    admin = keys["other"]  # of project hooks-b

    def run(*args: str, check: bool = True) -> Any:
        return cli(
            "webhook-endpoints",
            *args,
            "--data-dir",
            str(server.data_dir),
            env=server.env,
            check=check,
            in_process=True,
        )

    made = run(
        "create",
        "--tenant",
        "hooks-b",
        "--url",
        "https://cli.example.com/in",
        "--events",
        "video.failed,video.queued",
    )
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    (endpoint,) = _call(server, admin, "GET", "").json()["data"]
    assert endpoint["events"] == ["video.queued", "video.failed"]
    listed = run("list", "--tenant", "hooks-b").stdout
    assert endpoint["id"] in listed and secret not in listed
    rotated = run("rotate-secret", endpoint["id"]).stdout.strip().splitlines()[-1]
    assert rotated.startswith("whsec_") and rotated != secret
    run("delete", endpoint["id"])
    assert _call(server, admin, "GET", "").json()["data"] == []
    with psycopg.connect(server.env["VIDGATE_DATABASE_URL"]) as conn:
        actors = conn.execute(
            "SELECT actor, action FROM audit_log WHERE target = %s ORDER BY id", (endpoint["id"],)
        ).fetchall()
    assert actors == [
        ("cli", "webhook_endpoints.create"),
        ("cli", "webhook_endpoints.rotate_secret"),
        ("cli", "webhook_endpoints.delete"),
    ]
