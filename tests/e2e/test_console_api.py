"""The public API the web console reads with the user's key: ``GET /v1/me``, the video
list's filters and ``links``, and ``GET /v1/videos/{id}/details``.

One real sandbox video per project is made through the API; the other rows a filter
must tell apart are copies of it written straight to the database (states, models,
modes and times the sandbox would take seconds to produce)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image
from tests.conftest import ServerProcess, fast_env, make_database, png_bytes

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
            time.sleep(0.1)
        raise AssertionError(f"{video_id} did not finish")


@pytest.fixture(scope="module")
def console_server(
    pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A gateway on a database of its own: the rows copied here (terminal states written
    directly, not counted by the job counters) stay out of the session server's
    metrics, which other tests compare with its database."""
    url = make_database(pg_server)
    srv = ServerProcess(
        data_dir=tmp_path_factory.mktemp("console") / "vidgate",
        env=fast_env(VIDGATE_DATABASE_URL=url),
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def session_db(console_server: ServerProcess) -> str:
    return console_server.env["VIDGATE_DATABASE_URL"]


@pytest.fixture(scope="module")
def server(console_server: ServerProcess) -> ServerProcess:
    return console_server


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


_NEVER = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _copies(db_url: str, source_id: str, rows: list[Json], *, outputs: bool = False) -> list[str]:
    """Copies of the job ``source_id`` with each row's columns changed (and, with
    ``outputs``, its output rows); their ids, in the order made (time-ordered)."""
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
            # Never due for a submit or a poll: the worker leaves the copies as written.
            changes = {"submit_at": _NEVER, "next_poll_at": _NEVER, **changes}
            picked = ", ".join(f"%({name})s" if name in changes else name for name in columns)
            conn.execute(
                f"INSERT INTO jobs (id, {listed}) SELECT %(new)s, {picked} FROM jobs"
                " WHERE id = %(source)s",
                {**changes, "new": job_id, "source": source_id},
            )
            if outputs:
                conn.execute(
                    'INSERT INTO job_outputs SELECT %s, "index", video_sha256,'
                    " thumbnail_sha256, spritesheet_sha256, width, height, fps, duration,"
                    " size_bytes, created_at FROM job_outputs WHERE job_id = %s",
                    (job_id, source_id),
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


# --- GET /v1/videos: filters ------------------------------------------------------------

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MODELS = ("sandbox", "veo-3", "veo-3.1")
STATES = ("queued", "waiting", "completed", "failed")


@pytest.fixture(scope="module")
def catalogue(project: Project, completed: Json, session_db: str) -> dict[str, Json]:
    """24 rows of every model name, state and mode, 100 s apart from BASE; and the real
    video. By id: what a filter sees of each."""
    rows = [
        {
            "model": MODELS[i % 3],
            "state": STATES[i % 4],
            "mode": "live" if i >= 12 else "test",
            "created_at": BASE + dt.timedelta(seconds=100 * i),
        }
        for i in range(24)
    ]
    ids = _copies(session_db, completed["id"], rows)
    found = {job_id: row for job_id, row in zip(ids, rows, strict=True)}
    found[completed["id"]] = {
        "model": "sandbox",
        "state": "completed",
        "mode": "test",
        "created_at": dt.datetime.fromtimestamp(completed["created_at"], dt.UTC),
    }
    return found


def _pages(project: Project, limit: int, **params: Any) -> list[str]:
    """Every id the list gives with ``params``, following the cursor ``limit`` at a time."""
    seen: list[str] = []
    after = None
    for _ in range(50):
        page = project.get(
            "/v1/videos", limit=limit, **params, **({"after": after} if after else {})
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["data"]) <= limit
        seen += [video["id"] for video in body["data"]]
        if not body["has_more"]:
            return seen
        after = body["last_id"]
    raise AssertionError("the cursor never ended")


_STATUS = {
    "queued": "queued",
    "waiting": "in_progress",
    "completed": "completed",
    "failed": "failed",
}
_CARD = {"sandbox": "sandbox", "veo-3": "veo-3.1", "veo-3.1": "veo-3.1"}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"model": "sandbox"},
        {"model": "veo-3"},
        {"model": "veo-3.1"},
        {"status": "in_progress"},
        {"status": "failed"},
        {"status": "queued", "mode": "live"},
        {"mode": "test"},
        {
            "created_after": int(BASE.timestamp()) + 500,
            "created_before": int(BASE.timestamp()) + 1500,
        },
        {"model": "veo-3", "status": "completed", "mode": "test"},
        {"model": "sandbox", "status": "completed", "order": "asc"},
    ],
)
def test_filters_combine_and_keep_the_cursor(
    project: Project, catalogue: dict[str, Json], params: Json
) -> None:
    after = params.get("created_after")
    before = params.get("created_before")
    wanted = [
        job_id
        for job_id, row in catalogue.items()
        if ("model" not in params or _CARD[row["model"]] == _CARD[params["model"]])
        and ("status" not in params or _STATUS[row["state"]] == params["status"])
        and ("mode" not in params or row["mode"] == params["mode"])
        and (after is None or row["created_at"].timestamp() >= after)
        and (before is None or row["created_at"].timestamp() < before)
    ]
    wanted.sort(reverse=params.get("order", "desc") == "desc")
    assert wanted, "a filter that matches nothing proves nothing"
    assert _pages(project, 4, **params) == wanted
    # mode is on every video.
    listed = project.get("/v1/videos", limit=100, **params).json()["data"]
    assert all(video["mode"] == catalogue[video["id"]]["mode"] for video in listed)


def test_another_project_sees_none_of_it_with_any_filter(
    other: Project, catalogue: dict[str, Json]
) -> None:
    for params in ({}, {"model": "sandbox"}, {"status": "completed"}, {"mode": "live"},
                   {"created_after": 0}, {"links": "true"}):  # fmt: skip
        assert _pages(other, 100, **params) == []
    some = next(iter(catalogue))
    assert other.get(f"/v1/videos/{some}/details").status_code == 404


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "done"}, "status"),
        ({"status": "cancelled"}, "status"),
        ({"mode": "prod"}, "mode"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": -1}, "created_before"),
        ({"links": "maybe"}, "links"),
        ({"model": "sandbox\x00"}, "model"),
        ({"after": "not-an-id", "status": "queued"}, "after"),
    ],
)
def test_bad_filter_values_are_openai_shaped_400s(
    project: Project, params: Json, param: str
) -> None:
    answer = project.get("/v1/videos", **params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"] and error["code"]


# --- links ---------------------------------------------------------------------------


def test_links_are_absent_by_default_and_null_until_completed(
    project: Project, completed: Json, session_db: str
) -> None:
    queued, bare, expired, released = _copies(
        session_db,
        completed["id"],
        [
            {"state": "queued"},
            {"state": "completed"},  # no output rows
            {"expires_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
            {"media_deleted_at": dt.datetime.now(dt.UTC)},
        ],
        outputs=True,
    )
    with psycopg.connect(session_db, autocommit=True) as conn:
        conn.execute("DELETE FROM job_outputs WHERE job_id = %s", (bare,))
    plain = project.get("/v1/videos", limit=100).json()["data"]
    assert plain and all("links" not in video for video in plain)
    linked = {v["id"]: v for v in project.get("/v1/videos", limit=100, links="true").json()["data"]}
    for job_id in (queued, bare, expired, released):
        assert linked[job_id]["links"] is None
    links = linked[completed["id"]]["links"]
    assert set(links) == {"video", "thumbnail", "spritesheet", "expires_at", "spritesheet_grid"}
    assert links["spritesheet_grid"] == {
        "columns": 5, "rows": 2, "frames": 10, "tile_width": 160, "tile_height": 120
    }  # fmt: skip
    assert links["expires_at"] > time.time()


def test_links_work_without_auth_and_make_previews_lazily(
    project: Project, completed: Json, session_db: str
) -> None:
    # As if the previews step had not run yet: the first request makes them.
    with psycopg.connect(session_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE job_outputs SET thumbnail_sha256 = NULL, spritesheet_sha256 = NULL"
            " WHERE job_id = %s",
            (completed["id"],),
        )
    listed = project.get("/v1/videos", limit=100, links="true").json()["data"]
    links = next(v["links"] for v in listed if v["id"] == completed["id"])
    with httpx.Client(timeout=30) as anonymous:
        video = anonymous.get(links["video"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        part = anonymous.get(links["video"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == video.content[100:200]
        thumbnail = anonymous.get(links["thumbnail"])
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/webp"
        sheet = anonymous.get(links["spritesheet"])
        assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/jpeg"
    grid = links["spritesheet_grid"]
    with Image.open(io.BytesIO(sheet.content)) as image:
        assert image.size == (
            grid["columns"] * grid["tile_width"],
            grid["rows"] * grid["tile_height"],
        )
    with psycopg.connect(session_db, autocommit=True) as conn:
        made = conn.execute(
            "SELECT thumbnail_sha256, spritesheet_sha256 FROM job_outputs WHERE job_id = %s",
            (completed["id"],),
        ).fetchone()
    assert made is not None and None not in made


# --- GET /v1/videos/{id}/details ---------------------------------------------------------


def _details(project: Project, video_id: str) -> Json:
    answer = project.get(f"/v1/videos/{video_id}/details")
    assert answer.status_code == 200, answer.text
    body = dict(answer.json())
    assert body["object"] == "video.details"
    return body


def test_details_of_a_completed_video(project: Project, completed: Json) -> None:
    details = _details(project, completed["id"])
    assert details["video"] == project.get(f"/v1/videos/{completed['id']}").json()
    assert details["video"]["mode"] == "test"
    request = details["request"]
    assert request == {
        "model": "sandbox", "kind": "generate", "prompt": "a finished clip",
        "negative_prompt": None, "seconds": 1, "size": "320x240",
        "resolution": request["resolution"], "aspect_ratio": "4:3", "fps": request["fps"],
        "n": 1, "seed": None, "metadata": {}, "source_video_id": None, "images": [],
        "webhook_url": None,
    }  # fmt: skip
    assert details["deployment"]["provider"] == "sandbox"
    assert details["deployment"]["upstream_id"] and details["deployment"]["tried"] == []
    steps = details["history"]
    assert [step["status"] for step in steps] == ["queued", "in_progress", "completed"]
    assert [step["at"] for step in steps] == sorted(step["at"] for step in steps)
    timings = details["timings"]
    assert timings["queued_s"] >= 0 and timings["generating_s"] > 0
    assert timings["total_s"] == pytest.approx(
        timings["queued_s"] + timings["generating_s"], abs=0.01
    )
    assert (details["cost"], details["estimated_cost"], details["currency"]) == (
        completed["cost"], completed["estimated_cost"], "USD"
    )  # fmt: skip
    assert details["links"]["spritesheet_grid"]["frames"] == 10
    [output] = details["outputs"]
    assert (output["index"], output["width"], output["height"]) == (0, 320, 240)
    assert output["size_bytes"] > 0 and output["duration"] > 0
    with httpx.Client(timeout=30) as anonymous:
        for variant in ("video", "thumbnail", "spritesheet"):
            assert anonymous.get(output[variant]).status_code == 200
    assert details["webhook_deliveries"] == []


def test_details_of_failed_and_remixed_videos(project: Project, completed: Json) -> None:
    failed = project.make_video(prompt="will fail", metadata={"sandbox_fail": "boom"})
    remix = project.client.post(f"/v1/videos/{completed['id']}/remix", json={"prompt": "again"})
    assert remix.status_code == 200, remix.text
    image = "data:image/png;base64," + base64.b64encode(png_bytes(320, 240)).decode()
    with_image = project.make_video(prompt="from a frame", input_reference=image)
    project.wait(failed["id"])

    details = _details(project, failed["id"])
    assert details["video"]["status"] == "failed"
    assert details["video"]["error"]["code"] == "boom"
    assert [step["status"] for step in details["history"]][-1] == "failed"
    assert details["links"] is None and details["outputs"] == []
    assert details["cost"] == 0

    project.wait(remix.json()["id"])
    details = _details(project, remix.json()["id"])
    assert details["request"]["kind"] == "remix"
    assert details["request"]["source_video_id"] == completed["id"]
    assert details["video"]["remixed_from_video_id"] == completed["id"]
    assert details["links"] is not None and len(details["outputs"]) == 1

    answer = project.get(f"/v1/videos/{with_image['id']}/details")
    [ref] = answer.json()["request"]["images"]
    assert ref["role"] == "input_reference" and ref["content_type"] == "image/png"
    assert len(ref["sha256"]) == 64 and (ref["width"], ref["height"]) == (320, 240)
    # Never the image's bytes.
    assert image[22:80] not in answer.text


def test_details_list_webhook_deliveries(server: ServerProcess, completed: Json) -> None:
    admin = Project(server, f"console-hooks-{uuid.uuid4().hex[:8]}", "--role", "admin")
    hook = "http://127.0.0.1:9/vidgate"  # nothing listens: deliveries stay pending
    endpoint = admin.client.post(
        "/v1/webhook_endpoints", json={"url": hook, "events": ["video.queued", "video.completed"]}
    )
    assert endpoint.status_code == 200, endpoint.text
    video = admin.make_video(prompt="heard", webhook_url="http://127.0.0.1:9/own")
    admin.wait(video["id"])
    deliveries = _details(admin, video["id"])["webhook_deliveries"]
    by_url = {(d["url"], d["event_type"]): d for d in deliveries}
    assert set(by_url) == {
        (hook, "video.queued"),
        (hook, "video.completed"),
        ("http://127.0.0.1:9/own", "video.completed"),
    }
    queued = by_url[(hook, "video.queued")]
    assert queued["id"].startswith("whd_") and queued["status"] in ("pending", "failed")
    assert by_url[("http://127.0.0.1:9/own", "video.completed")]["attempts"] >= 1
    admin.client.close()


def test_details_of_missing_deleted_and_odd_ids_are_404(
    project: Project, completed: Json, session_db: str
) -> None:
    [gone] = _copies(session_db, completed["id"], [{"deleted_at": dt.datetime.now(dt.UTC)}])
    for video_id in (gone, new_id("video"), "nope", "video_" + "0" * 26):
        answer = project.get(f"/v1/videos/{video_id}/details")
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "video_not_found"
