"""Several vidgate processes starting at once on an external PostgreSQL (Debian's, not
the embedded one) migrate its database exactly once, under db/migrate.py's advisory
lock, and all come up."""

from __future__ import annotations

import re
import time
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from tests.conftest import ServerProcess, fast_env
from tests.debian_pg import DebianPostgres

from vidgate.db.migrate import _MIGRATION_LOCK, alembic_config

pytestmark = pytest.mark.slow

PROCESSES = 4


def test_processes_starting_together_migrate_once(
    debian_pg: DebianPostgres, tmp_path: Path
) -> None:
    url = debian_pg.make_database()
    servers = [
        ServerProcess(
            data_dir=tmp_path / f"api{i}",
            env=fast_env(VIDGATE_DATABASE_URL=url),
            extra_args=("--no-worker",),
        )
        for i in range(PROCESSES)
    ]
    # The test holds the migration lock while the processes start, so that all of them
    # reach it and then race from the same instant when it is let go.
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            for srv in servers:
                srv.log_path = tmp_path / f"{srv.data_dir.name}.log"
                with srv.log_path.open("w") as out:
                    srv.proc = srv._spawn(out)
            waiting_sql = (
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND objid = %s AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"
            )
            spawned = time.monotonic()
            deadline = spawned + 60
            while True:
                row = holder.execute(waiting_sql, (_MIGRATION_LOCK,)).fetchone()
                if row is not None and row[0] == PROCESSES:
                    break
                for srv in servers:
                    assert srv.proc is not None and srv.proc.poll() is None, srv.log()
                assert time.monotonic() < deadline, "the processes never all waited on the lock"
                time.sleep(0.05)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
        released = time.monotonic()
        try:
            for srv in servers:
                srv._wait_healthy(60)
            print(f"spawned: {released - spawned:.1f} s, up: {time.monotonic() - released:.1f} s")
            logs = [srv.log() for srv in servers]
        finally:
            for srv in servers:
                srv.stop()

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        row = holder.execute("SELECT version_num FROM alembic_version").fetchone()
        assert row == (head,)
    applied = [re.findall(r"migrate\.applied.*", text) for text in logs]
    assert sum(map(len, applied)) == 1, applied
    assert f"to_revision={head}" in next(line for lines in applied for line in lines)
    for text in logs:
        assert "Traceback" not in text and "[error" not in text, text
    for srv in servers:
        assert srv.proc is not None and srv.proc.returncode == 0, srv.log()
