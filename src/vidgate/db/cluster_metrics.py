"""What every process reports alike about the cluster, read at scrape time: jobs that
reached each final state, jobs in flight, the queues, the circuit breakers.

Each read is bounded by what is live, not by history: the final states come from
``job_counts`` (a row per state, model and shard, kept by a trigger; migration 0021),
jobs in flight and due work from partial indexes of active rows, the breakers from one
row per deployment. All of it is one round trip.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import ACTIVE

# The step queues (procrastinate's), then the queues that are due times on rows: jobs
# to submit, waiting jobs to poll, webhook endpoint deliveries; and ``media``, whose
# finalizes are due times on rows too (engine/finalizer.py), counted with it.
STEP_QUEUES = ("jobs", "media", "previews", "webhooks")
ROW_QUEUES = ("submit", "poll", "deliveries")

_SNAPSHOT = sa.text(
    """
    SELECT 'ended' AS kind, state AS a, model AS b, sum(n)::float8 AS n, NULL::timestamptz AS at
        FROM job_counts GROUP BY state, model
    UNION ALL
    SELECT 'inflight', state, NULL, count(*), NULL FROM jobs
        WHERE state IN ('queued', 'submitting', 'waiting', 'finalizing') GROUP BY state
    UNION ALL
    SELECT 'queue', queue_name, NULL, count(*),
           least(min(scheduled_at), (SELECT e.at FROM procrastinate_events e
                                     WHERE e.job_id = min(j.id) AND e.type = 'deferred'
                                     LIMIT 1))
        FROM procrastinate_jobs j
        WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
        GROUP BY queue_name
    UNION ALL
    SELECT 'queue', 'submit', NULL, count(*), min(submit_at) FROM jobs
        WHERE state IN ('queued', 'submitting') AND submit_at <= now()
    UNION ALL
    SELECT 'queue', 'poll', NULL, count(*), min(next_poll_at) FROM jobs
        WHERE state = 'waiting' AND next_poll_at <= now()
    UNION ALL
    SELECT 'queue', 'media', NULL, count(*), min(next_poll_at) FROM jobs
        WHERE state = 'finalizing' AND next_poll_at <= now()
    UNION ALL
    SELECT 'queue', 'deliveries', NULL, count(*), min(next_attempt_at) FROM webhook_deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()
    UNION ALL
    SELECT 'breaker', name, CASE WHEN open_until > now() THEN 'open' ELSE 'closed' END,
           consecutive_failures, NULL
        FROM deployment_health
    UNION ALL
    SELECT 'now', NULL, NULL, 0, now()
    """
)


@dataclass(frozen=True)
class QueueStat:
    depth: int
    oldest_age_s: float


@dataclass(frozen=True)
class Breaker:
    state: str  # closed | open
    consecutive_failures: int


@dataclass(frozen=True)
class ClusterSnapshot:
    # (state, model) -> jobs that reached that final state, ever.
    ended: dict[tuple[str, str], int] = field(default_factory=dict)
    # Active state -> jobs in it now (every active state present, 0 when none).
    inflight: dict[str, int] = field(default_factory=dict)
    # Queue -> work due now and how long the oldest of it has been due.
    queues: dict[str, QueueStat] = field(default_factory=dict)
    # Deployment -> its circuit breaker (deployments that never failed have no row).
    breakers: dict[str, Breaker] = field(default_factory=dict)


async def snapshot(conn: AsyncConnection) -> ClusterSnapshot:
    rows = (await conn.execute(_SNAPSHOT)).all()
    now = next(r.at for r in rows if r.kind == "now")
    ended: dict[tuple[str, str], int] = {}
    inflight = {str(state): 0 for state in sorted(ACTIVE)}
    queues = {name: QueueStat(0, 0.0) for name in (*STEP_QUEUES, *ROW_QUEUES)}
    breakers: dict[str, Breaker] = {}
    for row in rows:
        if row.kind == "ended":
            ended[(row.a, row.b)] = int(row.n)
        elif row.kind == "inflight":
            inflight[row.a] = int(row.n)
        elif row.kind == "queue":
            # ``media`` twice: finalizes due on the job rows, and tasks an older
            # version queued there.
            seen, stat = queues[row.a], QueueStat(int(row.n), _age(now, row.at))
            queues[row.a] = QueueStat(
                seen.depth + stat.depth, max(seen.oldest_age_s, stat.oldest_age_s)
            )
        elif row.kind == "breaker":
            breakers[row.a] = Breaker(row.b, int(row.n))
    return ClusterSnapshot(ended, inflight, queues, breakers)


def _age(now: dt.datetime, since: dt.datetime | None) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0
