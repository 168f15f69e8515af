"""A project's price overrides: how ``price`` applies them, and the models file's
``projects:`` section that declares them (checked with the place of each mistake)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from vidgate.config import Settings
from vidgate.core.catalog import load_catalog
from vidgate.core.config_file import ConfigErrors
from vidgate.core.pricing import PriceOverride, PriceTable, check_override, price
from vidgate.core.project_prices import load_project_prices
from vidgate.providers.check import check_configuration

CATALOG = load_catalog()
SORA = CATALOG.get("sora-2")  # 0.10 USD per second at 720p, its one resolution


def test_price_applies_a_multiplier_or_a_table_of_its_own() -> None:
    assert price(SORA, None, "720p", 8) == Decimal("0.8")
    assert price(SORA, PriceOverride(multiplier=Decimal("0.5")), "720p", 8) == Decimal("0.4")
    own = PriceOverride(pricing=PriceTable(per_second={"720p": Decimal("0.03")}))
    assert price(SORA, own, "720p", 8) == Decimal("0.24")
    # Settlement prices the seconds produced, which need not be whole.
    assert price(SORA, None, "720p", Decimal("4.5")) == Decimal("0.45")


def test_a_model_without_a_price_stays_unknown_under_a_multiplier() -> None:
    unpriced = SORA.model_copy(update={"pricing": None})
    assert price(unpriced, PriceOverride(multiplier=Decimal(2)), "720p", 8) is None
    own = PriceOverride(pricing=PriceTable(default_per_second=Decimal("0.01")))
    assert price(unpriced, own, "720p", 8) == Decimal("0.08")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "exactly one"),
        ({"multiplier": 1, "pricing": {"default_per_second": 1}}, "exactly one"),
        ({"multiplier": -1}, "greater than or equal to 0"),
        ({"multiplier": 1001}, "less than or equal to 1000"),
        ({"multiplier": "0.1234567"}, "decimal places"),
        ({"factor": 2}, "Extra inputs"),
    ],
)
def test_an_override_is_one_thing_in_range(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        PriceOverride.model_validate(data)


def test_a_table_of_its_own_must_price_every_resolution_of_the_model() -> None:
    sandbox = CATALOG.get("sandbox")
    partial = PriceOverride(pricing=PriceTable(per_second={"720p": Decimal(1)}))
    with pytest.raises(ValueError, match="240p"):
        check_override(sandbox, partial)
    check_override(SORA, partial)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_names_projects_and_models_by_id_or_alias(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        """
projects:
  acme:
    prices:
      sora-2: {multiplier: 0.8}
      veo-3:
        pricing: {default_per_second: 0.2}
  empty: {}
""",
    )
    # The catalogue takes the section too (it is not a mistake there).
    catalog = load_catalog(path)
    prices = load_project_prices(path, catalog)
    assert prices.get("acme", "sora-2") == PriceOverride(multiplier=Decimal("0.8"))
    # Kept under the card's id: a request naming veo-3.1 or veo-3 gets it.
    assert prices.get("acme", "veo-3.1") is not None
    assert prices.get("acme", "veo-3") is None
    assert prices.get("other", "sora-2") is None
    assert load_project_prices(None, catalog).get("acme", "sora-2") is None


def test_each_mistake_is_named_with_its_line(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        """projects:
  acme:
    prices:
      no-such-model: {multiplier: 1}
      sora-2: {multiplier: 1, pricing: {default_per_second: 1}}
      sandbox:
        pricing: {per_second: {"720p": 0.1}}
  beta:
    discount: 3
  gamma:
    prices:
      veo-3.1: {multiplier: 2}
      veo-3: {multiplier: 3}
""",
    )
    with pytest.raises(ConfigErrors) as caught:
        load_project_prices(path, CATALOG)
    found = [(e.where.rsplit(":", 1)[1], str(e)) for e in caught.value.errors]
    assert [line for line, _ in found] == ["4", "5", "6", "9", "13"], found
    texts = [text for _, text in found]
    assert "model 'no-such-model' does not exist" in texts[0]
    assert "exactly one" in texts[1]
    assert "no price for resolution(s) 240p" in texts[2]
    assert "unknown key" in texts[3] and "accepted: prices" in texts[3]
    assert "priced twice" in texts[4]


def test_a_section_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "projects: [acme]\n")
    with pytest.raises(ConfigErrors, match=r"models.yaml:1: projects: must map"):
        load_project_prices(path, CATALOG)


async def test_the_configuration_check_reports_them_so_serve_refuses_to_start(
    tmp_path: Path,
) -> None:
    path = _file(tmp_path, "projects:\n  acme:\n    prices:\n      sora-2: {multiplier: -1}\n")
    settings = Settings(data_dir=tmp_path / "data", models_file=path)
    report = await check_configuration(settings, probe=False, env={})
    assert [e.where for e in report.errors] == [f"{path}:4"]
    assert "projects.acme.prices.sora-2.multiplier" in str(report.errors[0])
    assert report.exit_status == 2
