"""A card's public limits are what its deployments' upstream models take, never more."""

from pathlib import Path
from typing import Any

import pytest

from vidgate.core.capabilities import Capabilities, CapabilityTable, ModelEntry
from vidgate.core.card_limits import DeploymentRef, derive, union_of
from vidgate.core.catalog import ModelCard, load_catalog
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef, VideoRequest, normalize

CATALOG = load_catalog()
IMAGE = ImageRef(sha256="a" * 64, width=1280, height=720, content_type="image/png")


def _source(card: ModelCard) -> SourceRef:
    return SourceRef(
        video_id="video_1",
        sha256="b" * 64,
        seconds=card.durations.minimum,
        width=1280,
        height=720,
        fps=card.default_fps,
    )


def _requests(card: ModelCard) -> list[tuple[str, dict[str, Any]]]:
    """One request per value of every limit the card shows, the rest at its defaults."""
    image: dict[str, Any] = {} if card.text_to_video else {"image": IMAGE}
    seconds = (
        card.durations.allowed
        if card.durations.allowed is not None
        else range(card.durations.minimum, card.durations.maximum + 1)
    )
    found: list[tuple[str, dict[str, Any]]] = []
    found += [(f"seconds {s}", {**image, "seconds": s}) for s in seconds]
    found += [(f"resolution {r}", {**image, "resolution": r}) for r in card.resolutions]
    found += [(f"aspect_ratio {a}", {**image, "aspect_ratio": a}) for a in card.aspect_ratios]
    found += [(f"fps {f}", {**image, "fps": f}) for f in card.fps]
    found.append((f"n {card.max_n}", {**image, "n": card.max_n}))
    if card.text_to_video:
        found.append(("text to video", {}))
    if card.image_to_video:
        found.append(("image to video", {"image": IMAGE}))
    if card.last_frame:
        found.append(("last frame", {"image": IMAGE, "last_frame": IMAGE}))
    if card.max_reference_images:
        refs = [IMAGE] * card.max_reference_images
        found.append(("reference images", {"reference_images": refs}))
    for kind in ("remix", "extend"):
        if getattr(card, kind):
            found.append((kind, {"kind": kind, "source": _source(card)}))
    return found


def _served(card: ModelCard, spec: JobSpec) -> list[str]:
    """Why each deployment refuses ``spec``; empty when one takes it."""
    refusals = []
    for ref in card.deployments:
        try:
            CATALOG.upstreams.check(spec, ref.provider, ref.upstream_model or "", ref.provider)
        except InvalidParameter as exc:
            refusals.append(exc.message)
        else:
            return []
    return refusals


@pytest.mark.parametrize(
    "card", [c for c in CATALOG.models() if c.id != "sandbox"], ids=lambda c: str(c.id)
)
def test_every_builtin_limit_is_taken_by_a_deployment(card: ModelCard) -> None:
    """Every duration, resolution, aspect ratio, fps, kind, last frame, reference count
    and n a built-in card shows is taken by at least one of its deployments' upstream
    models, by the same check routing runs."""
    assert card.deployments
    for what, fields in _requests(card):
        spec = normalize(VideoRequest(model=card.id, prompt="a fox", **fields), card)
        refusals = _served(card, spec)
        assert not refusals, f"{card.id}: {what} is shown but no deployment takes it: {refusals}"


def _table(**models: dict[str, Any]) -> CapabilityTable:
    return CapabilityTable(
        {
            "acme": [
                ModelEntry(pattern=name, capabilities=Capabilities.model_validate(data))
                for name, data in models.items()
            ]
        }
    )


TABLE = _table(
    narrow={
        "durations": {"allowed": [4, 8]},
        "resolutions": ["720p"],
        "aspect_ratios": ["16:9"],
        "fps": [24],
    },
    wide={
        "kinds": ["generate", "extend"],
        "durations": {"min": 5, "max": 10},
        "resolutions": ["720p", "1080p"],
        "text_aspect_ratios": ["16:9", "1:1"],
        "fps": [24, 30],
        "max_n": 2,
        "last_frame": True,
        "max_reference_images": 2,
    },
    open={},
)


def _card(table: CapabilityTable = TABLE, **data: Any) -> ModelCard:
    return ModelCard.model_validate({**derive(data, table), "id": "m"})


def _on(*models: str) -> list[dict[str, str]]:
    return [{"provider": "acme", "upstream_model": m} for m in models]


def test_a_card_without_limits_takes_the_union_of_its_deployments() -> None:
    card = _card(deployments=_on("narrow", "wide"))
    assert card.durations.describe() == "4-10"
    assert card.resolutions == ["720p", "1080p"]
    # Without aspect_ratios of its own, a model names what it takes from text.
    assert card.aspect_ratios == ["16:9", "1:1"]
    assert card.fps == [24, 30]
    assert (card.max_n, card.last_frame, card.max_reference_images) == (2, True, 2)
    assert (card.remix, card.extend, card.text_to_video, card.image_to_video) == (
        False,
        True,
        True,
        True,
    )
    assert (card.default_seconds, card.default_resolution, card.default_fps) == (5, "720p", 24)
    assert card.owned_by == "acme" and card.pricing is None


def test_one_deployment_gives_its_own_limits() -> None:
    card = _card(deployments=_on("narrow"))
    assert card.durations.describe() == "4, 8"
    # The allowed value nearest 5 s; ties go to the shorter.
    assert card.default_seconds == 4
    assert (card.max_n, card.extend, card.last_frame) == (1, False, False)


@pytest.mark.parametrize(
    ("declared", "fragment"),
    [
        ({"durations": {"min": 1, "max": 30}}, "durations 1, 2, 3, 11, 12, 13,"),
        ({"resolutions": ["720p", "4K"]}, "resolutions 4K (its deployments take 720p, 1080p)"),
        ({"aspect_ratios": ["16:9", "9:16"]}, "aspect_ratios 9:16"),
        ({"fps": [24, 60]}, "fps 60"),
        ({"max_n": 4}, "max_n 4 (its deployments take at most 2)"),
        ({"remix": True}, "remix true"),
    ],
)
def test_a_card_claiming_more_is_refused(declared: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match="claims more than its deployments") as info:
        derive({**declared, "deployments": _on("narrow", "wide")}, TABLE)
    assert fragment in str(info.value)


def test_a_card_may_offer_less() -> None:
    card = _card(resolutions=["1080p"], max_n=1, deployments=_on("narrow", "wide"))
    assert (card.resolutions, card.default_resolution, card.max_n) == (["1080p"], "1080p", 1)


def test_what_the_data_leaves_open_is_declared_or_plain() -> None:
    # "open" says nothing: the declared limits stand, and what is left out is the plain
    # default (5 s, 720p, 16:9, 24 fps, one video).
    plain = _card(deployments=_on("open"))
    assert (plain.durations.describe(), plain.resolutions, plain.aspect_ratios) == (
        "5",
        ["720p"],
        ["16:9"],
    )
    assert (plain.fps, plain.max_n) == ([24], 1)
    declared = _card(durations={"min": 1, "max": 20}, deployments=_on("open"))
    assert declared.durations.describe() == "1-20"
    # A list one deployment leaves open is open in the union.
    mixed = _card(resolutions=["480p", "4K"], deployments=_on("narrow", "open"))
    assert mixed.resolutions == ["480p", "4K"]


def test_unknown_upstream_model_is_refused() -> None:
    table = _table(only={})
    with pytest.raises(ValueError, match="upstream_model 'other' is not a model the acme"):
        derive({"deployments": _on("other")}, table)


def test_union_of_nothing_is_none() -> None:
    assert union_of([]) is None
    assert DeploymentRef(provider="x").weight == 1


def test_minimal_operator_card_end_to_end_of_loading(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  my-kling:\n"
        "    deployments: [{provider: fal, upstream_model: fal-ai/kling-video/v2/master/"
        "image-to-video}]\n",
        encoding="utf-8",
    )
    card = load_catalog(path).get("my-kling")
    assert card.durations.describe() == "5, 10"
    assert (card.text_to_video, card.image_to_video, card.last_frame) == (False, True, True)
    assert card.aspect_ratios == ["16:9", "9:16", "1:1"]
    assert card.estimate("720p", 5) is None


def test_a_card_naming_a_deployment_is_tied_to_its_adapter(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "deployments:\n"
        "  kling-eu: {provider: kling, credentials: {access_key: a, secret_key: b}}\n"
        "models:\n"
        "  eu-kling:\n"
        "    deployments: [{provider: kling-eu, upstream_model: kling-v2-6}]\n"
        "  eu-long:\n"
        "    durations: {allowed: [5, 20]}\n"
        "    deployments: [{provider: kling-eu, upstream_model: kling-v2-6}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="model 'eu-long' is invalid: it claims more"):
        load_catalog(path)
    path.write_text(path.read_text().split("  eu-long:")[0], encoding="utf-8")
    card = load_catalog(path).get("eu-kling")
    assert (card.durations.describe(), card.extend, card.max_prompt_chars) == ("5, 10", True, 2500)
