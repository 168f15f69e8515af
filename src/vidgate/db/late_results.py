"""Jobs failed by vidgate's own wait limit whose upstream task is still watched
(``jobs.late_check_at``, migration 0014): the claim of those due for a read, the end of
a watch, and the move back to ``finalizing`` when the task succeeded after all
(core/jobs.py ``LATE_RESULT``; engine/late_results.py runs them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import LATE_RESULT, JobRecord, JobState
from vidgate.db.jobs import JOB_COLUMNS, db_now, job_from_row
from vidgate.db.schema import jobs

_SELECT_JOB = [jobs.c[name] for name in JOB_COLUMNS]
_FROM, _TO = LATE_RESULT


def watch(every_s: float) -> dict[str, Any]:
    """The values that put a job being failed for vidgate's wait limit under watch:
    written with that failure (engine/runner.py)."""
    return {"late_check_at": db_now(after_s=every_s)}


async def claim_due(
    conn: AsyncConnection, *, every_s: float, watch_s: float, limit: int
) -> list[JobRecord]:
    """The watched jobs whose next read is due, each given its next one ``every_s``
    from now (a lease too: another process skips them meanwhile). A job watched for
    more than ``watch_s`` since it failed, deleted, or no longer failed, leaves the
    watch instead and is not returned."""
    due = (
        sa.select(jobs.c.id)
        .where(jobs.c.late_check_at <= sa.func.now())
        .order_by(jobs.c.late_check_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    still = sa.and_(
        jobs.c.state == _FROM,
        jobs.c.deleted_at.is_(None),
        jobs.c.upstream_id.is_not(None),
        jobs.c.completed_at > db_now(after_s=-watch_s),
    )
    rows = await conn.execute(
        jobs.update()
        .where(jobs.c.id.in_(due))
        .values(late_check_at=sa.case((still, db_now(after_s=every_s)), else_=sa.null()))
        .returning(*_SELECT_JOB, jobs.c.late_check_at)
    )
    return [job_from_row(row) for row in rows if row.late_check_at is not None]


async def stop_watching(conn: AsyncConnection, job_id: str) -> None:
    await conn.execute(
        jobs.update().where(jobs.c.id == job_id).values(late_check_at=None, updated_at=db_now())
    )


async def revive(
    conn: AsyncConnection, job_id: str, upstream_id: str, cost: Decimal | None, *, progress: int
) -> JobRecord | None:
    """``failed`` -> ``finalizing`` for a watched job whose task ``upstream_id`` (still
    the job's) succeeded, with the provider's cost if it gave one; the job as written,
    or None when it is no longer watched (deleted, or the watch ended)."""
    row = (
        await conn.execute(
            jobs.update()
            .where(
                jobs.c.id == job_id,
                jobs.c.state == _FROM,
                jobs.c.late_check_at.is_not(None),
                jobs.c.upstream_id == upstream_id,
                jobs.c.deleted_at.is_(None),
            )
            .values(
                state=JobState(_TO),
                progress=progress,
                error_code=None,
                error_message=None,
                completed_at=None,
                cost=cost,
                step_attempts=0,
                late_check_at=None,
                # Its finalize due at once (db/finalize_claims.py).
                next_poll_at=db_now(),
                updated_at=db_now(),
            )
            .returning(*_SELECT_JOB)
        )
    ).first()
    return job_from_row(row) if row else None
