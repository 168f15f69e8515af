"""A live job's reservation, made in the transaction that inserts it, and the refusal
of a create that a budget has no room for.

Every live job reserves its estimate in the ledger, budget or not, so that a budget set
later counts what is already running. Test-mode jobs reserve nothing and count against
nothing. With budgets that apply (the project's, the key's), the create locks them
(db/budgets.py), sums what each already holds in its period, and refuses, before
anything commits, a reservation that would take any of them past its ``usd``: the
budget rows serialize the creates that share a budget, in every process on the
database, and creates that share none never wait on each other. (A first look
without the lock turns away the creates a budget already has no room for.)

A model without a price has no estimate: under a budget that is an unknown cost, not a
free one, and the create is refused; without a budget it reserves 0 and its settlement
charges what it turns out to cost.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.budgets import BudgetStatus, exceeded, unpriced, window
from vidgate.core.jobs import JobRecord
from vidgate.db import ledger
from vidgate.db.budgets import applicable, spent


async def reserve(conn: AsyncConnection, job: JobRecord) -> None:
    """Reserve ``job``'s estimate, or raise ``InsufficientQuota`` (the caller's
    transaction then rolls back: nothing is created)."""
    if job.mode != "live":
        return
    amount = job.estimated_cost if job.estimated_cost is not None else Decimal(0)
    # A first look without the lock: a budget already full refuses at once, without
    # queueing behind the creates that hold its lock (a script hammering a spent
    # budget does not slow the others down). What it saw was committed, so the
    # refusal is as right as one made under the lock.
    if await _check(conn, job, amount, lock=False):
        await _check(conn, job, amount, lock=True)
    await ledger.reserve(
        conn,
        job_id=job.id,
        tenant_id=job.tenant_id,
        api_key_id=job.api_key_id,
        amount=amount,
        # The job's created_at is the transaction's now(): the job and its ledger rows
        # fall in the same period.
        booked_at=job.created_at,
    )


async def _check(conn: AsyncConnection, job: JobRecord, amount: Decimal, *, lock: bool) -> bool:
    """Raise if a budget that applies has no room for ``amount``; False if none
    applies."""
    found = await applicable(conn, job.tenant_id, job.api_key_id, lock=lock)
    if found and job.estimated_cost is None:
        raise unpriced(found[0], job.model)
    for budget in found:
        period = window(budget.period, job.created_at)
        used = await spent(conn, budget, period)
        if used + amount > budget.usd:
            raise exceeded(BudgetStatus(budget, period, used), amount)
    return bool(found)
