"""The ``debian_pg`` fixture: Debian's PostgreSQL server, run by the test setup."""

from __future__ import annotations

import psycopg
from tests.debian_pg import DebianPostgres


def test_debian_postgres_runs_as_its_own_user_with_password_auth(debian_pg: DebianPostgres) -> None:
    assert debian_pg.version_num >= 140000
    assert str(debian_pg.bin_dir).startswith("/usr/lib/postgresql/")
    # The postmaster runs as an unprivileged OS user, never root.
    pid = int((debian_pg.data_dir / "postmaster.pid").read_text().split()[0])
    with open(f"/proc/{pid}/status") as status:
        uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    assert uid != "0"
    # Loopback TCP asks for the password: the URL's is the one that works.
    wrong = debian_pg.url.replace("postgres:", "postgres:x", 1)
    try:
        psycopg.connect(wrong).close()
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("a wrong password was accepted")


def test_make_database_gives_a_fresh_empty_database(debian_pg: DebianPostgres) -> None:
    url = debian_pg.make_database()
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert row is not None and row[0] != "postgres" and row[1] == 0
