"""What a create would do, without doing it: the model, the deployment that would serve
the request and why, the seconds, and the price for the caller's project.

It runs a create's own steps up to the point where a create writes: the same
normalization (so a request a create would refuse is refused alike, with the same
error), the same routing (``routing.pick``, strict) and the same price
(``engine/prices.py``). Routing by weight is a draw: an estimate names one deployment
of those that share the top priority, a create may draw another (the reason says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from vidgate.core.errors import ServiceUnavailable
from vidgate.core.pricing import price
from vidgate.core.spec import JobSpec, VideoRequest, normalize
from vidgate.engine import routing
from vidgate.engine.context import EngineContext
from vidgate.engine.prices import override_for

PriceSource = Literal["list", "project_multiplier", "project_table"]


@dataclass(frozen=True, slots=True)
class Estimate:
    model: str
    deployment: str
    upstream_model: str | None
    reason: str
    spec: JobSpec
    mode: Literal["test", "live"]
    # USD of one video, and of all ``spec.n``; None: the model has no price.
    unit_cost: Decimal | None
    estimated_cost: Decimal | None
    # Which price applied: the model's list price, or the project's override of it.
    price_source: PriceSource


def no_deployment(model_id: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"no deployment is configured for model {model_id!r}; use a test key to"
        " reach the sandbox, or configure a provider for it",
        param="model",
        code="no_deployment",
    )


async def estimate(
    ctx: EngineContext, tenant_id: str, mode: Literal["test", "live"], req: VideoRequest
) -> Estimate:
    card = ctx.catalog.get(req.model)
    spec = normalize(req, card)
    async with ctx.db.connect() as conn:
        route = await routing.pick(ctx, conn, card, spec, mode, strict=True)
        if route is None:
            raise no_deployment(card.id)
        override = await override_for(ctx, conn, tenant_id, card)
    unit = price(card, override, spec.resolution, spec.seconds)
    source: PriceSource = "list"
    if override is not None:
        source = "project_multiplier" if override.multiplier is not None else "project_table"
    return Estimate(
        model=req.model,
        deployment=route.provider,
        upstream_model=route.upstream_model,
        reason=route.reason,
        spec=spec,
        mode=mode,
        unit_cost=unit,
        estimated_cost=None if unit is None else unit * spec.n,
        price_source=source,
    )
