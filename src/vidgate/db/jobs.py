"""Job rows: read, list, the one conditional state change (and its form for a batch of
finalized jobs), outputs and idempotency keys.

Callers pass an open ``AsyncConnection`` (and so decide the transaction); functions
return the records of core/jobs.py, never SQLAlchemy rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import (
    TERMINAL,
    JobRecord,
    JobState,
    OutputRecord,
    check_transition,
    stored_spec,
)
from vidgate.core.spec import JobSpec
from vidgate.core.video_filters import VideoFilter
from vidgate.db import ledger
from vidgate.db.schema import idempotency_keys, job_outputs, jobs

# The columns of a job row, in ``JobRecord``'s field order: what every query that
# builds a ``JobRecord`` selects or returns.
JOB_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(JobRecord))
_SPEC_AT = JOB_COLUMNS.index("spec")
_STATE_AT = JOB_COLUMNS.index("state")
_SELECT_JOB = [jobs.c[name] for name in JOB_COLUMNS]


def job_from_values(values: Sequence[Any], spec: JobSpec) -> JobRecord:
    """A record from a row's values in ``JOB_COLUMNS`` order, with its spec parsed by
    the caller (from JSON text, a dict, or the spec the row was written from)."""
    fields = list(values)
    fields[_SPEC_AT] = spec
    fields[_STATE_AT] = JobState(fields[_STATE_AT])
    return JobRecord(*fields)


def job_from_row(row: sa.Row[Any] | Mapping[str, Any]) -> JobRecord:
    """A record from a row read through SQLAlchemy (the spec arrives as a dict)."""
    mapping = row._mapping if isinstance(row, sa.Row) else row
    values = [mapping[name] for name in JOB_COLUMNS]
    return job_from_values(values, stored_spec(values[_SPEC_AT]))


def db_now(*, after_s: float = 0.0) -> sa.ColumnElement[dt.datetime]:
    """The database's clock (plus ``after_s``), as a value to write: no round trip to
    read it first."""
    now: sa.ColumnElement[dt.datetime] = sa.func.now()
    if after_s:
        return now + sa.literal(dt.timedelta(seconds=after_s))
    return now


async def now(conn: AsyncConnection) -> dt.datetime:
    value = await conn.scalar(sa.select(sa.func.now()))
    assert isinstance(value, dt.datetime)
    return value


async def get_job(
    conn: AsyncConnection,
    job_id: str,
    *,
    tenant_id: str | None = None,
    for_update: bool = False,
    include_deleted: bool = False,
) -> JobRecord | None:
    stmt = sa.select(*_SELECT_JOB).where(jobs.c.id == job_id)
    if tenant_id is not None:
        stmt = stmt.where(jobs.c.tenant_id == tenant_id)
    if not include_deleted:
        stmt = stmt.where(jobs.c.deleted_at.is_(None))
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    return job_from_row(row) if row else None


async def list_jobs(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    after: str | None,
    limit: int,
    order: Literal["asc", "desc"],
    where: VideoFilter | None = None,
    first_output: bool = False,
) -> list[tuple[JobRecord, OutputRecord | None]]:
    """A page of the tenant's jobs that match ``where``; ids are time-ordered, so the
    id is the cursor. With ``first_output``, each job's output 0 in the same statement
    (None until it has one, and once its media was released); else None."""
    columns: list[Any] = list(_SELECT_JOB)
    source: Any = jobs
    if first_output:
        columns += [c.label(f"output_{c.name}") for c in _OUTPUT_COLUMNS]
        source = jobs.outerjoin(
            job_outputs,
            sa.and_(
                job_outputs.c.job_id == jobs.c.id,
                job_outputs.c.index == 0,
                jobs.c.media_deleted_at.is_(None),
            ),
        )
    stmt = (
        sa.select(*columns)
        .select_from(source)
        .where(jobs.c.tenant_id == tenant_id, jobs.c.deleted_at.is_(None))
    )
    if after is not None:
        stmt = stmt.where(jobs.c.id > after if order == "asc" else jobs.c.id < after)
    if where is not None:
        stmt = stmt.where(*_matching(where))
    stmt = stmt.order_by(jobs.c.id.asc() if order == "asc" else jobs.c.id.desc()).limit(limit)
    found: list[tuple[JobRecord, OutputRecord | None]] = []
    for row in await conn.execute(stmt):
        output = None
        if first_output and row._mapping["output_index"] is not None:
            output = OutputRecord(
                **{name: row._mapping[f"output_{name}"] for name in _OUTPUT_FIELDS}
            )
        found.append((job_from_row(row), output))
    return found


def _matching(where: VideoFilter) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if where.models is not None:
        clauses.append(jobs.c.model.in_(sorted(where.models)))
    if where.states is not None:
        clauses.append(jobs.c.state.in_(sorted(where.states)))
    if where.mode is not None:
        clauses.append(jobs.c.mode == where.mode)
    if where.created_after is not None:
        clauses.append(jobs.c.created_at >= where.created_after)
    if where.created_before is not None:
        clauses.append(jobs.c.created_at < where.created_before)
    return clauses


async def update_job(conn: AsyncConnection, job_id: str, **values: Any) -> None:
    await conn.execute(
        jobs.update().where(jobs.c.id == job_id).values(updated_at=sa.func.now(), **values)
    )


async def transition(
    conn: AsyncConnection,
    job_id: str,
    *,
    from_states: Collection[JobState],
    to: JobState | None = None,
    **values: Any,
) -> JobRecord | None:
    """Write ``values`` (and the state ``to``, if given) to the job if it is in one of
    ``from_states``, in one statement; the job as written, or None when it was in
    another state (or is gone). The row stays locked to the end of the transaction,
    so what the caller enqueues with it happens once, for the caller that moved it.
    A move the state machine does not have (core/jobs.py) raises ``IllegalTransition``.

    Every end of a job is accounted for here, in the same transaction: a job that
    fails or is cancelled costs 0 and its reservation is released; a completed one is
    settled at the ``cost`` written with it (engine/settlement.py computes it).
    """
    sources = frozenset(from_states)
    if to is not None:
        check_transition(sources, to)
        values["state"] = to
    if to in _UNBILLED:
        # Nobody pays for a video they did not get.
        values["cost"] = 0
    row = (
        await conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state.in_(sorted(sources)))
            .values(updated_at=sa.func.now(), **values)
            .returning(*_SELECT_JOB)
        )
    ).first()
    if row is None:
        return None
    job = job_from_row(row)
    if to is not None and to in TERMINAL:
        await account_for_end(conn, job)
    return job


_UNBILLED = frozenset({JobState.FAILED, JobState.CANCELLED})

_FINALIZING = frozenset({JobState.FINALIZING})
_RETURNING_JOB = "RETURNING " + ", ".join(f"jobs.{name}" for name in JOB_COLUMNS)


async def complete_finalized(
    conn: AsyncConnection, costs: Sequence[tuple[str, Decimal | None]]
) -> list[JobRecord]:
    """``transition`` from ``finalizing`` to ``completed`` for a batch of jobs, each at
    its ``(job_id, cost)``, in one statement, and their ledger rows in one more (a
    finalize write-back: engine/finalize.py). A job no longer finalizing is left as
    it is. The jobs as written, in id order."""
    check_transition(_FINALIZING, JobState.COMPLETED)
    if not costs:
        return []
    result = await conn.execute(
        sa.text(
            "UPDATE jobs SET state = 'completed', progress = 100, completed_at = now(),"
            " cost = u.cost, step_attempts = 0, next_poll_at = NULL, updated_at = now()"
            " FROM unnest(CAST(:ids AS text[]), CAST(:costs AS numeric[])) AS u(id, cost)"
            " WHERE jobs.id = u.id AND jobs.state = 'finalizing' " + _RETURNING_JOB
        ),
        {"ids": [job_id for job_id, _ in costs], "costs": [cost for _, cost in costs]},
    )
    done = sorted((job_from_row(row) for row in result), key=lambda job: job.id)
    # As ``account_for_end`` for each: test-mode jobs hold nothing.
    await ledger.settle_many(
        conn,
        [
            (job.id, job.cost if job.cost is not None else Decimal(0))
            for job in done
            if job.mode == "live"
        ],
    )
    return done


async def account_for_end(conn: AsyncConnection, job: JobRecord) -> None:
    """The ledger's row for a job that has just ended (as written, its row locked):
    its settlement at ``job.cost`` once completed (a cost that is unknown, a model
    without a price, counts 0), its release once failed or cancelled. Test-mode jobs
    hold no reservation and get no row (db/ledger.py)."""
    if job.mode != "live":
        return
    if job.state == JobState.COMPLETED:
        await ledger.settle(conn, job.id, job.cost if job.cost is not None else Decimal(0))
    elif job.state in _UNBILLED:
        await ledger.release(conn, job.id)


# --- outputs ----------------------------------------------------------------------


async def insert_output(conn: AsyncConnection, output: OutputRecord) -> bool:
    """Record an output once; a repeated finalize step finds it there and keeps the first."""
    inserted = await conn.execute(
        pg_insert(job_outputs)
        .values(dataclasses.asdict(output))
        .on_conflict_do_nothing()
        .returning(job_outputs.c.index)
    )
    return inserted.first() is not None


_OUTPUT_COLUMNS = [job_outputs.c[f.name] for f in dataclasses.fields(OutputRecord)]
_OUTPUT_FIELDS = [f.name for f in dataclasses.fields(OutputRecord)]
_OUTPUT_TYPES = {
    "job_id": "text",
    "index": "int",
    "video_sha256": "text",
    "thumbnail_sha256": "text",
    "spritesheet_sha256": "text",
    "width": "int",
    "height": "int",
    "fps": "float8",
    "duration": "float8",
    "size_bytes": "bigint",
}
assert list(_OUTPUT_TYPES) == _OUTPUT_FIELDS
_INSERT_OUTPUTS = sa.text(
    "INSERT INTO job_outputs (" + ", ".join(f'"{name}"' for name in _OUTPUT_FIELDS) + ")"
    " SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _OUTPUT_TYPES.items())
    + ") ON CONFLICT DO NOTHING"
)


async def insert_outputs(conn: AsyncConnection, outputs: Sequence[OutputRecord]) -> None:
    """``insert_output`` for many outputs in one statement."""
    if outputs:
        await conn.execute(
            _INSERT_OUTPUTS,
            {name: [getattr(o, name) for o in outputs] for name in _OUTPUT_FIELDS},
        )


async def get_job_and_outputs(
    conn: AsyncConnection, job_id: str
) -> tuple[JobRecord, list[OutputRecord]] | None:
    """A job, deleted or not, and its outputs in index order, in one round trip."""
    stmt = (
        sa.select(*_SELECT_JOB, *(c.label(f"output_{c.name}") for c in _OUTPUT_COLUMNS))
        .select_from(jobs.outerjoin(job_outputs, job_outputs.c.job_id == jobs.c.id))
        .where(jobs.c.id == job_id)
        .order_by(job_outputs.c.index)
    )
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return None
    outputs = [
        OutputRecord(**{name: row._mapping[f"output_{name}"] for name in _OUTPUT_FIELDS})
        for row in rows
        if row._mapping["output_index"] is not None
    ]
    return job_from_row(rows[0]), outputs


async def get_outputs(conn: AsyncConnection, job_id: str) -> list[OutputRecord]:
    rows = await conn.execute(
        sa.select(*_OUTPUT_COLUMNS)
        .where(job_outputs.c.job_id == job_id)
        .order_by(job_outputs.c.index)
    )
    return [OutputRecord(**r._mapping) for r in rows]


async def get_output(conn: AsyncConnection, job_id: str, index: int) -> OutputRecord | None:
    row = (
        await conn.execute(
            sa.select(*_OUTPUT_COLUMNS).where(
                job_outputs.c.job_id == job_id, job_outputs.c.index == index
            )
        )
    ).first()
    return OutputRecord(**row._mapping) if row is not None else None


async def set_previews(
    conn: AsyncConnection, job_id: str, index: int, *, thumbnail: str, spritesheet: str
) -> OutputRecord | None:
    """Record an output's previews where it has none yet: the step and a request that
    made them side by side keep the first (the same bytes, content-addressed). The
    output as written; None if there is no such output."""
    row = (
        await conn.execute(
            sa.update(job_outputs)
            .where(job_outputs.c.job_id == job_id, job_outputs.c.index == index)
            .values(
                thumbnail_sha256=sa.func.coalesce(job_outputs.c.thumbnail_sha256, thumbnail),
                spritesheet_sha256=sa.func.coalesce(job_outputs.c.spritesheet_sha256, spritesheet),
            )
            .returning(*_OUTPUT_COLUMNS)
        )
    ).first()
    return OutputRecord(**row._mapping) if row is not None else None


# --- idempotency ------------------------------------------------------------------


async def claim_idempotency_key(
    conn: AsyncConnection, tenant_id: str, key: str, request_hash: str, job_id: str
) -> tuple[str, str] | None:
    """Insert the key, or return ``(request_hash, job_id)`` of the request that holds it."""
    inserted = (
        await conn.execute(
            pg_insert(idempotency_keys)
            .values(tenant_id=tenant_id, key=key, request_hash=request_hash, job_id=job_id)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.job_id)
        )
    ).first()
    if inserted is not None:
        return None
    held = await find_idempotency_key(conn, tenant_id, key)
    assert held is not None
    return held


async def find_idempotency_key(
    conn: AsyncConnection, tenant_id: str, key: str
) -> tuple[str, str] | None:
    row = (
        await conn.execute(
            sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.job_id).where(
                idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
            )
        )
    ).first()
    return (str(row.request_hash), str(row.job_id)) if row else None
