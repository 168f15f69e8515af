"""Due work on the job rows: claims of due submissions (engine/submitter.py) and due
polls (engine/poller.py), their write-backs in batches, and the notifications that wake
sleeping submitters and pollers.

A claim moves the row's due time a lease ahead (``submit_at``, ``next_poll_at``), so a
claim whose worker died becomes due again when the lease runs out.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import (
    TO_SUBMIT,
    JobRecord,
    JobState,
    PollClaim,
    PollDone,
    PollReschedule,
    Submitted,
    stored_spec,
)
from vidgate.db.deployments import count_inflight, lock_deployment
from vidgate.db.jobs import JOB_COLUMNS, get_job, job_from_row
from vidgate.db.schema import jobs

# --- submissions (engine/submitter.py) --------------------------------------------

# Notified when a job is queued for submission (or falls back to another deployment).
SUBMIT_CHANNEL = "vidgate_submit"

# A claimed submission's ``submit_at`` is when its lease runs out; its submitter renews
# it while the provider answers, so only a dead submitter's claims become due again.
_SUBMIT_LEASE = (
    "submit_at = now() + make_interval(secs => :lease), state = 'submitting', updated_at = now()"
)
# What a claim of due submissions may take, and so what the submitter waits for: queued
# jobs of deployments without a cap (``:capped``), and any job left ``submitting``.
_SUBMITTABLE = (
    "state IN ('queued', 'submitting')"
    " AND NOT (state = 'queued' AND provider = ANY(CAST(:capped AS text[])))"
)
_JOB_COLUMNS = ", ".join(f"jobs.{name}" for name in JOB_COLUMNS)


async def _claim_due(conn: AsyncConnection, where: str, params: dict[str, Any]) -> list[JobRecord]:
    """Claim due jobs matching ``where`` (``:limit`` of them, oldest due first), rows
    other submitters hold skipped."""
    result = await conn.execute(
        sa.text(
            f"UPDATE jobs SET {_SUBMIT_LEASE} WHERE id IN (SELECT id FROM jobs"
            f" WHERE {where} AND submit_at <= now()"
            " ORDER BY submit_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_JOB_COLUMNS}"
        ),
        params,
    )
    return [job_from_row(row) for row in result]


async def _free_capacity(conn: AsyncConnection, provider: str, cap: int) -> int:
    """How many more jobs a capped deployment may have submitting or waiting. The
    deployment's lock, held to the transaction's end, keeps two submitters from both
    counting the same free slot."""
    await lock_deployment(conn, provider)
    return cap - await count_inflight(conn, provider)


async def claim_due_submissions(
    conn: AsyncConnection, *, limit: int, lease_s: float, capped: list[str]
) -> list[JobRecord]:
    """Claim up to ``limit`` jobs whose submission is due, oldest due first, moving
    them to ``submitting``: queued jobs of deployments without a concurrency cap, and
    jobs a submission left ``submitting`` (its retry is due, or its submitter died and
    the lease ran out). Rows other submitters hold are skipped."""
    return await _claim_due(
        conn, _SUBMITTABLE, {"lease": lease_s, "limit": limit, "capped": capped}
    )


async def claim_capped_submissions(
    conn: AsyncConnection, provider: str, *, cap: int, limit: int, lease_s: float
) -> list[JobRecord]:
    """Claim queued jobs of a capped deployment, as many as its free capacity allows
    (``cap`` jobs submitting or waiting at once). Call in a transaction (the
    capacity count holds the deployment's lock)."""
    free = min(limit, await _free_capacity(conn, provider, cap))
    if free <= 0:
        return []
    return await _claim_due(
        conn,
        "state = 'queued' AND provider = :provider",
        {"lease": lease_s, "limit": free, "provider": provider},
    )


async def claim_submission(
    conn: AsyncConnection, job_id: str, *, lease_s: float, capped: dict[str, int]
) -> JobRecord | None:
    """Claim one job to submit whether or not it is due: None when it is in another
    state, or queued for a capped deployment with no free capacity. Call in a
    transaction (the capacity check holds the deployment's lock)."""
    job = await get_job(conn, job_id, for_update=True, include_deleted=True)
    if job is None or job.state not in TO_SUBMIT:
        return None
    cap = capped.get(job.provider)
    if (
        job.state == JobState.QUEUED
        and cap is not None
        and await _free_capacity(conn, job.provider, cap) <= 0
    ):
        return None
    result = await conn.execute(
        sa.text(f"UPDATE jobs SET {_SUBMIT_LEASE} WHERE id = :id RETURNING {_JOB_COLUMNS}"),
        {"lease": lease_s, "id": job_id},
    )
    row = result.first()
    return job_from_row(row) if row else None


async def record_submissions(conn: AsyncConnection, items: list[Submitted]) -> set[str]:
    """``submitting`` -> ``waiting`` with the upstream task and its first poll, for a
    batch in one statement. A job that left ``submitting`` meanwhile (cancelled, or
    written by another submission after a lease ran out) is left as it is. Returns the
    ids written."""
    if not items:
        return set()
    # ``submitted_at`` is when the provider answered, not this write-back, which a busy
    # gateway makes later: a task's age is counted from it, and its expected end from
    # its age and progress (engine/poll_schedule.py), so it would come early by as much.
    answered_ago = [max(0.0, time.monotonic() - i.answered) for i in items]
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET state = 'waiting', upstream_id = u.upstream_id,"
            " upstream_state = u.upstream_state,"
            " submitted_at = now() - make_interval(secs => u.answered_ago),"
            " next_poll_at = now() + make_interval(secs => u.first_poll),"
            " expected_end_at = NULL,"
            " submit_at = NULL, step_attempts = 0, updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:upstream AS text[]),"
            " CAST(:first_poll AS float8[]), CAST(:state AS jsonb[]),"
            " CAST(:answered_ago AS float8[]))"
            " AS u(id, upstream_id, first_poll, upstream_state, answered_ago)"
            " WHERE jobs.id = u.id AND jobs.state = 'submitting'"
            " RETURNING jobs.id"
        ),
        {
            "ids": [i.job_id for i in items],
            "upstream": [i.upstream_id for i in items],
            "first_poll": [i.first_poll_s for i in items],
            # An adapter with nothing to keep leaves the column NULL.
            "state": [json.dumps(i.upstream_state) if i.upstream_state else None for i in items],
            "answered_ago": answered_ago,
        },
    )
    return {row[0] for row in result}


async def renew_submissions(conn: AsyncConnection, job_ids: list[str], *, lease_s: float) -> None:
    """Extend the leases of submissions still waiting on their providers (``lease_s=0``:
    give them up, due again at once)."""
    await conn.execute(
        sa.text(
            "UPDATE jobs SET submit_at = now() + make_interval(secs => :lease)"
            " WHERE id = ANY(CAST(:ids AS text[])) AND state = 'submitting'"
        ),
        {"ids": job_ids, "lease": lease_s},
    )


async def next_submission_due_in(conn: AsyncConnection, *, capped: list[str]) -> float | None:
    """Seconds until the earliest submission a claim would take is due (<= 0: overdue);
    None when there is none. Queued jobs of capped deployments are left out: they wait
    for capacity, not for a time."""
    value = await conn.scalar(
        sa.text(
            f"SELECT EXTRACT(EPOCH FROM (min(submit_at) - now())) FROM jobs WHERE {_SUBMITTABLE}"
        ),
        {"capped": capped},
    )
    return None if value is None else float(value)


async def notify_submitters(conn: AsyncConnection) -> None:
    """Wake sleeping submitters when the transaction commits."""
    await conn.execute(sa.text(f"NOTIFY {SUBMIT_CHANNEL}"))


# --- polling (engine/poller.py) ---------------------------------------------------

# Notified when a poll falls due sooner than a sleeping poller would look again.
POLL_CHANNEL = "vidgate_poll"


_CLAIM_RETURNING = (
    "RETURNING id, provider, upstream_id, progress, poll_count, step_attempts,"
    " submitted_at, next_poll_at, spec, upstream_model, upstream_state, expected_end_at"
)


def _claims(result: sa.CursorResult[Any]) -> list[PollClaim]:
    return [
        PollClaim(
            job_id=row.id,
            provider=row.provider,
            upstream_id=row.upstream_id,
            spec=stored_spec(row.spec),
            upstream_model=row.upstream_model,
            upstream_state=row.upstream_state,
            progress=row.progress,
            poll_count=row.poll_count,
            step_attempts=row.step_attempts,
            submitted_at=row.submitted_at,
            lease_until=row.next_poll_at,
            expected_end_at=row.expected_end_at,
        )
        for row in result
    ]


async def claim_due_polls(conn: AsyncConnection, *, limit: int, lease_s: float) -> list[PollClaim]:
    """Claim up to ``limit`` waiting jobs whose poll is due, oldest due first. Rows other
    pollers hold are skipped, so any number of pollers share the work."""
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => :lease)"
            " WHERE id IN (SELECT id FROM jobs WHERE state = 'waiting'"
            " AND next_poll_at <= now() AND upstream_id IS NOT NULL"
            " ORDER BY next_poll_at LIMIT :limit FOR UPDATE SKIP LOCKED) " + _CLAIM_RETURNING
        ),
        {"lease": lease_s, "limit": limit},
    )
    return _claims(result)


async def claim_poll(conn: AsyncConnection, job_id: str, *, lease_s: float) -> PollClaim | None:
    """Claim one waiting job whether or not its poll is due."""
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => :lease)"
            " WHERE id = :id AND state = 'waiting' AND upstream_id IS NOT NULL " + _CLAIM_RETURNING
        ),
        {"lease": lease_s, "id": job_id},
    )
    claims = _claims(result)
    return claims[0] if claims else None


async def reschedule_polls(conn: AsyncConnection, items: list[PollReschedule]) -> int:
    """Write back a batch of polls in one statement. A row whose ``next_poll_at`` no
    longer holds the claim's lease was changed meanwhile (a nudge made it due now, or
    the job moved on) and is left as it is. An item without an expected end keeps the
    row's. Returns how many rows were written."""
    if not items:
        return 0
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET next_poll_at = now() + make_interval(secs => u.delay),"
            " progress = u.progress, poll_count = u.poll_count,"
            " step_attempts = u.step_attempts,"
            " expected_end_at = COALESCE(u.expected_end, jobs.expected_end_at),"
            " updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:leases AS timestamptz[]),"
            " CAST(:delays AS float8[]), CAST(:progress AS int[]), CAST(:polls AS int[]),"
            " CAST(:attempts AS int[]), CAST(:ends AS timestamptz[]))"
            " AS u(id, lease, delay, progress, poll_count, step_attempts, expected_end)"
            " WHERE jobs.id = u.id AND jobs.state = 'waiting' AND jobs.next_poll_at = u.lease"
        ),
        {
            "ids": [i.claim.job_id for i in items],
            "leases": [i.claim.lease_until for i in items],
            "delays": [i.delay_s for i in items],
            "progress": [i.progress for i in items],
            "polls": [i.poll_count for i in items],
            "attempts": [i.step_attempts for i in items],
            "ends": [i.expected_end_at for i in items],
        },
    )
    return int(result.rowcount)


async def finish_polls(conn: AsyncConnection, items: list[PollDone], *, progress: int) -> list[str]:
    """``waiting`` -> ``finalizing`` for a batch, with the provider's cost where it gave
    one. A job no longer waiting (cancelled meanwhile, or moved on by another read) is
    left as it is. Each moved job's finalize is due at once (db/finalize_claims.py).
    Returns the ids moved."""
    if not items:
        return []
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET state = 'finalizing', progress = :progress,"
            " poll_count = u.poll_count, step_attempts = 0, next_poll_at = now(),"
            " cost = COALESCE(u.cost, jobs.cost), updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:polls AS int[]),"
            " CAST(:costs AS numeric[])) AS u(id, poll_count, cost)"
            " WHERE jobs.id = u.id AND jobs.state = 'waiting'"
            " RETURNING jobs.id"
        ),
        {
            "progress": progress,
            "ids": [i.claim.job_id for i in items],
            "polls": [i.claim.poll_count + 1 for i in items],
            "costs": [i.cost for i in items],
        },
    )
    return [row[0] for row in result]


async def make_poll_due(conn: AsyncConnection, job_id: str) -> bool | None:
    """Pull a waiting job's next poll forward to now, unless it is backing off after an
    upstream error (the provider may have asked for that delay). None when the job is
    not waiting; else whether the poll moved."""
    row = (
        await conn.execute(
            sa.text(
                "UPDATE jobs SET next_poll_at = CASE WHEN step_attempts > 0 THEN next_poll_at"
                " ELSE LEAST(COALESCE(next_poll_at, now()), now()) END"
                " WHERE id = :id AND state = 'waiting'"
                " RETURNING step_attempts = 0"
            ),
            {"id": job_id},
        )
    ).first()
    return None if row is None else bool(row[0])


async def next_poll_due_in(conn: AsyncConnection) -> float | None:
    """Seconds until the earliest waiting job's poll is due (<= 0: overdue); None when
    no job waits."""
    value = await conn.scalar(
        sa.text(
            "SELECT EXTRACT(EPOCH FROM (min(next_poll_at) - now())) FROM jobs"
            " WHERE state = 'waiting'"
        )
    )
    return None if value is None else float(value)


async def notify_pollers(conn: AsyncConnection) -> None:
    """Wake sleeping pollers when the transaction commits."""
    await conn.execute(sa.text(f"NOTIFY {POLL_CHANNEL}"))


async def schedule_unscheduled(conn: AsyncConnection) -> int:
    """Jobs to submit with no submit time, and waiting or finalizing jobs with no next
    poll or finalize (none is written without one; a hand-edited row, say): take them
    up now."""
    submits = await conn.execute(
        jobs.update()
        .where(jobs.c.state.in_(sorted(TO_SUBMIT)), jobs.c.submit_at.is_(None))
        .values(submit_at=sa.func.now())
    )
    polls = await conn.execute(
        jobs.update()
        .where(
            jobs.c.state.in_([JobState.WAITING, JobState.FINALIZING]),
            jobs.c.next_poll_at.is_(None),
        )
        .values(next_poll_at=sa.func.now())
    )
    return int(submits.rowcount) + int(polls.rowcount)
