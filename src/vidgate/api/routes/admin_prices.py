"""``/v1/admin/price_overrides``: each project's price overrides per model (an
operator or admin key; an admin acts on its own project, an operator on the one it
names with ``project=``). Changes are audited."""

from __future__ import annotations

from fastapi import APIRouter, Request

from vidgate.api.billing_schemas import (
    ADMIN_ONLY,
    PriceOverrideList,
    PriceOverrideObject,
    price_override_json,
)
from vidgate.api.deps import Admin, client_address
from vidgate.api.responses import FastJSONResponse
from vidgate.core.pricing import PriceOverride

router = APIRouter(prefix="/v1/admin/price_overrides", tags=["admin"], responses=ADMIN_ONLY)


@router.get("", response_model=PriceOverrideList)
async def list_price_overrides(caller: Admin, project: str | None = None) -> FastJSONResponse:
    """The overrides that apply to the project: set here (``source: "api"``) or in the
    models file (``"file"``); one set here wins over the file's for its model."""
    found = await caller.state.prices.list(caller.principal, project)
    return FastJSONResponse({"object": "list", "data": [price_override_json(r) for r in found]})


@router.get("/{model}", response_model=PriceOverrideObject)
async def get_price_override(
    model: str, caller: Admin, project: str | None = None
) -> FastJSONResponse:
    found = await caller.state.prices.get(caller.principal, model, project)
    return FastJSONResponse(price_override_json(found))


@router.put("/{model}", response_model=PriceOverrideObject)
async def put_price_override(
    model: str,
    body: PriceOverride,
    request: Request,
    caller: Admin,
    project: str | None = None,
) -> FastJSONResponse:
    """Set the project's price of ``model`` (an id or alias): ``{"multiplier": 0.8}``
    (of the list price) or ``{"pricing": {...}}`` (a table of its own, in
    ``GET /v1/models``'s shape, covering every resolution of the model)."""
    found = await caller.state.prices.put(
        caller.principal, model, body, project=project, remote_addr=client_address(request)
    )
    return FastJSONResponse(price_override_json(found))


@router.delete("/{model}")
async def delete_price_override(
    model: str, request: Request, caller: Admin, project: str | None = None
) -> FastJSONResponse:
    """Remove the override set here; the model's price is the file's override, if
    any, else its list price again."""
    await caller.state.prices.delete(
        caller.principal, model, project=project, remote_addr=client_address(request)
    )
    return FastJSONResponse({"object": "price_override.deleted", "model": model, "deleted": True})
