"""Per-video prices: list prices, and a project's override of them.

Upstream providers publish prices as a handful of (duration, price) points per resolution,
or as a flat per-second rate. ``PriceTable`` holds either form and turns it into one
estimate for any number of seconds.

A project may pay otherwise than the list price (``PriceOverride``): a multiplier on the
model's list price, or a ``PriceTable`` of its own. ``price`` is the one place that
applies it, for the estimate at create and for the settlement of what was produced.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_QUANTUM = Decimal("0.000001")


def _round(value: Decimal) -> Decimal:
    return value.quantize(_QUANTUM, rounding=ROUND_HALF_UP)


class PriceTable(BaseModel):
    """Estimated USD price of one video, by resolution and duration.

    Lookup order for a resolution: its ``points``, then its ``per_second`` rate, then
    ``default_per_second``. A resolution may not appear in both ``points`` and
    ``per_second``: which of the two applies would otherwise depend on lookup order,
    which an operator editing an override cannot see.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: dict[str, list[tuple[int, Decimal]]] = Field(default_factory=dict)
    per_second: dict[str, Decimal] = Field(default_factory=dict)
    default_per_second: Decimal | None = None

    @field_validator("points")
    @classmethod
    def _check_points(
        cls, value: dict[str, list[tuple[int, Decimal]]]
    ) -> dict[str, list[tuple[int, Decimal]]]:
        for resolution, points in value.items():
            if not points:
                raise ValueError(f"points for {resolution} must list at least one point")
            previous_seconds, previous_price = 0, Decimal(0)
            for seconds, price in points:
                if seconds <= previous_seconds:
                    raise ValueError(
                        f"points for {resolution} must have positive, strictly increasing "
                        f"seconds; got {seconds} after {previous_seconds}"
                    )
                # A longer video that costs less is almost certainly a typo, and a falling
                # last segment would extrapolate to negative prices.
                if price < previous_price:
                    raise ValueError(
                        f"points for {resolution} must not fall in price; got {price} at "
                        f"{seconds} s after {previous_price}"
                    )
                previous_seconds, previous_price = seconds, price
        return value

    @field_validator("per_second")
    @classmethod
    def _check_per_second(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for resolution, rate in value.items():
            if rate < 0:
                raise ValueError(f"per_second for {resolution} must not be negative")
        return value

    @field_validator("default_per_second")
    @classmethod
    def _check_default(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError("default_per_second must not be negative")
        return value

    @model_validator(mode="after")
    def _check_ambiguity(self) -> Self:
        both = sorted(set(self.points) & set(self.per_second))
        if both:
            raise ValueError(
                f"resolution(s) {', '.join(both)} priced in both points and per_second; "
                "keep one (an override can drop a key by setting it to null)"
            )
        return self

    def covers(self, resolution: str) -> bool:
        return (
            resolution in self.points
            or resolution in self.per_second
            or self.default_per_second is not None
        )

    def estimate(self, resolution: str, seconds: int | Decimal) -> Decimal:
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        if resolution in self.points:
            return _round(_interpolate(self.points[resolution], seconds))
        rate = self.per_second.get(resolution, self.default_per_second)
        if rate is None:
            raise ValueError(f"no price for resolution {resolution}")
        return _round(rate * seconds)


def _interpolate(points: list[tuple[int, Decimal]], seconds: int | Decimal) -> Decimal:
    # (0, 0) anchors the curve so short videos scale down from the first point, and a
    # single point becomes a per-second rate.
    curve = [(0, Decimal(0)), *points]
    for (x0, y0), (x1, y1) in pairwise(curve):
        if seconds <= x1:
            return y0 + (y1 - y0) * (seconds - x0) / (x1 - x0)
    (x0, y0), (x1, y1) = curve[-2], curve[-1]
    return y1 + (y1 - y0) * (seconds - x1) / (x1 - x0)


# A multiplier above this is taken for a typo (a price in cents, say), and would overflow
# the ledger's numeric(12, 6) with ordinary list prices.
MAX_MULTIPLIER = Decimal(1000)


class PriceOverride(BaseModel):
    """A project's price for one model: ``multiplier`` times the model's list price, or
    ``pricing``, a table of its own. Exactly one of the two."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiplier: Decimal | None = Field(default=None, ge=0, le=MAX_MULTIPLIER, decimal_places=6)
    pricing: PriceTable | None = None

    @model_validator(mode="after")
    def _check_one(self) -> Self:
        if (self.multiplier is None) == (self.pricing is None):
            raise ValueError("give exactly one of multiplier (of the list price) or pricing")
        return self


class Priced(Protocol):
    """What ``price`` reads of a model card (``vidgate.core.catalog.ModelCard``)."""

    @property
    def pricing(self) -> PriceTable | None: ...

    @property
    def resolutions(self) -> list[str]: ...


def price(
    card: Priced, override: PriceOverride | None, resolution: str, seconds: int | Decimal
) -> Decimal | None:
    """USD of one video of ``card`` at ``resolution`` lasting ``seconds``, with the
    project's ``override`` applied; None where there is no price (a model without a
    list price, overridden by a multiplier or not at all): unknown, not free."""
    if override is not None and override.pricing is not None:
        return override.pricing.estimate(resolution, seconds)
    if card.pricing is None:
        return None
    listed = card.pricing.estimate(resolution, seconds)
    if override is None or override.multiplier is None:
        return listed
    return _round(listed * override.multiplier)


def check_override(card: Priced, override: PriceOverride) -> None:
    """Raise ``ValueError`` when ``override`` cannot price every video of ``card``: a
    table of its own must cover each of the card's resolutions."""
    table = override.pricing
    if table is None:
        return
    missing = [r for r in card.resolutions if not table.covers(r)]
    if missing:
        raise ValueError(
            f"pricing has no price for resolution(s) {', '.join(missing)}; add points or"
            " per_second for each, or a default_per_second"
        )
