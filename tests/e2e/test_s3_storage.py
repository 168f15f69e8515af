"""A real ``vidgate serve`` on S3 storage (moto's server on loopback, tests/s3.py): a
sandbox job's content downloads (Range included) with nothing left on the host's disk,
another host (an app in this process, with a data directory of its own) serves the same
links by redirect to presigned URLs, retention expires media, and deleting videos
deletes their objects unless another job still refers to them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, fast_env, make_database
from tests.s3 import S3Endpoint

from vidgate.api.app import create_app
from vidgate.config import Settings
from vidgate.runtime import open_runtime


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait(base: str, key: str, video_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(f"{base}/v1/videos/{video_id}", headers=_auth(key)).json()
        if body["status"] in ("completed", "failed"):
            assert body["status"] == "completed", body
            return body
        time.sleep(0.1)
    raise AssertionError(f"{video_id} did not finish")


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 15
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within 15 s: {what}")
        time.sleep(0.1)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_serving_from_s3_any_host_retention_and_deletion(
    pg_server: str, s3_endpoint: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database(pg_server)
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = fast_env(
        VIDGATE_DATABASE_URL=url,
        **s3_endpoint.env_for(prefix),
        # Small parts: the videos go up as multipart uploads.
        VIDGATE_STORAGE_PART_SIZE="16384",
        VIDGATE_MEDIA_SWEEP_INTERVAL_S="0.2",
    )
    one = ServerProcess(data_dir=tmp_path / "one", env=env)
    one.start()
    try:
        _check(one, s3_endpoint, prefix, url, tmp_path / "two", monkeypatch)
    finally:
        one.stop()


def _check(
    one: ServerProcess,
    s3: S3Endpoint,
    prefix: str,
    db: str,
    elsewhere: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = one.create_key("s3 admin", "--tenant", "s3-e2e", "--role", "admin")
    base = one.base_url

    def create(path: str = "/v1/videos", **body: Any) -> str:
        answer = httpx.post(f"{base}{path}", headers=_auth(key), json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def keys() -> set[str]:
        return set(asyncio.run(s3.keys(prefix)))

    clip = {"model": "sandbox", "seconds": "1", "size": "426x240"}
    first = create(prompt="the first", **clip)
    kept = create(prompt="kept a while", **clip)
    _wait(base, key, first)
    remix = create(f"/v1/videos/{first}/remix", prompt="the same, again")
    _wait(base, key, kept)
    _wait(base, key, remix)

    # Streamed, with Range.
    content = f"{base}/v1/videos/{first}/content"
    whole = httpx.get(content, headers=_auth(key))
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert int(whole.headers["content-length"]) == len(whole.content) > 16384
    part = httpx.get(content, headers={**_auth(key), "Range": "bytes=100-16499"})
    assert part.status_code == 206 and part.content == whole.content[100:16500]
    assert part.headers["content-range"] == f"bytes 100-16499/{len(whole.content)}"
    tail = httpx.get(content, headers={**_auth(key), "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    past = httpx.get(content, headers={**_auth(key), "Range": f"bytes={len(whole.content)}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(whole.content)}"
    thumb = httpx.get(content, params={"variant": "thumbnail"}, headers=_auth(key))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    # No finished media on the host: none in the store's folder, no scratch left.
    assert _files(one.data_dir / "media") == [] and _files(one.data_dir / "tmp") == []
    stored = keys()
    # Three videos and their previews; no upload markers left.
    assert len(stored) == 9 and not any(".partial/" in k for k in stored)

    # Another host, presigned links: the signed link redirects to the bucket.
    links = httpx.get(f"{base}/v1/videos/generations/{first}", headers=_auth(key)).json()
    signed = links["data"][0]["url"].removeprefix(one.base_url)
    for name, value in s3.env_for(prefix).items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=elsewhere, database_url=db, storage_links="presigned")
    redirect, console = asyncio.run(_get_elsewhere(settings, signed, "/ui/"))
    assert redirect.status_code == 307 and redirect.headers["location"].startswith(s3.endpoint_url)
    # The presigned URL ends when the signed link it answers does (which the link's
    # rounding may put past the TTL): botocore signs it here with an absolute Expires.
    link_ends = int(parse_qs(urlsplit(signed).query)["expires"][0])
    presign_ends = int(parse_qs(urlsplit(redirect.headers["location"]).query)["Expires"][0])
    assert abs(presign_ends - link_ends) <= 1
    # The console's CSP lets its <img> and <video> follow that redirect.
    bucket = "{0.scheme}://{0.netloc}".format(urlsplit(redirect.headers["location"]))
    csp = dict(
        p.strip().split(" ", 1) for p in console.headers["content-security-policy"].split(";")
    )
    assert csp["img-src"] == csp["media-src"] == f"'self' {bucket}"
    fetched = httpx.get(redirect.headers["location"])
    assert fetched.status_code == 200 and fetched.content == whole.content
    assert fetched.headers["content-type"] == "video/mp4"
    assert f'filename="{first}.mp4"' in fetched.headers["content-disposition"]

    # Retention: a day, then the video made to be past it.
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = 's3-e2e'").fetchone()
        assert row is not None
        project = row[0]
    set_to = httpx.put(
        f"{base}/v1/admin/projects/{project}/retention", headers=_auth(key), json={"days": 1}
    )
    assert set_to.status_code == 200 and set_to.json()["days"] == 1, set_to.text
    assert httpx.get(
        f"{base}/v1/admin/projects/{project}/retention", headers=_auth(key)
    ).json() == {"object": "project.retention", "project_id": project, "days": 1}
    audit = httpx.get(f"{base}/v1/admin/audit_log", headers=_auth(key)).json()["data"]
    assert audit[0]["action"] == "projects.retention" and audit[0]["detail"] == {"days": 1}
    other = one.create_key("elsewhere", "--tenant", "s3-other", "--role", "admin")
    refused = httpx.put(
        f"{base}/v1/admin/projects/{project}/retention", headers=_auth(other), json={"days": 2}
    )
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "project_not_found"
    video = httpx.get(f"{base}/v1/videos/{kept}", headers=_auth(key)).json()
    assert video["expires_at"] == video["completed_at"] + 86400
    kept_keys = _keys_of(keys(), db, kept)
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE jobs SET expires_at = now() - interval '1 s' WHERE id = %s", [kept])
    gone = httpx.get(f"{base}/v1/videos/{kept}/content", headers=_auth(key))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "video_expired"
    task = httpx.get(f"{base}/v1/videos/generations/{kept}", headers=_auth(key)).json()
    assert task["status"] == "completed" and task["data"] == []
    assert task["expires_at"] is not None and task["expires_at"] <= time.time()
    _until(lambda: not (keys() & kept_keys), "the expired video's objects are deleted")

    # Deleting the first video: its previews go; its video stays, the remix's source.
    first_keys = _keys_of(keys(), db, first)
    assert httpx.delete(f"{base}/v1/videos/{first}", headers=_auth(key)).status_code == 200
    _until(lambda: len(keys() & first_keys) == 1, "the first video's previews are deleted")
    assert keys() & first_keys == {k for k in first_keys if k.endswith(_video_sha(db, first))}
    assert httpx.delete(f"{base}/v1/videos/{remix}", headers=_auth(key)).status_code == 200
    _until(lambda: keys() == set(), "every object is deleted")


async def _get_elsewhere(settings: Settings, *paths: str) -> list[httpx.Response]:
    """``GET`` each path from an API of another host: a runtime and app in this process."""
    assert settings.database_url is not None
    async with open_runtime(settings, settings.database_url) as rt:
        app = create_app(rt.services, settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://two") as client:
            return [await client.get(path) for path in paths]


def _keys_of(stored: set[str], db: str, job_id: str) -> set[str]:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT video_sha256, thumbnail_sha256, spritesheet_sha256 FROM job_outputs"
            " WHERE job_id = %s",
            [job_id],
        ).fetchone()
    assert row is not None
    found = {k for k in stored if k.rsplit("/", 1)[-1] in row}
    assert len(found) == 3
    return found


def _video_sha(db: str, job_id: str) -> str:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT spec FROM jobs WHERE kind = 'remix'").fetchone()
    assert row is not None
    return str(row[0]["source"]["sha256"])
