"""A second PostgreSQL for the tests: Debian's ``postgresql`` package, started here.

vidgate runs on any PostgreSQL 14+ (``VIDGATE_DATABASE_URL``); the embedded server of
``pg_server`` is one build of one version. ``debian_pg`` is another, the one a team
installs with its distribution: the server binaries of ``/usr/lib/postgresql/<v>/bin``
(PostgreSQL 15 on Debian 12; ``bash scripts/test`` installs the package when it is
missing and runs as root), a cluster made by ``initdb`` in a temporary directory, run
as the ``postgres`` OS user (PostgreSQL refuses to run as root), listening on loopback
on a free port with password authentication there, and on a Unix socket in its own
directory. It is stopped and removed at the end of the session, at interpreter exit,
or, after a test process was killed outright, by the next session's start.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

_PREFIX = "vidgate-test-debian-pg-"
_OWNER = "owner.pid"
_INSTALL = (
    "Debian's PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/initdb). "
    "Install it with `apt-get install -y --no-install-recommends postgresql` "
    "(`bash scripts/test` does this when it runs as root)."
)


@dataclass(frozen=True)
class DebianPostgres:
    """A running cluster: ``url`` is its maintenance database (``postgres``) over
    loopback TCP, with the superuser's password in it, as an operator's
    ``VIDGATE_DATABASE_URL`` would be."""

    url: str
    bin_dir: Path
    data_dir: Path
    # server_version_num, e.g. 150018
    version_num: int

    def make_database(self, name: str | None = None) -> str:
        """A fresh, empty database on this server (``conftest.make_database``'s twin):
        its URL."""
        global _counter
        _counter += 1
        name = name or f"vidgate_debian_{os.getpid()}_{_counter}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return re.sub(r"/postgres$", f"/{name}", self.url)


_counter = 0


def find_bin_dir() -> Path | None:
    """The newest installed major version's server binaries, or None."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def _as_postgres(argv: list[str]) -> list[str]:
    """``argv`` as the ``postgres`` OS user when we are root (PostgreSQL refuses to run
    as root); as ourselves otherwise."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], what: str, timeout: float = 60) -> None:
    result = subprocess.run(
        _as_postgres(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _stop(bin_dir: Path, base: Path) -> None:
    """Stop the cluster under ``base`` (fast: nothing in it is worth a checkpoint) and
    remove the directory."""
    data = base / "data"
    if (data / "postmaster.pid").exists():
        with contextlib.suppress(Exception):
            _run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], "stop"
            )
    shutil.rmtree(base, ignore_errors=True)


def _remove_leaked(bin_dir: Path) -> None:
    """Clusters of test processes that died without cleaning up (SIGKILL, OOM): their
    owner's pid is gone. Stopped and removed, so they never pile up in /tmp."""
    for base in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):
        try:
            owner = int((base / _OWNER).read_text())
        except (OSError, ValueError):
            # Not written yet (a session starting beside this one) or never: only an
            # old directory is someone's leftover.
            owner = 0
            with contextlib.suppress(OSError):
                if time.time() - base.stat().st_mtime < 600:
                    continue
        if owner and _alive(owner):
            continue
        _stop(bin_dir, base)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cluster(bin_dir: Path) -> DebianPostgres:
    _remove_leaked(bin_dir)
    base = Path(tempfile.mkdtemp(prefix=_PREFIX))
    (base / _OWNER).write_text(str(os.getpid()))
    # Registered first, so it runs last at exit: after anything that still uses the server.
    atexit.register(_stop, bin_dir, base)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    password = secrets.token_urlsafe(16)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    data = base / "data"
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            # The Unix socket (in ``base`` only) trusts its OS user; TCP needs the password.
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        "initdb",
        timeout=120,
    )
    pwfile.unlink()
    port = _free_port()
    options = " ".join(
        [
            "-c listen_addresses=127.0.0.1",
            f"-p {port}",
            f"-c unix_socket_directories={base}",
            # Several vidgate processes at once (pools, LISTEN connections), as in scale-out.
            "-c max_connections=300",
            "-c shared_buffers=64MB",
            # A test database is thrown away: durability buys nothing here.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
    )
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        "pg_ctl start",
        timeout=90,
    )
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return DebianPostgres(url=url, bin_dir=bin_dir, data_dir=data, version_num=int(row[0]))


@pytest.fixture(scope="session")
def debian_pg() -> Iterator[DebianPostgres]:
    """Debian's PostgreSQL, started for the session (see the module's docstring). A
    missing package is a failure with how to install it, never a skip: CI installs it."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.fail(_INSTALL, pytrace=False)
    server = start_cluster(bin_dir)
    try:
        yield server
    finally:
        _stop(bin_dir, server.data_dir.parent)
