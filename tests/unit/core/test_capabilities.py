"""The catalogue's per-upstream-model capability data and the one check against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vidgate.config import Settings
from vidgate.core.capabilities import Capabilities, CapabilityTable, ModelEntry, check
from vidgate.core.catalog import builtin_upstreams, load_catalog
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef, dimensions
from vidgate.engine.routing import check_before_submit
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError
from vidgate.providers.kling import create as create_kling
from vidgate.providers.registry import ADAPTERS

_IMAGE = ImageRef(sha256="a" * 64, width=640, height=360, content_type="image/png")
_SOURCE = SourceRef(video_id="v", sha256="0" * 64, seconds=5, width=1280, height=720, fps=24)


def spec(**changes: Any) -> JobSpec:
    data: dict[str, Any] = {
        "model": "m",
        "kind": "generate",
        "prompt": "a fox",
        "negative_prompt": None,
        "seconds": 5,
        "width": 1280,
        "height": 720,
        "resolution": "720p",
        "aspect_ratio": "16:9",
        "fps": 24,
        "n": 1,
        "seed": None,
        "metadata": {},
        "image": None,
        "source": None,
    }
    data.update(changes)
    return JobSpec(**data)


def refusal(job: JobSpec, caps: Capabilities) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as caught:
        check(job, caps, "up model")
    assert caught.value.message.startswith("up model: ")
    return caught.value


def test_every_adapter_has_capability_data() -> None:
    table = builtin_upstreams()
    for adapter in ADAPTERS:
        assert table.patterns(adapter), adapter


def test_an_empty_block_allows_a_plain_generation_and_nothing_optional() -> None:
    caps = Capabilities()
    check(spec(seconds=13, fps=60, seed=3, negative_prompt="x", image=_IMAGE), caps, "w")
    assert refusal(spec(kind="remix", source=_SOURCE), caps).param == "video"
    assert refusal(spec(n=2), caps).param == "n"
    assert refusal(spec(image=_IMAGE, last_frame=_IMAGE), caps).param == "last_frame"
    assert refusal(spec(reference_images=(_IMAGE,)), caps).param == "reference_images"


@pytest.mark.parametrize(
    ("fields", "changes", "param", "words"),
    [
        ({"durations": {"allowed": [5, 10]}}, {"seconds": 7}, "seconds", "allowed: 5, 10"),
        ({"resolutions": ["720p"]}, {"resolution": "1080p"}, "resolution", "allowed: 720p"),
        ({"aspect_ratios": ["16:9"]}, {"aspect_ratio": "1:1"}, "aspect_ratio", "allowed: 16:9"),
        ({"text_aspect_ratios": ["16:9"]}, {"aspect_ratio": "1:1"}, "aspect_ratio", "from text"),
        ({"fps": [24]}, {"fps": 30}, "fps", "allowed: 24"),
        ({"seed": False}, {"seed": 1}, "seed", "allowed: none"),
        ({"max_prompt_chars": 3}, {"prompt": "long"}, "prompt", "at most 3 characters"),
        ({"durations_at": {"1080p": {"allowed": [6]}}}, {"resolution": "1080p", "seconds": 10},
         "seconds", "1080p videos cannot last 10 s; allowed: 6"),
        ({"text_to_video": False}, {}, "image", "a first frame is needed"),
        ({"image_to_video": False}, {"image": _IMAGE}, "image", "image-to-video model"),
        ({"image_types": ["image/jpeg"]}, {"image": _IMAGE}, "image", "allowed: image/jpeg"),
        ({"image_min_side": 400}, {"image": _IMAGE}, "image", "at least 400 px"),
        ({"image_aspect": [0.5, 1.5]}, {"image": _IMAGE}, "image", "width/height 0.5-1.5"),
        ({"last_frame": True}, {"last_frame": _IMAGE}, "last_frame", "image with last_frame"),
        ({"max_reference_images": 1}, {"reference_images": (_IMAGE, _IMAGE)},
         "reference_images", "allowed: 0-1"),
        ({"max_reference_images": 3, "references_alone": True},
         {"image": _IMAGE, "reference_images": (_IMAGE,)}, "reference_images",
         "cannot be combined with a first frame (image)"),
        ({"kinds": ["generate", "extend"], "extend_durations": {"allowed": [5]}},
         {"kind": "extend", "source": _SOURCE, "seconds": 10}, "seconds",
         "an extension cannot add 10 s; allowed: 5"),
        ({"kinds": ["generate", "extend"], "max_total_seconds": 8},
         {"kind": "extend", "source": _SOURCE, "seconds": 5}, "seconds",
         "allowed: up to 3 more seconds"),
    ],
)  # fmt: skip
def test_each_field_refuses_with_its_param(
    fields: dict[str, Any], changes: dict[str, Any], param: str, words: str
) -> None:
    caught = refusal(spec(**changes), Capabilities.model_validate(fields))
    assert caught.param == param and words in caught.message


def test_patterns_are_tried_in_order_and_refusals_name_the_models_that_would_do() -> None:
    pro = Capabilities(last_frame=True)
    table = CapabilityTable(
        {
            "x": [
                ModelEntry(pattern="pro-*", capabilities=pro),
                ModelEntry(pattern="*", capabilities=Capabilities()),
            ]
        }
    )
    assert table.lookup("x", "pro-2") is pro
    assert table.lookup("y", "pro-2") is None
    table.check(spec(image=_IMAGE, last_frame=_IMAGE), "x", "pro-2", "x pro-2")
    with pytest.raises(InvalidParameter, match=r"models that do: pro-\*$"):
        table.check(spec(image=_IMAGE, last_frame=_IMAGE), "x", "lite", "x lite")
    only_pro = CapabilityTable({"x": [ModelEntry(pattern="pro-*", capabilities=pro)]})
    with pytest.raises(InvalidParameter, match=r"'lite' is not supported here; allowed: pro-\*"):
        only_pro.require("x", "lite", "x")


def test_an_operator_file_adds_and_replaces_upstream_models(tmp_path: Path) -> None:
    models_file = tmp_path / "models.yaml"
    models_file.write_text(
        "upstreams:\n"
        "  kling:\n"
        '    "kling-v9": {kinds: [generate], durations: {allowed: [7]}}\n'
        '    "*": {durations: {allowed: [5]}}\n',
        encoding="utf-8",
    )
    table = load_catalog(models_file).upstreams
    v9, other = table.lookup("kling", "kling-v9"), table.lookup("kling", "kling-v2-master")
    assert v9 is not None and v9.durations is not None and v9.durations.allowed == [7]
    # The operator's "*" replaced the built-in one where it stands: last, after kling-v3*.
    assert other is not None and other.durations is not None and other.durations.allowed == [5]
    assert table.patterns("kling") == ["kling-v9", "kling-v3*", "kling-v1-5", "kling-v2-1", "*"]
    v3 = table.lookup("kling", "kling-v3")
    assert v3 is not None and v3.durations is not None and v3.durations.describe() == "3-15"
    assert table.lookup("luma", "ray-2") == builtin_upstreams().lookup("luma", "ray-2")


def test_an_invalid_capability_block_names_where(tmp_path: Path) -> None:
    models_file = tmp_path / "models.yaml"
    models_file.write_text('upstreams: {kling: {"k": {fps: [24], frame_rate: 24}}}\n')
    with pytest.raises(ValueError, match=r"upstreams.kling model 'k' is invalid: frame_rate"):
        load_catalog(models_file)


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ('{resolutions: ["720P"]}', "resolutions: Value error, unknown resolution '720P'"),
        ("{aspect_ratios: [16:9]}", "got the number 969"),
        ('{text_aspect_ratios: ["16/9"]}', "is not of the form 'W:H'"),
        ('{durations_at: {"1080": {allowed: [6]}}}', "unknown resolution '1080'"),
    ],
)
def test_frame_names_are_checked_like_a_cards(tmp_path: Path, block: str, words: str) -> None:
    models_file = tmp_path / "models.yaml"
    models_file.write_text(f'upstreams: {{fal: {{"a/b": {block}}}}}\n')
    with pytest.raises(ValueError) as caught:
        load_catalog(models_file)
    assert "upstreams.fal model 'a/b' is invalid" in str(caught.value)
    assert words.replace("Value error, ", "") in str(caught.value)


def test_adapters_check_against_the_table_they_are_given(tmp_path: Path) -> None:
    """An operator's data reaches the adapter: ProviderDeps carries the catalogue's."""
    models_file = tmp_path / "models.yaml"
    models_file.write_text('upstreams: {kling: {"kling-v9": {durations: {allowed: [7]}}}}\n')
    deps = ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"),
        settings=Settings(data_dir=tmp_path),
        capabilities=load_catalog(models_file).upstreams,
    )
    config = DeploymentConfig(
        name="k", provider="kling", credentials={"access_key": "a", "secret_key": "s"}
    )
    adapter = create_kling(config, deps)
    adapter.validate(spec(seconds=7), "kling-v9")
    with pytest.raises(InvalidParameter, match="allowed: 5, 10"):
        adapter.validate(spec(seconds=7), "kling-v2-master")


def test_a_kind_the_model_does_not_take_never_reaches_submit(tmp_path: Path) -> None:
    """The runner's check before submit refuses it with a final error (Kling's submit
    itself would build a text2video request from a remix)."""
    deps = ProviderDeps(blobs=LocalBlobStore(tmp_path / "b"), settings=Settings(data_dir=tmp_path))
    config = DeploymentConfig(
        name="k", provider="kling", credentials={"access_key": "a", "secret_key": "s"}
    )
    remix = spec(kind="remix", source=_SOURCE)
    with pytest.raises(ProviderError) as caught:
        check_before_submit(create_kling(config, deps), remix, None)
    assert caught.value.code == "invalid_parameter" and not caught.value.retryable
    assert "remix is not supported" in caught.value.message


def test_sizes_are_exact_frames_and_refused_by_name() -> None:
    caps = Capabilities(sizes=["1280x720", "720x1280"], resolutions=["720p"])
    check(spec(), caps, "up model")
    check(spec(width=720, height=1280, aspect_ratio="9:16"), caps, "up model")
    # Checked before the resolution: "size" names what an OpenAI-shape client sent.
    error = refusal(spec(width=1920, height=1080, resolution="1080p"), caps)
    assert error.param == "size" and "allowed: 1280x720, 720x1280" in error.message
    assert refusal(spec(width=1276), caps).param == "size"
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        Capabilities(sizes=["1280*720"])


def test_image_types_default_to_the_web_types_and_bridged_types_count_as_taken() -> None:
    bmp = _IMAGE.model_copy(update={"content_type": "image/bmp"})
    gif = _IMAGE.model_copy(update={"content_type": "image/gif"})
    error = refusal(spec(image=bmp), Capabilities())
    assert (
        error.param == "image" and "image/png, image/jpeg, image/webp, image/gif" in error.message
    )
    check(spec(image=gif), Capabilities(), "up model")
    check(spec(image=bmp), Capabilities(), "up model", bridged_types=["image/bmp"])
    veo = Capabilities(image_types=["image/jpeg", "image/png"], last_frame=True)
    assert refusal(spec(image=_IMAGE, last_frame=gif), veo).param == "last_frame"
    check(spec(image=_IMAGE, last_frame=gif), veo, "up model", bridged_types=["image/gif"])


def test_the_sora_2_card_offers_only_what_its_upstream_takes() -> None:
    catalog = load_catalog()
    card = catalog.get("sora-2")
    caps = catalog.upstreams.lookup("openai_videos", "sora-2")
    assert caps is not None
    seconds = card.durations.allowed or []
    assert seconds == [4, 8, 12]
    for resolution in card.resolutions:
        for ratio in card.aspect_ratios:
            width, height = dimensions(resolution, ratio)
            for fps in card.fps:
                for s in seconds:
                    job = spec(seconds=s, width=width, height=height, resolution=resolution,
                               aspect_ratio=ratio, fps=fps)  # fmt: skip
                    check(job, caps, "sora-2")
    assert card.max_n == caps.max_n == 1
    assert not caps.seed and not caps.negative_prompt
