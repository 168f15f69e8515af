"""``/v1/models``: the catalogue, with each model's limits and prices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter

from vidgate.api.deps import CurrentPrincipal, State
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import ModelList, ModelObject
from vidgate.core.catalog import ModelCard

router = APIRouter(prefix="/v1/models", tags=["models"])


def _numbers(value: Any) -> Any:
    """Prices as JSON numbers (USD), not Decimal strings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(v) for v in value]
    return value


def model_object(card: ModelCard, providers: set[str]) -> ModelObject:
    return ModelObject(
        id=card.id,
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
            "extend": card.extend,
            "remix": card.remix,
            "defaults": {
                "seconds": card.default_seconds,
                "resolution": card.default_resolution,
                "aspect_ratio": card.default_aspect_ratio,
                "fps": card.default_fps,
            },
        },
        pricing={
            "currency": "USD",
            "unit": "video",
            **_numbers(card.pricing.model_dump(exclude_none=True)),
        },
        deployments=[
            {
                "provider": d.provider,
                "upstream_model": d.upstream_model,
                "priority": d.priority,
                "configured": d.provider in providers,
            }
            for d in card.deployments
        ],
    )


@router.get("", response_model=ModelList)
async def list_models(_: CurrentPrincipal, state: State) -> FastJSONResponse:
    runtime = state.runtime
    providers = set(runtime.engine.providers)
    data = [model_object(card, providers) for card in runtime.catalog.models()]
    return FastJSONResponse(ModelList(data=data).model_dump(mode="json"))


@router.get("/{model_id}", response_model=ModelObject)
async def get_model(model_id: str, _: CurrentPrincipal, state: State) -> FastJSONResponse:
    runtime = state.runtime
    card = runtime.catalog.get(model_id)
    return FastJSONResponse(
        model_object(card, set(runtime.engine.providers)).model_dump(mode="json")
    )
