"""The step queue (procrastinate's table): pending finalize steps, and the planner's
statistics of it (engine/queue_stats.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB as JSONB_TYPE
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import JobState
from vidgate.db.schema import jobs

_procrastinate_jobs = sa.table(
    "procrastinate_jobs",
    sa.column("args", JSONB_TYPE),
    sa.column("status", sa.Text),
    sa.column("task_name", sa.Text),
    sa.column("lock", sa.Text),
    sa.column("queue_name", sa.Text),
    sa.column("scheduled_at", sa.DateTime(timezone=True)),
)


def _pending_step(job_id: sa.ColumnElement[str]) -> sa.Exists:
    """A queued or running finalize step (engine/steps.py) for the job."""
    pj = _procrastinate_jobs
    return (
        sa.select(sa.literal(1))
        .select_from(pj)
        .where(
            pj.c.args["job_id"].astext == job_id,
            sa.cast(pj.c.status, sa.Text).in_(["todo", "doing"]),
            pj.c.task_name == "vidgate:finalize",
        )
        .exists()
    )


async def has_pending_step(conn: AsyncConnection, job_id: str) -> bool:
    return bool(await conn.scalar(sa.select(_pending_step(sa.literal(job_id)))))


async def finalize_queued(conn: AsyncConnection, queue: str) -> bool:
    """Whether a step on ``queue`` (the finalize steps') is due and waits to run: the
    previews step gives way to them."""
    return bool(
        await conn.scalar(
            sa.select(
                sa.select(sa.literal(1))
                .select_from(_procrastinate_jobs)
                .where(
                    _procrastinate_jobs.c.queue_name == queue,
                    sa.cast(_procrastinate_jobs.c.status, sa.Text) == "todo",
                    _procrastinate_jobs.c.scheduled_at.is_(None)
                    | (_procrastinate_jobs.c.scheduled_at <= sa.func.now()),
                )
                .exists()
            )
        )
    )


async def active_jobs_without_task(conn: AsyncConnection, limit: int = 500) -> list[str]:
    """Finalizing jobs that no procrastinate task will advance: lost work for the
    sweeper. (Jobs to submit and waiting jobs are the submitter's and the poller's:
    their row says when.)"""
    rows = await conn.execute(
        sa.select(jobs.c.id)
        .where(jobs.c.state == JobState.FINALIZING, ~_pending_step(jobs.c.id))
        .order_by(jobs.c.id)
        .limit(limit)
    )
    return [r[0] for r in rows]


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
