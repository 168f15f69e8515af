from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from vidgate.core.catalog import (
    Catalog,
    DeploymentRef,
    DurationRule,
    ModelCard,
    canonical_resolution,
    load_catalog,
)
from vidgate.core.errors import ModelNotFound
from vidgate.core.pricing import PriceTable

CATALOG = load_catalog()


def card_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "test-model",
        "owned_by": "tests",
        "durations": {"min": 1, "max": 10},
        "resolutions": ["720p", "1080p"],
        "aspect_ratios": ["16:9", "9:16"],
        "fps": [24],
        "default_seconds": 5,
        "default_resolution": "720p",
        "default_aspect_ratio": "16:9",
        "default_fps": 24,
        "pricing": {"default_per_second": 0.01},
    }
    data.update(changes)
    return data


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- built-in catalogue -------------------------------------------------------------


BUILTIN = [
    "sandbox",
    "sora-2",
    "veo-3.1",
    "veo-3.1-fast",
    "kling-2.6",
    "kling-2.5-turbo",
    "kling-2.0",
    "luma-ray-2",
    "luma-ray-flash-2",
    "hailuo-2.3",
    "hailuo-2.3-fast",
    "seedance-2.0",
    "seedance-1.5-pro",
    "seedance-1-pro",
    "runway-gen4.5",
    "runway-gen4-turbo",
    "gemini-omni-1.2-flash",
    "gemini-omni-1.1-flash",
    "wan-2.5",
    "wan-2.6",
    "wan-2.7",
]


def test_builtin_models_in_stable_order() -> None:
    assert [card.id for card in CATALOG.models()] == BUILTIN
    assert [card.id for card in load_catalog().models()] == [c.id for c in CATALOG.models()]


ALL_RATIOS = ["16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21"]


@pytest.mark.parametrize(
    ("model", "durations", "resolutions", "aspect_ratios", "fps", "owned_by"),
    [
        (
            "sandbox",
            "1-60",
            ["240p", "360p", "480p", "540p", "720p", "1080p"],
            ALL_RATIOS,
            [8, 12, 16, 24, 25, 30, 60],
            "vidgate",
        ),
        # As OpenAI's API enforced them, not 1-60 s up to 1080p.
        ("sora-2", "4, 8, 12", ["720p"], ["16:9", "9:16"], [24], "openai"),
        # Veo takes 4, 6 or 8 s: not the 1-30 s veo-3 had.
        ("veo-3.1", "4, 6, 8", ["720p", "1080p", "4K"], ["16:9", "9:16"], [24], "google"),
        ("kling-2.0", "5, 10", ["720p", "1080p"], ["16:9", "9:16", "1:1"], [24], "kling"),
        ("kling-2.6", "5, 10", ["720p", "1080p"], ["16:9", "9:16", "1:1"], [24], "kling"),
        # Luma takes 5 or 9 s, not 1-10.
        ("luma-ray-2", "5, 9", ["540p", "720p", "1080p"], ALL_RATIOS, [24], "luma"),
        ("hailuo-2.3", "6, 10", ["720p", "1080p"], ["16:9"], [24], "minimax"),
        ("seedance-2.0", "4-15", ["480p", "720p", "1080p"], ALL_RATIOS[:6], [24], "bytedance"),
        ("runway-gen4.5", "2-10", ["720p"], ["16:9", "9:16"], [24], "runway"),
        (
            "gemini-omni-1.2-flash",
            "3-15",
            ["360p", "720p", "1080p", "4K"],
            ["16:9", "9:16"],
            [24],
            "google",
        ),
    ],
)
def test_builtin_limits(
    model: str,
    durations: str,
    resolutions: list[str],
    aspect_ratios: list[str],
    fps: list[int],
    owned_by: str,
) -> None:
    card = CATALOG.get(model)
    assert card.durations.describe() == durations
    assert card.resolutions == resolutions
    assert sorted(card.aspect_ratios) == sorted(aspect_ratios)
    assert card.fps == fps
    assert card.owned_by == owned_by
    for resolution in card.resolutions:
        assert card.pricing is None or card.pricing.covers(resolution)


@pytest.mark.parametrize(
    ("model", "seconds", "resolution", "aspect_ratio", "fps"),
    [
        ("sandbox", 4, "720p", "16:9", 24),
        ("sora-2", 4, "720p", "16:9", 24),
        ("veo-3.1", 8, "720p", "16:9", 24),
        ("kling-2.0", 5, "720p", "16:9", 24),
        ("luma-ray-2", 5, "720p", "16:9", 24),
        # Left out of the card: the allowed value nearest 5 s, and 720p.
        ("hailuo-2.3", 6, "720p", "16:9", 24),
    ],
)
def test_builtin_defaults(
    model: str, seconds: int, resolution: str, aspect_ratio: str, fps: int
) -> None:
    card = CATALOG.get(model)
    assert (
        card.default_seconds,
        card.default_resolution,
        card.default_aspect_ratio,
        card.default_fps,
    ) == (seconds, resolution, aspect_ratio, fps)


@pytest.mark.parametrize(
    ("model", "remix", "extend", "text", "image", "last_frame"),
    [
        ("sandbox", True, True, True, True, True),
        ("sora-2", True, True, True, True, False),
        ("veo-3.1", False, True, True, True, True),
        # The kling adapter extends, so the card does (it said extend: false).
        ("kling-2.0", False, True, True, True, True),
        ("luma-ray-2", False, True, True, True, True),
        ("hailuo-2.3", False, False, True, True, False),
        # Image-to-video only.
        ("hailuo-2.3-fast", False, False, False, True, False),
        ("runway-gen4-turbo", False, False, False, True, False),
        ("gemini-omni-1.1-flash", True, True, True, True, True),
    ],
)
def test_builtin_capabilities(
    model: str, remix: bool, extend: bool, text: bool, image: bool, last_frame: bool
) -> None:
    card = CATALOG.get(model)
    assert (card.remix, card.extend) == (remix, extend)
    assert (card.text_to_video, card.image_to_video, card.last_frame) == (text, image, last_frame)


def test_builtin_deployments() -> None:
    assert CATALOG.get("sandbox").deployments == [DeploymentRef(provider="sandbox")]
    # Each built-in model names the deployments that can serve it, preferred first.
    kling = CATALOG.get("kling-2.0").deployments
    assert [(d.provider, d.upstream_model) for d in kling] == [
        ("kling", "kling-v2-master"),
        ("fal", "fal-ai/kling-video/v2/master/text-to-video"),
        ("replicate", "kwaivgi/kling-v2.0"),
    ]
    assert kling[0].priority > kling[1].priority
    assert [d.provider for d in CATALOG.get("veo-3.1").deployments] == ["vertex", "runway", "fal"]
    assert [d.upstream_model for d in CATALOG.get("luma-ray-2").deployments] == ["ray-2"]
    assert [d.provider for d in CATALOG.get("sora-2").deployments] == ["openai_videos"]
    assert [d.provider for d in CATALOG.get("hailuo-2.3").deployments] == ["minimax", "replicate"]
    ref = DeploymentRef(provider="sandbox")
    assert (ref.upstream_model, ref.priority, ref.weight) == (None, 0, 1)


# --- lookups -----------------------------------------------------------------------


def test_get_and_contains() -> None:
    assert CATALOG.get("sora-2").id == "sora-2"
    assert "veo-3.1" in CATALOG
    assert "veo-4" not in CATALOG
    assert len(CATALOG) == len(BUILTIN)


def test_unknown_model_lists_known_models() -> None:
    with pytest.raises(ModelNotFound) as info:
        CATALOG.get("sora-3")
    assert info.value.param == "model"
    assert "'sora-3'" in info.value.message
    assert "sandbox, sora-2, veo-3.1, veo-3.1-fast, kling-2.6" in info.value.message
    assert "did you mean 'sora-2'" in info.value.message


def test_unknown_model_list_is_capped() -> None:
    catalog = Catalog(ModelCard.model_validate(card_data(id=f"m{i:02}")) for i in range(15))
    with pytest.raises(ModelNotFound) as info:
        catalog.get("nothing-like-it")
    assert "m00, m01" in info.value.message
    assert "m09, ..." in info.value.message
    assert "m10" not in info.value.message
    assert "did you mean" not in info.value.message


def test_duplicate_ids_rejected() -> None:
    card = ModelCard.model_validate(card_data())
    with pytest.raises(ValueError, match="twice"):
        Catalog([card, card])


def test_canonical_resolution() -> None:
    assert canonical_resolution("720P") == "720p"
    assert canonical_resolution(" 1080p ") == "1080p"
    assert canonical_resolution("4k") == "4K"
    assert canonical_resolution("2160p") == "4K"
    assert canonical_resolution("8K") is None
    assert canonical_resolution("720") is None


# --- DurationRule --------------------------------------------------------------------


def test_duration_rule_allowed() -> None:
    rule = DurationRule(allowed=[10, 5, 5])
    assert rule.allowed == [5, 10]
    assert [s for s in range(12) if rule.check(s)] == [5, 10]
    assert rule.describe() == "5, 10"
    assert rule.describe(up_to=7) == "5"
    assert rule.describe(up_to=4) == ""
    assert (rule.minimum, rule.maximum) == (5, 10)


def test_duration_rule_range() -> None:
    rule = DurationRule.model_validate({"min": 1, "max": 60})
    assert not rule.check(0)
    assert rule.check(1)
    assert rule.check(60)
    assert not rule.check(61)
    assert rule.describe() == "1-60"
    assert rule.describe(up_to=8) == "1-8"
    assert rule.describe(up_to=1) == "1"
    assert rule.describe(up_to=0) == ""
    assert DurationRule.model_validate({"min": 4, "max": 4}).describe() == "4"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({}, "needs 'allowed'"),
        ({"min": 1}, "needs 'allowed'"),
        ({"allowed": [5], "max": 10}, "not both"),
        ({"allowed": []}, "positive"),
        ({"allowed": [0, 5]}, "positive"),
        ({"min": 0, "max": 5}, "not positive"),
        ({"min": 6, "max": 5}, "empty"),
        ({"between": [1, 5]}, "Extra inputs"),
    ],
)
def test_duration_rule_invalid(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        DurationRule.model_validate(data)


# --- ModelCard validation ------------------------------------------------------------


def test_card_defaults() -> None:
    card = ModelCard.model_validate(card_data())
    assert (card.max_n, card.max_prompt_chars, card.description) == (4, 4000, "")
    assert (card.text_to_video, card.image_to_video, card.remix, card.extend) == (
        True,
        False,
        False,
        False,
    )
    assert card.deployments == []
    assert card.kinds == ["generate"]
    assert CATALOG.get("sora-2").kinds == ["generate", "remix", "extend"]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"default_seconds": 11}, "default_seconds 11 is outside durations 1-10"),
        ({"default_resolution": "480p"}, "default_resolution 480p is not one of 720p, 1080p"),
        ({"default_aspect_ratio": "1:1"}, "default_aspect_ratio 1:1 is not one of 16:9, 9:16"),
        ({"default_fps": 30}, "default_fps 30 is not one of 24"),
        (
            {"pricing": {"points": {"720p": [[5, 0.1]]}}},
            "no price for resolution\\(s\\) 1080p",
        ),
        ({"resolutions": ["720p", "1080P"]}, "unknown resolution '1080P'"),
        ({"resolutions": ["720p", "720p"]}, "more than once"),
        ({"resolutions": []}, "at least 1 item"),
        ({"aspect_ratios": ["16:9", "wide"]}, "not of the form 'W:H'"),
        ({"aspect_ratios": ["16:9", 969]}, "quoted string"),
        ({"default_aspect_ratio": 969}, "quoted string"),
        ({"fps": [24, 0]}, "positive"),
        ({"max_n": 0}, "greater than or equal to 1"),
        ({"colour": "blue"}, "Extra inputs"),
    ],
)
def test_card_invalid(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ModelCard.model_validate(card_data(**changes))


# --- operator overrides --------------------------------------------------------------


def test_no_override_and_empty_override(tmp_path: Path) -> None:
    assert load_catalog(None).models() == CATALOG.models()
    assert load_catalog(write(tmp_path, "")).models() == CATALOG.models()
    assert load_catalog(write(tmp_path, "models: {}\n")).models() == CATALOG.models()


def test_override_changes_only_a_price(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  kling-2.0:
    pricing:
      points:
        "720p": [[5, 0.25], [10, 0.45]]
""",
    )
    catalog = load_catalog(path)
    card = catalog.get("kling-2.0")
    assert card.estimate("720p", 8) == Decimal("0.37")
    # Untouched prices and every other setting keep their built-in values.
    assert card.estimate("1080p", 5) == Decimal("0.075")
    assert card.model_dump(exclude={"pricing"}) == CATALOG.get("kling-2.0").model_dump(
        exclude={"pricing"}
    )
    assert [c.id for c in catalog.models()] == [c.id for c in CATALOG.models()]
    assert catalog.get("veo-3.1") == CATALOG.get("veo-3.1")


def test_override_changes_only_durations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  sora-2:
    durations: {allowed: [4, 8, 12]}
""",
    )
    card = load_catalog(path).get("sora-2")
    # durations is replaced whole: the built-in min/max must not leak into the new form.
    assert card.durations == DurationRule(allowed=[4, 8, 12])
    assert card.pricing == CATALOG.get("sora-2").pricing


def test_override_null_deletes_a_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  kling-2.0:
    pricing:
      points: {"720p": null}
      per_second: {"720p": 0.03}
""",
    )
    pricing = load_catalog(path).get("kling-2.0").pricing
    assert pricing is not None and "720p" not in pricing.points
    assert pricing.estimate("720p", 10) == Decimal("0.30")
    assert pricing.estimate("1080p", 10) == Decimal("0.15")


def test_override_adds_a_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  house-model:
    description: Our own.
    owned_by: acme
    durations: {allowed: [3, 6]}
    resolutions: ["720p"]
    aspect_ratios: ["1:1"]
    fps: [30]
    default_seconds: 3
    default_resolution: "720p"
    default_aspect_ratio: "1:1"
    default_fps: 30
    pricing: {per_second: {"720p": 0.01}}
    deployments:
      - {provider: acme-cloud, upstream_model: hm-1, priority: 2, weight: 3}
""",
    )
    catalog = load_catalog(path)
    assert [c.id for c in catalog.models()][-1] == "house-model"
    assert len(catalog) == len(BUILTIN) + 1
    card = catalog.get("house-model")
    assert card.owned_by == "acme"
    assert card.durations.describe() == "3, 6"
    assert card.estimate("720p", 6) == Decimal("0.06")
    assert card.deployments == [
        DeploymentRef(provider="acme-cloud", upstream_model="hm-1", priority=2, weight=3)
    ]


def test_override_removes_models(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, "remove: [kling-2.0, luma-ray-2]\n"))
    assert [c.id for c in catalog.models()][:3] == ["sandbox", "sora-2", "veo-3.1"]
    assert "kling-2.0" not in catalog and "luma-ray-2" not in catalog
    with pytest.raises(ModelNotFound):
        catalog.get("kling-2.0")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        # A merged model that no longer validates names the file, the model and the field.
        (
            "models:\n  sora-2:\n    default_seconds: 90\n",
            ["model 'sora-2' is invalid", "default_seconds 90 is outside durations 4, 8, 12"],
        ),
        (
            "models:\n  veo-3:\n    resolutions: ['720p', '1080p', '4K', '480p']\n",
            # An override of an alias changes its card.
            ["model 'veo-3.1'", "no price for resolution(s) 480p"],
        ),
        (
            "models:\n  sora-2:\n    aspect_ratios: [16:9]\n",
            ["model 'sora-2'", "aspect_ratios: ", "quoted string"],
        ),
        (
            "models:\n  kling-2.0:\n    pricing:\n      per_second: {'720p': 0.1}\n",
            ["model 'kling-2.0'", "both points and per_second"],
        ),
        (
            "models:\n  sora-2:\n    speed: fast\n",
            ["models.yaml:3: model 'sora-2'", "speed: unknown key; accepted: description,"],
        ),
        (
            "models:\n  new-one:\n    durations: {min: 0, max: 3}\n",
            ["model 'new-one'", "durations: ", "empty or not positive"],
        ),
        # Never more than the deployments take.
        (
            "models:\n  kling-2.6:\n    durations: {allowed: [5, 10, 15]}\n",
            [
                "model 'kling-2.6' is invalid: it claims more than its deployments' upstream "
                "models take: durations 15 s (its deployments take 5, 10 s)",
                "leave the key out (null in an override)",
            ],
        ),
        (
            "models:\n  new-one:\n    deployments: [{provider: luma, upstream_model: ray-9}]\n",
            ["model 'new-one'", "upstream_model 'ray-9' is not a model the luma adapter takes"],
        ),
        ("models:\n  sora-2:\n    id: sora-3\n", ["model 'sora-2' has a different id"]),
        ("models:\n  sora-2: null\n", ["model 'sora-2' must be a mapping"]),
        ("models: [sora-2]\n", ["'models' must be a mapping"]),
        ("remove: [sora-3]\n", ["cannot remove unknown model 'sora-3'"]),
        ("remove: sora-2\n", ["'remove' must be a list"]),
        (
            "models:\n  sora-2: {max_n: 2}\nremove: [sora-2]\n",
            ["model 'sora-2' is both in models and in remove"],
        ),
        ("model:\n  sora-2: {max_n: 2}\n", ["unknown top-level key(s) model"]),
        ("- sora-2\n", ["must be a mapping"]),
        ("models: {sora-2: [\n", ["is not valid YAML"]),
    ],
)
def test_invalid_override(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_catalog(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_override_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ValueError, match="cannot read") as info:
        load_catalog(path)
    assert str(path) in str(info.value)


def test_price_table_of_builtin_is_a_price_table() -> None:
    assert isinstance(CATALOG.get("sandbox").pricing, PriceTable)
    assert CATALOG.get("sandbox").pricing.default_per_second == 0


# --- aliases -------------------------------------------------------------------------


def test_an_alias_names_its_card() -> None:
    assert CATALOG.get("veo-3") is CATALOG.get("veo-3.1")
    assert CATALOG.get("gemini-omni-flash") is CATALOG.get("gemini-omni-1.1-flash")
    assert "veo-3" in CATALOG and "veo-3" not in [c.id for c in CATALOG.models()]
    # Still served by their providers: cards of their own.
    for model in ("sora-2", "kling-2.0", "luma-ray-2"):
        assert CATALOG.get(model).id == model


def test_an_alias_may_not_take_a_name_in_use() -> None:
    one = ModelCard.model_validate(card_data(id="one", aliases=["two"]))
    with pytest.raises(ValueError, match="alias 'two' of model 'one' is already a model"):
        Catalog([ModelCard.model_validate(card_data(id="two")), one])
    other = ModelCard.model_validate(card_data(id="other", aliases=["two"]))
    with pytest.raises(ValueError, match="already an alias of 'one'"):
        Catalog([one, other])


def test_an_override_reaches_a_card_through_its_alias(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, "models:\n  veo-3:\n    max_n: 2\n"))
    assert catalog.get("veo-3.1").max_n == 2 and "veo-3" in catalog
    assert [c.id for c in catalog.models()] == [c.id for c in CATALOG.models()]
    dropped = load_catalog(write(tmp_path, "remove: [veo-3]\n"))
    assert "veo-3" not in dropped and dropped.get("veo-3.1").aliases == []
    added = load_catalog(write(tmp_path, "models:\n  kling-2.6:\n    aliases: [kling]\n"))
    assert added.get("kling").id == "kling-2.6"


def test_the_docs_table_of_built_in_models_matches_the_catalogue() -> None:
    """Docs are contracts: each row of docs/catalogue.md's table says what the card
    does (its durations, resolutions, aspect ratios, n and deployments)."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "catalogue.md").read_text()
    table = text.split("## Built-in models", 1)[1].split("\n\n| Model |", 1)[1]
    rows = [line for line in table.split("\n\n", 1)[0].splitlines() if line.startswith("| `")]
    assert len(rows) >= 10
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        card = CATALOG.get(cells[0].strip("`"))
        assert card.id == cells[0].strip("`")
        if card.id == "sandbox":
            continue
        assert cells[1] == ", ".join(f"`{a}`" for a in card.aliases), card.id
        deployments = ", ".join(f"{d.provider}: `{d.upstream_model}`" for d in card.deployments)
        assert cells[2] == deployments, card.id
        assert cells[3].split(" (")[0] == card.durations.describe(), card.id
        assert cells[4] == ", ".join(card.resolutions), card.id
        ratios = cells[5].split(" (")[0].removesuffix(" from text")
        if ratios == "as 2.0":
            ratios = "16:9, 9:16, 1:1, 4:3, 3:4, 21:9"
        assert sorted(ratios.split(", ")) == sorted(card.aspect_ratios), card.id
        assert cells[7] == str(card.max_n), card.id
        assert (cells[8] == "none") == (card.pricing is None), card.id
