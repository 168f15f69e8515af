"""What a completed job is charged: the one function that says it.

The real cost, not the estimate: the provider's own figure where its status reported
one (recorded on the job when it moved to ``finalizing``), else the price of the
seconds actually produced, read from the stored outputs and priced as at create: the
project's own price of the model where it has one, else the model's table
(engine/prices.py). The finalize step writes it with the move to ``completed``, and
that move settles the ledger in the same transaction (db/jobs.py ``transition``).

Produced seconds are each output's duration rounded to whole seconds (the unit prices
are given in), without an extend's source (its stored file holds the source and the
extension), and at most the seconds asked for: the reservation made at create was
for those, and a provider that returns a longer clip does not make the client pay
more. A provider's reported cost is charged as reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import JobRecord, OutputRecord
from vidgate.core.pricing import PriceOverride, price
from vidgate.engine.context import EngineContext
from vidgate.engine.prices import override_for


async def settled_cost(
    ctx: EngineContext,
    conn: AsyncConnection,
    job: JobRecord,
    outputs: Sequence[OutputRecord],
    overrides: dict[tuple[str, str], PriceOverride | None] | None = None,
) -> Decimal | None:
    """The job's cost in USD: 0 for a test-mode job (the sandbox charges nothing);
    None when it is unknown (no reported cost and a model without a price). ``conn``
    is the completing transaction's, for prices kept in the database; ``overrides``
    keeps the projects' prices read, for the other jobs of a batch."""
    if job.mode == "test":
        return Decimal(0)
    if job.cost is not None:
        return job.cost
    card = ctx.catalog.get(job.model) if job.model in ctx.catalog else None
    if card is None or not outputs:
        # The card left the catalogue since (or nothing to measure): the estimate it
        # was created and reserved at.
        return job.estimated_cost
    # The project's own price where it has one, as at create (engine/prices.py).
    key = (job.tenant_id, card.id)
    if overrides is not None and key in overrides:
        override = overrides[key]
    else:
        override = await override_for(ctx, conn, job.tenant_id, card)
        if overrides is not None:
            overrides[key] = override
    total = Decimal(0)
    for output in outputs:
        amount = price(card, override, job.spec.resolution, produced_seconds(job, output))
        if amount is None:
            return None
        total += amount
    return total


def produced_seconds(job: JobRecord, output: OutputRecord) -> int:
    """The whole seconds of ``output`` that the job made, at most those asked for."""
    duration = Decimal(str(output.duration))
    if job.spec.kind == "extend" and job.spec.source is not None:
        duration -= job.spec.source.seconds
    seconds = int(duration.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return max(0, min(seconds, job.spec.seconds))
