"""Shared fixtures: one embedded PostgreSQL for the session, real server processes.

Every server here is a real ``vidgate serve`` subprocess reached over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.debian_pg import debian_pg as debian_pg  # the second PostgreSQL (Debian's)
from tests.s3 import s3_endpoint  # noqa: F401  (a session fixture: moto's S3 server)
from vidgate.db.embedded import EmbeddedPostgres
from vidgate.db.migrate import migrate
from vidgate.media.probe import MediaInfo

VIDGATE = [sys.executable, "-m", "vidgate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URI of the session's embedded PostgreSQL (its maintenance database).

    It lives outside pytest's private (0700) temp tree: the server runs as an
    unprivileged user when the tests run as root, and must reach its directory.
    """
    base = Path(tempfile.mkdtemp(prefix="vidgate-test-pg-"))
    base.chmod(0o755)
    # The server stops at interpreter exit (its last user); atexit runs handlers last
    # in, first out, so this one, registered before the server's, removes the
    # directory after it has stopped. Left behind, each run's cluster (up to a few GB)
    # would pile up in /tmp.
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    server = EmbeddedPostgres(base / "pg")
    url = server.start()
    _raise_max_connections(server, url, TEST_MAX_CONNECTIONS)
    yield url
    # pytest-xdist's workers exit without running atexit handlers: stop it here, or
    # every run would leave a server per worker behind.
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


# Every gateway the session starts shares this server, each process with pools of up to
# ~50 connections (docs/deploy.md): PostgreSQL's default of 100 refused a worker's
# connections once the multi-process tests (cluster, workers, two replicas) came.
TEST_MAX_CONNECTIONS = 400


def _raise_max_connections(server: EmbeddedPostgres, url: str, wanted: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        if row is not None and int(row[0]) >= wanted:
            return
        conn.execute(f"ALTER SYSTEM SET max_connections = {wanted}")
    # pg_ctl restart keeps the options the server was started with (postmaster.opts).
    server.pg_ctl("-w", "-m", "fast", "restart")


_db_counter = 0
# The session's database migrated to head once, copied by CREATE DATABASE ... TEMPLATE:
# a copy takes a fraction of a second, where migrating each new database took 2 s of
# the suite's time (a hundred tests and every server start).
_templates: dict[str, str] = {}


def _migrated_template(pg_server: str) -> str:
    if pg_server not in _templates:
        name = f"vidgate_template_{os.getpid()}"
        url = make_database(pg_server, name, migrated=False)
        migrate(url)  # its connections are closed when it returns: a template has none
        _templates[pg_server] = name
    return _templates[pg_server]


def make_database(pg_server: str, name: str | None = None, *, migrated: bool = True) -> str:
    """A new database on ``pg_server``: at the migrations' head (a copy of the session's
    migrated template), or empty with ``migrated=False`` (for tests of the migrations)."""
    global _db_counter
    _db_counter += 1
    name = name or f"vidgate_test_{os.getpid()}_{_db_counter}"
    template = f' TEMPLATE "{_migrated_template(pg_server)}"' if migrated else ""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"{template}')
    return pg_server.replace("/postgres?", f"/{name}?")


@pytest.fixture
def database_url(pg_server: str) -> str:
    """A fresh database for one test, at the migrations' head."""
    return make_database(pg_server)


@pytest.fixture
def empty_database_url(pg_server: str) -> str:
    """A fresh, empty database for one test (tests of the migrations themselves)."""
    return make_database(pg_server, migrated=False)


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 60,
    in_process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``vidgate ARGS``: in a process of its own, or, with ``in_process`` and a
    database URL in ``env``, through typer's runner in this one (the same command code,
    without a fresh interpreter's second or so: for tests of what a management command
    does, not of the process)."""
    # Not on the embedded PostgreSQL: started here, it would outlive the command, held
    # by this process. Not from a coroutine either: the command runs its own loop.
    if in_process and "VIDGATE_DATABASE_URL" in (env or {}) and not _in_event_loop():
        return _cli_here(list(args), env or {}, check)
    result = subprocess.run(
        [*VIDGATE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"vidgate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _cli_here(
    args: list[str], env: dict[str, str], check: bool
) -> subprocess.CompletedProcess[str]:
    from typer.testing import CliRunner

    from vidgate.cli import app

    result = CliRunner().invoke(app, args, env=env)
    if isinstance(result.exception, BaseException) and not isinstance(result.exception, SystemExit):
        raise result.exception
    done = subprocess.CompletedProcess(
        ["vidgate", *args], result.exit_code, result.stdout, result.stderr
    )
    if check and result.exit_code != 0:
        raise AssertionError(f"vidgate {' '.join(args)} failed:\n{result.output}")
    return done


def fast_env(**extra: str) -> dict[str, str]:
    """Short timings so that recovery and polling happen within a test's patience."""
    return {
        "VIDGATE_SANDBOX_LATENCY_S": "0.3",
        "VIDGATE_HEARTBEAT_INTERVAL_S": "0.5",
        "VIDGATE_STALLED_AFTER_S": "2",
        "VIDGATE_SWEEP_INTERVAL_S": "1",
        "VIDGATE_WORKER_FETCH_INTERVAL_S": "0.1",
        "VIDGATE_ALLOW_INSECURE_URLS": "true",
        "VIDGATE_LOG_LEVEL": "INFO",
        **extra,
    }


class VidgateProcess:
    """What tests do with a vidgate process they started (a server, a worker): read
    its log, kill it, stop it gracefully."""

    proc: subprocess.Popen[str] | None
    log_path: Path | None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class ServerProcess(VidgateProcess):
    data_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server-{self.port}.log"
        with self.log_path.open("a") as log:
            self.proc = self._spawn(log)
        self._wait_healthy(timeout)

    def _spawn(self, log: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                *VIDGATE,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **self.env},
        )

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not become healthy:\n{self.log()}")

    def create_key(self, name: str, *flags: str) -> str:
        """``vidgate keys create`` for this server: its secret. On a server with a
        database URL the command runs in this process (the same code as the CLI's,
        through typer's runner): a fresh interpreter per key cost the suite about a
        second and a half each. tests/e2e/test_cli.py runs the command as its own
        process."""
        args = ["keys", "create", "--name", name, "--data-dir", str(self.data_dir), *flags]
        return cli(*args, env=self.env, in_process=True).stdout.strip().splitlines()[-1]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="session")
def server(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The session's gateway, on a database of its own in the shared PostgreSQL."""
    url = make_database(pg_server, "vidgate_session")
    srv = ServerProcess(
        data_dir=tmp_path_factory.mktemp("data") / "vidgate",
        env=fast_env(
            VIDGATE_DATABASE_URL=url,
            VIDGATE_MAX_BODY_BYTES=str(4 * 1024 * 1024),
            VIDGATE_MAX_IMAGE_BYTES=str(1024 * 1024),
        ),
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def key_a(server: ServerProcess) -> str:
    return server.create_key("tenant-a key", "--tenant", "tenant-a")


@pytest.fixture(scope="session")
def key_b(server: ServerProcess) -> str:
    return server.create_key("tenant-b key", "--tenant", "tenant-b")


@pytest.fixture(scope="session")
def session_db(server: ServerProcess) -> str:
    return server.env["VIDGATE_DATABASE_URL"]


def probe(data: bytes, tmp_path: Path, name: str = "probe.mp4") -> MediaInfo:
    from vidgate.media.probe import probe_video

    path = tmp_path / name
    path.write_bytes(data)
    return probe_video(path)


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (255, 0, 0)
) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The screenshots the console's browser tests wrote (tests/e2e/test_console.py), a
    line per file: kept in each report's user_properties, which pytest-xdist carries
    back from its workers."""
    paths = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        for name, value in getattr(report, "user_properties", ())
        if name == "screenshot"
    ]
    if paths:
        terminalreporter.section("console screenshots")
        for path in dict.fromkeys(paths):
            terminalreporter.write_line(f"screenshot: {path}")
