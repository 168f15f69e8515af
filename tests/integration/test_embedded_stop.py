"""``EmbeddedPostgres.stop``: the tests' session stops its server itself (xdist's workers
run no exit handlers), also after the ``pg_ctl restart`` that raises its
``max_connections`` (tests/conftest.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg

from vidgate.db.embedded import EmbeddedPostgres


def test_stop_ends_a_server_restarted_by_pg_ctl() -> None:
    base = Path(tempfile.mkdtemp(prefix="vidgate-test-pg-"))
    base.chmod(0o755)  # the server runs as an unprivileged user when we are root
    server = EmbeddedPostgres(base / "pg")
    try:
        url = server.start()
        server.pg_ctl("-w", "-m", "fast", "restart")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        server.stop()
        assert not server.is_running()
        server.stop()  # stopping a stopped server is nothing
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
