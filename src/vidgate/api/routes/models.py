"""``/v1/models``: the catalogue, with each model's limits and prices."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi import APIRouter

from vidgate.api.deps import ApiState, Caller
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import ModelList, ModelObject
from vidgate.core.catalog import DeploymentRef, ModelCard
from vidgate.db.deployments import HealthRecord, deployment_health_all

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


def _deployment_view(
    ref: DeploymentRef, providers: set[str], health: dict[str, HealthRecord], now: dt.datetime
) -> dict[str, Any]:
    """What an operator needs to see about a deployment, and never a credential."""
    record = health.get(ref.provider)
    open_now = bool(record and record.open_until and record.open_until > now)
    return {
        "provider": ref.provider,
        "upstream_model": ref.upstream_model,
        "priority": ref.priority,
        "weight": ref.weight,
        "configured": ref.provider in providers,
        "healthy": ref.provider in providers and not open_now,
        "circuit_open_until": int(record.open_until.timestamp())
        if open_now and record and record.open_until
        else None,
        "last_error": record.last_error if record and record.consecutive_failures else None,
    }


def model_object(
    card: ModelCard,
    providers: set[str],
    health: dict[str, HealthRecord] | None = None,
    now: dt.datetime | None = None,
) -> ModelObject:
    health = health or {}
    now = now or dt.datetime.now(dt.UTC)
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
            "last_frame": card.last_frame,
            "max_reference_images": card.max_reference_images,
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
        deployments=[_deployment_view(d, providers, health, now) for d in card.deployments],
    )


async def _health(state: ApiState) -> dict[str, HealthRecord]:
    async with state.runtime.db.connect() as conn:
        return await deployment_health_all(conn)


@router.get("", response_model=ModelList)
async def list_models(caller: Caller) -> FastJSONResponse:
    runtime = caller.state.runtime
    providers = set(runtime.engine.providers)
    health = await _health(caller.state)
    data = [model_object(card, providers, health) for card in runtime.catalog.models()]
    return FastJSONResponse(ModelList(data=data).model_dump(mode="json"))


@router.get("/{model_id}", response_model=ModelObject)
async def get_model(model_id: str, caller: Caller) -> FastJSONResponse:
    runtime = caller.state.runtime
    card = runtime.catalog.get(model_id)
    view = model_object(card, set(runtime.engine.providers), await _health(caller.state))
    return FastJSONResponse(view.model_dump(mode="json"))
