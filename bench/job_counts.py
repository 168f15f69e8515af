"""What ``vidgate_jobs_total`` costs: counting the jobs table at scrape time against
reading ``job_counts`` (migration 0021), and the trigger's cost per job that ends.

    python bench/job_counts.py [--jobs 1000000]

On an embedded PostgreSQL of its own, in a temporary directory (removed after).
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from vidgate.db.cluster_metrics import _SNAPSHOT
from vidgate.db.embedded import EmbeddedPostgres
from vidgate.db.migrate import migrate

_ENDED = "state IN ('completed', 'failed', 'cancelled')"


def _ms(conn: psycopg.Connection, query: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(query).fetchall()  # type: ignore[call-overload]
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="vidgate-job-counts-"))
    base.chmod(0o755)  # the embedded server runs as another user under root
    # Registered first, so it runs after the server stops at exit (its last user).
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    url = EmbeddedPostgres(base / "pg").start()
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        _load(conn, args.jobs)
        print(f"{args.jobs:,} jobs")
        count = f"SELECT state, model, count(*) FROM jobs WHERE {_ENDED} GROUP BY 1, 2"
        print(f"count(*) over jobs: {_ms(conn, count, 3):.1f} ms")
        conn.execute("CREATE INDEX bench_state_model ON jobs (state, model)")
        conn.execute("VACUUM ANALYZE jobs")
        print(f"count(*), index-only on (state, model): {_ms(conn, count, 3):.1f} ms")
        conn.execute("DROP INDEX bench_state_model")
        summed = "SELECT state, model, sum(n) FROM job_counts GROUP BY 1, 2"
        print(f"job_counts summed: {_ms(conn, summed, 20):.2f} ms")
        print(f"the whole cluster read: {_ms(conn, str(_SNAPSHOT.text), 20):.2f} ms")
        _trigger_cost(conn)


def _load(conn: psycopg.Connection, n: int) -> None:
    conn.execute("INSERT INTO tenants (id, name) VALUES ('t', 't')")
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, mode)"
        " VALUES ('k', 't', 'k', 'p', 'x', 'test')"
    )
    # Loaded without the triggers, then counted the way migration 0021 does.
    conn.execute("ALTER TABLE jobs DISABLE TRIGGER USER")
    conn.execute(
        "INSERT INTO jobs (id, tenant_id, api_key_id, mode, model, kind, spec, state, provider)"
        " SELECT 'video_' || g, 't', 'k', 'test',"
        " (ARRAY['sandbox', 'sora-2', 'kling-2.0', 'veo-3.1'])[1 + g %% 4], 'text', '{}',"
        " (ARRAY['completed', 'completed', 'completed', 'failed', 'cancelled'])[1 + g %% 5],"
        " 'sandbox' FROM generate_series(1, %s) g",
        (n,),
    )
    conn.execute("ALTER TABLE jobs ENABLE TRIGGER USER")
    conn.execute(
        "INSERT INTO job_counts SELECT state, model, 0, count(*) FROM jobs"
        f" WHERE {_ENDED} GROUP BY 1, 2"
    )
    conn.execute("VACUUM ANALYZE jobs")


def _trigger_cost(conn: psycopg.Connection) -> None:
    """Server time of each trigger on single-row updates to ``completed``."""
    ids = [
        r[0]
        for r in conn.execute(
            "UPDATE jobs SET state = 'finalizing' WHERE id IN"
            " (SELECT id FROM jobs WHERE state = 'completed' LIMIT 200) RETURNING id"
        ).fetchall()
    ]
    spent: dict[str, list[float]] = {}
    for job_id in ids:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) UPDATE jobs SET state = 'completed' WHERE id = %s",
            (job_id,),
        ).fetchone()
        assert plan is not None
        for trigger in plan[0][0].get("Triggers", []):
            spent.setdefault(trigger["Trigger Name"], []).append(trigger["Time"])
    for name, times in sorted(spent.items()):
        print(f"{name}: median {statistics.median(times) * 1000:.0f} µs per job ended")


if __name__ == "__main__":
    main()
