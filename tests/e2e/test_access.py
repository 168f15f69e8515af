"""Projects and keys from the command line, against API processes on one database:
a key revoked with ``vidgate keys revoke`` is refused by every process within a second,
and each change is in the audit log as the CLI's."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from tests.conftest import ServerProcess, cli, fast_env, make_database

pytestmark = pytest.mark.slow

KEY_ID = re.compile(r"\bkey_[0-9a-z]{26}\b")


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def two_apis(pg_server: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, str]]:
    """Two ``vidgate serve --no-worker`` processes on one database (and one media dir)."""
    url = make_database(pg_server)
    data_dir = tmp_path / "vidgate"
    env = fast_env(VIDGATE_DATABASE_URL=url)
    servers = [ServerProcess(data_dir=data_dir, env=env, extra_args=("--no-worker",))]
    servers.append(ServerProcess(data_dir=data_dir, env=env, extra_args=("--no-worker",)))
    try:
        # At once (migrations take an advisory lock); each start raises in its thread.
        starting = [threading.Thread(target=server.start) for server in servers]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        for server in servers:
            assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
        yield servers[0], servers[1], url
    finally:
        for server in servers:
            server.stop()


def test_a_key_revoked_by_the_cli_is_refused_by_both_processes_within_a_second(
    two_apis: tuple[ServerProcess, ServerProcess, str],
) -> None:
    a, b, url = two_apis
    data = ["--data-dir", str(a.data_dir)]
    made = cli("projects", "create", "acme", *data, env=a.env, in_process=True)
    assert "acme" in made.stdout
    again = cli("projects", "create", "acme", *data, env=a.env, check=False, in_process=True)
    assert again.returncode == 1 and "exists" in again.stderr
    created = cli(
        "keys",
        "create",
        "--name",
        "doomed",
        "--tenant",
        "acme",
        "--models",
        "sandbox,veo-3",
        "--expires-in",
        "30d",
        *data,
        env=a.env,
        in_process=True,
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("vg_test_")
    (key_id,) = KEY_ID.findall(created.stdout)
    assert "sandbox" in created.stdout and "expires" in created.stdout

    listing = cli("projects", "list", *data, env=a.env, in_process=True).stdout
    assert re.search(r"acme\s*│[^│]*│\s*1\s*│", listing), listing
    keys = cli("keys", "list", *data, env=a.env, in_process=True).stdout
    line = next(row for row in keys.splitlines() if key_id in row)
    assert "sandbox,veo-3.1" in line

    # Both processes hold the key as valid, refreshed all along: reads never stop
    # while the revocation happens, so each cache always has a fresh entry.
    refused_at: dict[str, float] = {}
    stop = threading.Event()

    def hammer(server: ServerProcess) -> None:
        with httpx.Client(base_url=server.base_url, headers=_auth(secret), timeout=5) as client:
            while not stop.is_set():
                status = client.get("/v1/videos").status_code
                if status == 401:
                    refused_at.setdefault(server.base_url, time.monotonic())
                    return
                assert status == 200
                time.sleep(0.01)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in (a, b)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        assert refused_at == {}
        revoked = cli("keys", "revoke", key_id, *data, env=a.env)
        # The CLI has committed by the time it exits.
        committed = time.monotonic()
        assert key_id in revoked.stdout
        for thread in threads:
            thread.join(timeout=5)
    finally:
        stop.set()
    assert set(refused_at) == {a.base_url, b.base_url}
    for server, when in refused_at.items():
        assert when - committed < 1.0, f"{server} accepted the key {when - committed:.2f} s late"
    for server in (a, b):
        r = httpx.get(f"{server.base_url}/v1/videos", headers=_auth(secret), timeout=5)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

    # Each change is audited as the CLI's, on its project.
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT a.actor, a.action, a.target, a.detail, t.name FROM audit_log a"
            " JOIN tenants t ON t.id = a.tenant_id ORDER BY a.id"
        ).fetchall()
    acme = [(r["actor"], r["action"], r["target"]) for r in rows if r["name"] == "acme"]
    assert acme[0][:2] == ("cli", "projects.create")
    assert acme[1:] == [("cli", "keys.create", key_id), ("cli", "keys.revoke", key_id)]
    detail = next(
        r["detail"] for r in rows if r["action"] == "keys.create" and r["target"] == key_id
    )
    assert detail["models"] == ["sandbox", "veo-3.1"] and detail["role"] == "member"
    assert secret not in str(rows) and secret[12:] not in str(rows)
