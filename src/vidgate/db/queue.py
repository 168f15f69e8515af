"""The step queue (procrastinate's table): the planner's statistics of it
(engine/queue_stats.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB as JSONB_TYPE
from sqlalchemy.ext.asyncio import AsyncConnection

_procrastinate_jobs = sa.table(
    "procrastinate_jobs",
    sa.column("args", JSONB_TYPE),
    sa.column("status", sa.Text),
    sa.column("task_name", sa.Text),
    sa.column("lock", sa.Text),
    sa.column("queue_name", sa.Text),
    sa.column("scheduled_at", sa.DateTime(timezone=True)),
)


# Steps that are queued or running: the rows procrastinate's fetch looks through.
_LIVE_STEPS = "FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"


@dataclass(frozen=True, slots=True)
class QueueRows:
    live: int  # steps queued or running now
    planned: float  # how many the planner expects, from the last ANALYZE


async def queue_rows(conn: AsyncConnection) -> QueueRows:
    live = await conn.scalar(sa.text(f"SELECT count(*) {_LIVE_STEPS}"))
    plan = await conn.scalar(sa.text(f"EXPLAIN (FORMAT JSON) SELECT 1 {_LIVE_STEPS}"))
    planned = _plan_rows(plan)
    return QueueRows(live=int(live or 0), planned=planned)


def _plan_rows(plan: Any) -> float:
    # psycopg hands EXPLAIN's JSON over parsed or as text, by server version and driver.
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


async def analyze_queue(conn: AsyncConnection) -> None:
    """Refresh the planner's statistics of the step queue. A role that does not own
    the table gets a warning from PostgreSQL, not an error."""
    await conn.execute(sa.text("ANALYZE procrastinate_jobs"))
