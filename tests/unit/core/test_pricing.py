from decimal import Decimal

import pytest
import yaml
from pydantic import ValidationError

from vidgate.core.catalog import load_catalog
from vidgate.core.pricing import PriceTable

CATALOG = load_catalog()

# The price tables of the catalogue before issue 12: the shapes every rule below needs.
TABLES = {
    name: PriceTable.model_validate(data)
    for name, data in yaml.safe_load(
        """
        sora-2:
          points:
            "480p": [[5, 0.10]]
            "720p": [[5, 0.20], [10, 0.35]]
            "1080p": [[5, 0.30], [10, 0.50], [30, 1.20], [60, 2.00]]
        veo-3: {points: {"720p": [[5, 0.10]], "1080p": [[10, 0.25]], "4K": [[10, 0.50]]}}
        kling-2.0: {points: {"720p": [[5, 0.05]], "1080p": [[10, 0.15]]}}
        luma-ray-2: {points: {"540p": [[5, 0.04]], "720p": [[5, 0.05]], "1080p": [[10, 0.10]]}}
        sandbox: {default_per_second: 0}
        """
    ).items()
}


@pytest.mark.parametrize(
    ("model", "resolution", "seconds", "price"),
    [
        # Every listed point comes back exactly.
        ("sora-2", "480p", 5, "0.10"),
        ("sora-2", "720p", 5, "0.20"),
        ("sora-2", "720p", 10, "0.35"),
        ("sora-2", "1080p", 5, "0.30"),
        ("sora-2", "1080p", 10, "0.50"),
        ("sora-2", "1080p", 30, "1.20"),
        ("sora-2", "1080p", 60, "2.00"),
        ("veo-3", "720p", 5, "0.10"),
        ("veo-3", "1080p", 10, "0.25"),
        ("veo-3", "4K", 10, "0.50"),
        ("kling-2.0", "720p", 5, "0.05"),
        ("kling-2.0", "1080p", 10, "0.15"),
        ("luma-ray-2", "540p", 5, "0.04"),
        ("luma-ray-2", "720p", 5, "0.05"),
        ("luma-ray-2", "1080p", 10, "0.10"),
        # Between two points: linear.
        ("sora-2", "720p", 8, "0.29"),
        ("sora-2", "1080p", 7, "0.38"),
        ("sora-2", "1080p", 20, "0.85"),
        ("sora-2", "1080p", 45, "1.60"),
        # Past the last point: the last segment's slope carries on.
        ("sora-2", "720p", 12, "0.41"),
        ("sora-2", "720p", 60, "1.85"),
        ("sora-2", "1080p", 90, "2.80"),
        # Below the first point: interpolate from (0, 0).
        ("sora-2", "720p", 2, "0.08"),
        ("sora-2", "1080p", 1, "0.06"),
        # A single point is a per-second rate, both sides of it.
        ("sora-2", "480p", 4, "0.08"),
        ("sora-2", "480p", 10, "0.20"),
        ("veo-3", "720p", 8, "0.16"),
        ("veo-3", "1080p", 8, "0.20"),
        ("veo-3", "4K", 30, "1.50"),
        ("kling-2.0", "720p", 10, "0.10"),
        ("kling-2.0", "1080p", 5, "0.075"),
        ("luma-ray-2", "540p", 10, "0.08"),
        ("luma-ray-2", "720p", 3, "0.03"),
        ("luma-ray-2", "1080p", 5, "0.05"),
        # The sandbox is free.
        ("sandbox", "240p", 1, "0"),
        ("sandbox", "1080p", 60, "0"),
    ],
)
def test_points_and_rates(model: str, resolution: str, seconds: int, price: str) -> None:
    estimate = TABLES[model].estimate(resolution, seconds)
    assert estimate == Decimal(price)
    assert estimate.as_tuple().exponent == -6


@pytest.mark.parametrize(
    ("model", "resolution", "seconds", "price"),
    [
        # The reference's list prices (docs/catalogue.md has each one's source).
        ("sora-2", "720p", 4, "0.40"),
        ("sora-2", "720p", 12, "1.20"),
        ("veo-3.1", "720p", 8, "3.20"),
        ("veo-3.1", "4K", 8, "4.80"),
        ("veo-3", "1080p", 4, "1.60"),
        ("veo-3.1-fast", "1080p", 8, "1.20"),
        ("hailuo-2.3", "720p", 6, "0.28"),
        ("hailuo-2.3", "720p", 10, "0.56"),
        ("runway-gen4.5", "720p", 10, "1.20"),
        ("runway-gen4-turbo", "720p", 5, "0.25"),
        ("seedance-1-pro", "720p", 5, "0.27"),
        ("seedance-1.5-pro", "720p", 5, "0.1296"),
        ("sandbox", "1080p", 60, "0"),
    ],
)
def test_builtin_list_prices(model: str, resolution: str, seconds: int, price: str) -> None:
    assert CATALOG.get(model).estimate(resolution, seconds) == Decimal(price)


@pytest.mark.parametrize("model", ["kling-2.6", "kling-2.5-turbo", "luma-ray-flash-2"])
def test_builtin_models_without_a_list_price(model: str) -> None:
    card = CATALOG.get(model)
    assert card.pricing is None
    assert card.estimate(card.default_resolution, card.default_seconds) is None


def test_estimate_is_rounded_half_up_to_six_decimals() -> None:
    assert PriceTable(per_second={"720p": Decimal("0.0000005")}).estimate("720p", 1) == Decimal(
        "0.000001"
    )
    assert PriceTable(points={"720p": [(3, Decimal(1))]}).estimate("720p", 1) == Decimal("0.333333")
    assert PriceTable(points={"720p": [(3, Decimal(2))]}).estimate("720p", 1) == Decimal("0.666667")


def test_yaml_shape_with_points_and_per_second() -> None:
    document = yaml.safe_load(
        """
        pricing:
          points: {"720p": [[5, 0.20], [10, 0.35]], "1080p": [[5, 0.30], [10, 0.50]]}
          per_second: {"480p": 0.02}
        """
    )
    table = PriceTable.model_validate(document["pricing"])
    assert table.estimate("480p", 10) == Decimal("0.2")
    assert table.estimate("480p", 7) == Decimal("0.14")
    assert table.estimate("1080p", 8) == Decimal("0.42")
    # YAML floats become exact decimals, not binary approximations.
    assert table.points["720p"][1] == (10, Decimal("0.35"))


def test_default_per_second_covers_unlisted_resolutions() -> None:
    table = PriceTable(
        points={"720p": [(5, Decimal("0.5"))]},
        per_second={"480p": Decimal("0.01")},
        default_per_second=Decimal("0.03"),
    )
    assert table.estimate("1080p", 10) == Decimal("0.30")
    assert table.estimate("480p", 10) == Decimal("0.10")
    assert table.estimate("720p", 10) == Decimal("1.00")
    assert table.covers("4K")


def test_unpriced_resolution() -> None:
    table = PriceTable(per_second={"480p": Decimal("0.01")})
    assert table.covers("480p")
    assert not table.covers("720p")
    with pytest.raises(ValueError, match="720p"):
        table.estimate("720p", 5)


def test_zero_and_negative_seconds() -> None:
    table = PriceTable(points={"720p": [(5, Decimal("0.2")), (10, Decimal("0.35"))]})
    assert table.estimate("720p", 0) == 0
    with pytest.raises(ValueError, match="negative"):
        table.estimate("720p", -1)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"points": {"720p": []}}, "at least one point"),
        ({"points": {"720p": [[5, 0.2], [5, 0.3]]}}, "strictly increasing"),
        ({"points": {"720p": [[10, 0.2], [5, 0.3]]}}, "strictly increasing"),
        ({"points": {"720p": [[0, 0.2]]}}, "strictly increasing"),
        ({"points": {"720p": [[5, 0.3], [10, 0.2]]}}, "must not fall"),
        ({"points": {"720p": [[5, -0.1]]}}, "must not fall"),
        ({"per_second": {"720p": -0.1}}, "negative"),
        ({"default_per_second": -1}, "negative"),
        ({"points": {"720p": [[5, 0.2]]}, "per_second": {"720p": 0.1}}, "both"),
        ({"per_sec": {"720p": 0.1}}, "Extra inputs"),
    ],
)
def test_invalid_tables(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        PriceTable.model_validate(data)
