"""Bodies and answers of the money routes: the estimate (``POST /v1/videos/estimate``),
usage (``GET /v1/usage``) and price overrides (``/v1/admin/price_overrides``), and
the functions that turn their records into JSON. Prices are JSON numbers (USD), as a
video's ``estimated_cost`` and ``cost`` are."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vidgate.api.responses import usd_numbers
from vidgate.api.schemas import ErrorResponse, ImageUrlReference, Metadata, Prompt, Seed, Text
from vidgate.core.project_prices import PriceOverrideRecord
from vidgate.engine.estimate import Estimate

# The answer of the routes that need an operator or admin key to any other key.
ADMIN_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"description": "The key is not an operator's or an admin's.", "model": ErrorResponse}
}


class EstimateBody(BaseModel):
    """The body of a create, of either shape: ``POST /v1/videos``'s fields
    (``seconds``, ``input_reference``) or ``POST /v1/videos/generations``'s
    (``duration``, ``image``); one of each pair at most."""

    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    model: Text | None = None
    seconds: bool | int | float | Text | None = None
    duration: bool | int | float | Text | None = None
    size: Text | None = None
    resolution: Text | None = None
    aspect_ratio: Text | None = None
    fps: bool | int | Text | None = None
    n: bool | int | Text | None = None
    seed: Seed | None = None
    negative_prompt: Prompt | None = None
    input_reference: ImageUrlReference | Text | None = None
    image: Text | None = None
    last_frame: ImageUrlReference | Text | None = None
    reference_images: list[ImageUrlReference | Text] | None = None
    metadata: Metadata | None = None
    webhook_url: Text | None = None


class EstimateObject(BaseModel):
    object: Literal["video.estimate"] = "video.estimate"
    model: str
    deployment: str
    upstream_model: str | None
    reason: str
    mode: Literal["test", "live"]
    kind: str
    seconds: int
    resolution: str
    size: str
    aspect_ratio: str
    fps: int
    n: int
    unit_cost: float | None
    estimated_cost: float | None
    currency: Literal["USD"] = "USD"
    price_source: Literal["list", "project_multiplier", "project_table"]


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def estimate_json(found: Estimate) -> dict[str, Any]:
    spec = found.spec
    return EstimateObject(
        model=found.model,
        deployment=found.deployment,
        upstream_model=found.upstream_model,
        reason=found.reason,
        mode=found.mode,
        kind=spec.kind,
        seconds=spec.seconds,
        resolution=spec.resolution,
        size=spec.size,
        aspect_ratio=spec.aspect_ratio,
        fps=spec.fps,
        n=spec.n,
        unit_cost=_usd(found.unit_cost),
        estimated_cost=_usd(found.estimated_cost),
        price_source=found.price_source,
    ).model_dump(mode="json")


class UsageTotals(BaseModel):
    count: int
    seconds: int
    cost: float


class UsageData(BaseModel):
    model: str | None
    key_id: str | None
    day: str | None
    count: int
    seconds: int
    cost: float | None
    mode: Literal["live", "test"]


class UsageObject(BaseModel):
    object: Literal["usage"] = "usage"
    start: str
    end: str
    currency: Literal["USD"] = "USD"
    total: UsageTotals
    test_total: UsageTotals
    data: list[UsageData]


class PriceOverrideObject(BaseModel):
    object: Literal["price_override"] = "price_override"
    project: str
    model: str
    multiplier: float | None
    pricing: dict[str, Any] | None
    # "api": set through this API; "file": the models file's projects: section.
    source: Literal["api", "file"]
    updated_at: int | None


class PriceOverrideList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PriceOverrideObject]


def price_override_json(record: PriceOverrideRecord) -> dict[str, Any]:
    override = record.override
    return {
        "object": "price_override",
        "project": record.project_id,
        "model": record.model,
        "multiplier": _usd(override.multiplier),
        "pricing": None
        if override.pricing is None
        else usd_numbers(override.pricing.model_dump(exclude_none=True)),
        "source": record.source,
        "updated_at": None if record.updated_at is None else int(record.updated_at.timestamp()),
    }
