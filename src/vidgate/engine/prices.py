"""The price a project pays for a video: its override of the model's price, if any,
applied by ``vidgate.core.pricing.price``.

An override comes from the database (the admin API, ``price_overrides``) or from the
models file's ``projects:`` section (``EngineContext.project_prices``); the database's
wins for the same project and model. Both the estimate at create and the settlement of
what a job produced go through ``project_price``, so they price alike.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.catalog import ModelCard
from vidgate.core.pricing import PriceOverride, price
from vidgate.db.price_overrides import lookup
from vidgate.engine.context import EngineContext


async def override_for(
    ctx: EngineContext, conn: AsyncConnection, tenant_id: str, card: ModelCard
) -> PriceOverride | None:
    """The project's override of ``card``'s price, or None (it pays the list price)."""
    project, stored = await lookup(conn, tenant_id, card.id)
    if stored is not None or project is None:
        return stored
    return ctx.project_prices.get(project, card.id)


async def project_price(
    ctx: EngineContext,
    conn: AsyncConnection,
    tenant_id: str,
    card: ModelCard,
    resolution: str,
    seconds: int | Decimal,
) -> Decimal | None:
    """USD of one video of ``card`` for the project ``tenant_id``; None: no price."""
    override = await override_for(ctx, conn, tenant_id, card)
    return price(card, override, resolution, seconds)
