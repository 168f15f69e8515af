"""The ledger's writes: one signed row per job and step, never two.

A job's rows sum to what it counts against a budget (migration 0010): ``reserve`` its
estimate at create, then ``release`` (minus what it holds: the job is charged 0) or
``settle`` (its cost minus what it holds: the job is charged its cost). A job released
after a local timeout and then completed by its provider gets a settle row as well, and
sums to its cost. The primary key (job_id, step) makes each write idempotent: a step
that runs again after a crash inserts nothing.

Call ``settle`` and ``release`` in the transaction that moved the job to the state
they account for: the job row's lock, taken by that conditional UPDATE, orders them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import ledger


async def reserve(
    conn: AsyncConnection,
    *,
    job_id: str,
    tenant_id: str,
    api_key_id: str,
    amount: Decimal,
    booked_at: dt.datetime,
) -> None:
    await conn.execute(
        pg_insert(ledger)
        .values(
            job_id=job_id,
            step="reserve",
            tenant_id=tenant_id,
            api_key_id=api_key_id,
            amount=amount,
            booked_at=booked_at,
        )
        .on_conflict_do_nothing()
    )


# The step's row, sized so that the job's rows then sum to ``:cost`` (0 for a release).
# Nothing when the job has no reservation (a test-mode job), already has this step, or,
# for a release, is settled.
_CLOSE = sa.text(
    "INSERT INTO ledger (job_id, step, tenant_id, api_key_id, amount, booked_at)"
    " SELECT r.job_id, :step, r.tenant_id, r.api_key_id,"
    "  CAST(:cost AS numeric) - (SELECT sum(amount) FROM ledger WHERE job_id = r.job_id),"
    "  r.booked_at"
    " FROM ledger r"
    " WHERE r.job_id = :job_id AND r.step = 'reserve'"
    "  AND (:step = 'settle' OR NOT EXISTS ("
    "   SELECT 1 FROM ledger s WHERE s.job_id = r.job_id AND s.step = 'settle'))"
    " ON CONFLICT DO NOTHING"
    " RETURNING amount"
)


async def settle(conn: AsyncConnection, job_id: str, cost: Decimal) -> bool:
    """Charge the job ``cost`` in all: True if this call wrote the row."""
    params = {"step": "settle", "cost": cost, "job_id": job_id}
    row = (await conn.execute(_CLOSE, params)).first()
    return row is not None


async def release(conn: AsyncConnection, job_id: str) -> bool:
    """Give back what the job holds: True if this call wrote the row."""
    params = {"step": "release", "cost": Decimal(0), "job_id": job_id}
    row = (await conn.execute(_CLOSE, params)).first()
    return row is not None


# ``settle`` for many jobs: the rows of those with a reservation and no settle row yet.
_SETTLE_MANY = sa.text(
    "INSERT INTO ledger (job_id, step, tenant_id, api_key_id, amount, booked_at)"
    " SELECT r.job_id, 'settle', r.tenant_id, r.api_key_id,"
    "  u.cost - (SELECT sum(amount) FROM ledger WHERE job_id = r.job_id), r.booked_at"
    " FROM unnest(CAST(:ids AS text[]), CAST(:costs AS numeric[])) AS u(job_id, cost)"
    " JOIN ledger r ON r.job_id = u.job_id AND r.step = 'reserve'"
    " ON CONFLICT DO NOTHING"
)


async def settle_many(conn: AsyncConnection, costs: Sequence[tuple[str, Decimal]]) -> None:
    """``settle`` for a batch of ``(job_id, cost)`` in one statement."""
    if costs:
        await conn.execute(
            _SETTLE_MANY,
            {"ids": [job_id for job_id, _ in costs], "costs": [cost for _, cost in costs]},
        )
