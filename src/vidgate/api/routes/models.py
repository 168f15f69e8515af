"""``/v1/models``: the catalogue, with each model's limits and prices. An alias is
listed as a model of its own right after its card, with ``alias_of`` naming the card."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vidgate.api.deps import Caller
from vidgate.api.responses import FastJSONResponse, usd_numbers
from vidgate.api.schemas import ModelList, ModelObject
from vidgate.services.models import DeploymentStatus, ModelEntry

router = APIRouter(prefix="/v1/models", tags=["models"])


def _deployment_view(status: DeploymentStatus) -> dict[str, Any]:
    ref = status.ref
    return {
        "provider": ref.provider,
        "upstream_model": ref.upstream_model,
        "priority": ref.priority,
        "weight": ref.weight,
        "configured": status.configured,
        "healthy": status.healthy,
        "circuit_open_until": int(status.circuit_open_until.timestamp())
        if status.circuit_open_until is not None
        else None,
        "last_error": status.last_error,
    }


def model_object(entry: ModelEntry, alias: str | None = None) -> ModelObject:
    """The card of ``entry``; with ``alias``, as that alias shows it."""
    card = entry.card
    return ModelObject(
        id=alias or card.id,
        alias_of=card.id if alias else None,
        aliases=[] if alias else card.aliases,
        owned_by=card.owned_by,
        description=card.description,
        capabilities={
            "durations": card.durations.model_dump(exclude_none=True),
            "resolutions": card.resolutions,
            "aspect_ratios": card.aspect_ratios,
            "fps": card.fps,
            "max_n": card.max_n,
            "max_prompt_chars": card.max_prompt_chars,
            "text_to_video": card.text_to_video,
            "image_to_video": card.image_to_video,
            "last_frame": card.last_frame,
            "max_reference_images": card.max_reference_images,
            "extend": card.extend,
            "max_total_seconds": card.max_total_seconds,
            "remix": card.remix,
            "defaults": {
                "seconds": card.default_seconds,
                "resolution": card.default_resolution,
                "aspect_ratio": card.default_aspect_ratio,
                "fps": card.default_fps,
            },
        },
        pricing=None
        if card.pricing is None
        else {
            "currency": "USD",
            "unit": "video",
            **usd_numbers(card.pricing.model_dump(exclude_none=True)),
        },
        deployments=[_deployment_view(d) for d in entry.deployments],
    )


@router.get("", response_model=ModelList)
async def list_models(caller: Caller) -> FastJSONResponse:
    data = [
        model_object(entry, alias)
        for entry in await caller.state.models.list()
        for alias in (None, *entry.card.aliases)
    ]
    return FastJSONResponse(ModelList(data=data).model_dump(mode="json"))


@router.get("/{model_id}", response_model=ModelObject)
async def get_model(model_id: str, caller: Caller) -> FastJSONResponse:
    entry = await caller.state.models.get(model_id)
    view = model_object(entry, model_id if model_id != entry.card.id else None)
    return FastJSONResponse(view.model_dump(mode="json"))
