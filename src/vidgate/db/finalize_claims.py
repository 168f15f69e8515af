"""Due finalizes on the job rows (engine/finalizer.py): a finalizing job's next
finalize is due at its ``next_poll_at`` (the poller's column, free once the job stops
waiting). A claim moves it a lease ahead, so the claims of a worker that died become
due again when the lease runs out; a completion or a failure clears it.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import JobRecord, OutputRecord
from vidgate.db.jobs import JOB_COLUMNS, job_from_row
from vidgate.db.schema import job_outputs

# Notified when a job moves to ``finalizing`` (a poll, a late result, an old task).
FINALIZE_CHANNEL = "vidgate_finalize"

_RETURNING = "RETURNING " + ", ".join(f"jobs.{name}" for name in JOB_COLUMNS)
_OUTPUT_COLUMNS = [job_outputs.c[f.name] for f in dataclasses.fields(OutputRecord)]
_LEASE = "next_poll_at = now() + make_interval(secs => :lease)"


async def claim_due_finalizes(
    conn: AsyncConnection, *, limit: int, lease_s: float
) -> list[tuple[JobRecord, list[OutputRecord]]]:
    """Claim up to ``limit`` finalizing jobs whose finalize is due, oldest due first,
    with the outputs already recorded for them (a run cut short may have stored some).
    Rows other finalizers hold are skipped."""
    result = await conn.execute(
        sa.text(
            f"UPDATE jobs SET {_LEASE} WHERE id IN (SELECT id FROM jobs"
            " WHERE state = 'finalizing' AND next_poll_at <= now()"
            " ORDER BY next_poll_at LIMIT :limit FOR UPDATE SKIP LOCKED) " + _RETURNING
        ),
        {"lease": lease_s, "limit": limit},
    )
    return await _with_outputs(conn, [job_from_row(row) for row in result])


async def claim_finalize(
    conn: AsyncConnection, job_id: str, *, lease_s: float
) -> tuple[JobRecord, list[OutputRecord]] | None:
    """Claim one finalizing job whether or not its finalize is due."""
    result = await conn.execute(
        sa.text(f"UPDATE jobs SET {_LEASE} WHERE id = :id AND state = 'finalizing' " + _RETURNING),
        {"lease": lease_s, "id": job_id},
    )
    claims = await _with_outputs(conn, [job_from_row(row) for row in result])
    return claims[0] if claims else None


async def _with_outputs(
    conn: AsyncConnection, claimed: list[JobRecord]
) -> list[tuple[JobRecord, list[OutputRecord]]]:
    if not claimed:
        return []
    rows = await conn.execute(
        sa.select(*_OUTPUT_COLUMNS)
        .where(job_outputs.c.job_id.in_([job.id for job in claimed]))
        .order_by(job_outputs.c.job_id, job_outputs.c.index)
    )
    outputs: dict[str, list[OutputRecord]] = {job.id: [] for job in claimed}
    for row in rows:
        outputs[row.job_id].append(OutputRecord(**row._mapping))
    return [(job, outputs[job.id]) for job in claimed]


async def renew_finalizes(conn: AsyncConnection, job_ids: list[str], *, lease_s: float) -> None:
    """Extend the leases of finalizes still under way (``lease_s=0``: give them up, due
    again at once). Rows a write-back holds are skipped, not waited for: it is
    completing them (and a renewal taking rows in another order than the write-back's
    would deadlock with it)."""
    await conn.execute(
        sa.text(
            f"UPDATE jobs SET {_LEASE} WHERE id IN (SELECT id FROM jobs"
            " WHERE id = ANY(CAST(:ids AS text[])) AND state = 'finalizing'"
            " ORDER BY id FOR UPDATE SKIP LOCKED)"
        ),
        {"ids": job_ids, "lease": lease_s},
    )


async def lock_finalizing(conn: AsyncConnection, job_ids: list[str]) -> set[str]:
    """Lock the rows of those jobs still finalizing (in id order, so two write-backs
    never wait on each other in a cycle); the ids locked."""
    result = await conn.execute(
        sa.text(
            "SELECT id FROM jobs WHERE id = ANY(CAST(:ids AS text[])) AND state = 'finalizing'"
            " ORDER BY id FOR UPDATE"
        ),
        {"ids": job_ids},
    )
    return {row[0] for row in result}


async def make_finalize_due(conn: AsyncConnection, job_id: str) -> bool:
    """A finalizing job with no finalize time (a row written by an older version) is
    due now. Whether it was."""
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() WHERE id = :id AND state = 'finalizing'"
            " AND next_poll_at IS NULL"
        ),
        {"id": job_id},
    )
    return bool(result.rowcount)


async def next_finalize_due_in(conn: AsyncConnection) -> float | None:
    """Seconds until the earliest finalize is due (<= 0: overdue); None: no job
    finalizes."""
    value = await conn.scalar(
        sa.text(
            "SELECT EXTRACT(EPOCH FROM (min(next_poll_at) - now())) FROM jobs"
            " WHERE state = 'finalizing'"
        )
    )
    return None if value is None else float(value)


async def finalize_due(conn: AsyncConnection) -> bool:
    """Whether a finalize is due and not yet claimed: the previews step gives way."""
    return bool(
        await conn.scalar(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'finalizing'"
                " AND next_poll_at <= now())"
            )
        )
    )


async def notify_finalizers(conn: AsyncConnection) -> None:
    """Wake sleeping finalizers when the transaction commits."""
    await conn.execute(sa.text(f"NOTIFY {FINALIZE_CHANNEL}"))
