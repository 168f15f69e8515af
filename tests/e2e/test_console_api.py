"""The public API the web console reads with the user's key: ``GET /v1/me``, the video
list's filters and ``links``, and ``GET /v1/videos/{id}/details``.

One real sandbox video per project is made through the API; the other rows a filter
must tell apart are copies of it written straight to the database (states, models,
modes and times the sandbox would take seconds to produce)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess

from vidgate.core.ids import new_id

Json = dict[str, Any]


class Project:
    def __init__(self, server: ServerProcess, name: str, *flags: str) -> None:
        self.name = name
        self.key = server.create_key(f"{name} key", "--tenant", name, *flags)
        self.client = httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def make_video(self, **fields: Any) -> Json:
        body = {"model": "sandbox", "prompt": "console", "seconds": 1, "size": "320x240"}
        made = self.client.post("/v1/videos", json={**body, **fields})
        assert made.status_code == 200, made.text
        return dict(made.json())

    def wait(self, video_id: str) -> Json:
        for _ in range(300):
            video = self.get(f"/v1/videos/{video_id}").json()
            if video["status"] in ("completed", "failed"):
                return dict(video)
            # The server's own poll hint, at most a second.
            import time

            time.sleep(0.1)
        raise AssertionError(f"{video_id} did not finish")


@pytest.fixture(scope="module")
def project(server: ServerProcess) -> Iterator[Project]:
    made = Project(server, f"console-{uuid.uuid4().hex[:8]}")
    yield made
    made.client.close()


@pytest.fixture(scope="module")
def other(server: ServerProcess) -> Iterator[Project]:
    made = Project(server, f"console-other-{uuid.uuid4().hex[:8]}")
    yield made
    made.client.close()


@pytest.fixture(scope="module")
def completed(project: Project) -> Json:
    video = project.make_video(prompt="a finished clip")
    return project.wait(video["id"])


def _copies(db_url: str, source_id: str, rows: list[Json]) -> list[str]:
    """Copies of the job ``source_id`` (no outputs) with each row's columns changed;
    their ids, in the order made (time-ordered)."""
    ids = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'jobs' AND column_name <> 'id'"
            )
        ]
        listed = ", ".join(columns)
        for changes in rows:
            job_id = new_id("video")
            picked = ", ".join(
                f"%({name})s" if name in changes else name for name in columns
            )
            conn.execute(
                f"INSERT INTO jobs (id, {listed}) SELECT %(new)s, {picked} FROM jobs"
                " WHERE id = %(source)s",
                {**changes, "new": job_id, "source": source_id},
            )
            ids.append(job_id)
    return ids


# --- GET /v1/me ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "role", "mode"),
    [
        ((), "member", "test"),
        (("--role", "reader", "--models", "sandbox,veo-3"), "reader", "test"),
        (("--role", "admin", "--live", "--expires-in", "30d"), "admin", "live"),
        (("--role", "operator"), "operator", "test"),
    ],
)
def test_me_says_who_the_key_is(
    server: ServerProcess, flags: tuple[str, ...], role: str, mode: str
) -> None:
    name = f"me-{uuid.uuid4().hex[:8]}"
    secret = server.create_key(f"{role} key", "--tenant", name, *flags)
    me = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200, me.text
    body = me.json()
    assert set(body) == {
        "object", "id", "name", "role", "mode", "project", "models", "expires_at"
    }  # fmt: skip
    assert body["object"] == "api_key.self"
    assert body["id"].startswith("key_")
    assert (body["name"], body["role"], body["mode"]) == (f"{role} key", role, mode)
    assert body["project"]["name"] == name and body["project"]["id"].startswith("tenant_")
    # Never the secret, nor any part of it beyond the listed prefix.
    assert secret not in me.text and secret[12:] not in me.text
    if "--models" in flags:
        assert body["models"] == ["sandbox", "veo-3.1"]  # an alias stored as its card
    else:
        assert body["models"] is None
    if "--expires-in" in flags:
        left = body["expires_at"] - dt.datetime.now(dt.UTC).timestamp()
        assert 29 * 86400 < left <= 30 * 86400
    else:
        assert body["expires_at"] is None


def test_me_refuses_a_missing_or_wrong_key(server: ServerProcess) -> None:
    missing = httpx.get(f"{server.base_url}/v1/me")
    wrong = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": "Bearer vg_test_nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert wrong.json()["error"] == {
        "message": "invalid API key (unknown, revoked or expired)",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
