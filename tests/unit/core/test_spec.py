from typing import Any

import pytest
from pydantic import ValidationError

from vidgate.core.catalog import RESOLUTION_SHORT_SIDES, ModelCard, load_catalog
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import (
    ImageRef,
    JobSpec,
    SourceRef,
    VideoRequest,
    dimensions,
    normalize,
)

CATALOG = load_catalog()
SANDBOX = CATALOG.get("sandbox")


def _fixed(model_id: str, **data: Any) -> ModelCard:
    """A card with fixed limits (those of the catalogue before issue 12), so that these
    tests of the request checks do not move with the built-in catalogue's data."""
    base: dict[str, Any] = {
        "owned_by": "tests",
        "fps": [24],
        "default_resolution": "720p",
        "default_aspect_ratio": "16:9",
        "default_fps": 24,
        "max_n": 4,
        "image_to_video": True,
        "pricing": {"default_per_second": 0.01},
    }
    return ModelCard.model_validate({**base, **data, "id": model_id})


SORA = _fixed(
    "sora-2",
    durations={"min": 1, "max": 60},
    resolutions=["480p", "720p", "1080p"],
    aspect_ratios=["16:9", "9:16", "1:1"],
    fps=[24, 30],
    default_seconds=4,
    remix=True,
    extend=True,
    max_total_seconds=60,
)
VEO = _fixed(
    "veo-3",
    durations={"min": 1, "max": 30},
    resolutions=["720p", "1080p", "4K"],
    aspect_ratios=["16:9", "9:16"],
    default_seconds=8,
    last_frame=True,
    max_reference_images=3,
    extend=True,
    max_total_seconds=30,
)
KLING = _fixed(
    "kling-2.0",
    durations={"allowed": [5, 10]},
    resolutions=["720p", "1080p"],
    aspect_ratios=["16:9", "9:16", "1:1"],
    default_seconds=5,
    last_frame=True,
)

IMAGE = ImageRef(sha256="a" * 64, width=1280, height=720, content_type="image/png")

SORA_SIZES = (
    "1280x720, 720x1280, 720x720, 854x480, 480x854, 480x480, 1920x1080, 1080x1920, 1080x1080"
)


def card(**changes: Any) -> ModelCard:
    data: dict[str, Any] = {
        "id": "custom",
        "owned_by": "tests",
        "durations": {"min": 1, "max": 10},
        "resolutions": ["720p"],
        "aspect_ratios": ["16:9", "9:16"],
        "fps": [24],
        "default_seconds": 5,
        "default_resolution": "720p",
        "default_aspect_ratio": "16:9",
        "default_fps": 24,
        "pricing": {"default_per_second": 0},
    }
    data.update(changes)
    return ModelCard.model_validate(data)


def source(**changes: Any) -> SourceRef:
    data: dict[str, Any] = {
        "video_id": "video_src",
        "sha256": "b" * 64,
        "seconds": 8,
        "width": 1280,
        "height": 720,
        "fps": 30,
    }
    data.update(changes)
    return SourceRef.model_validate(data)


def run(model: ModelCard = SORA, **fields: Any) -> JobSpec:
    fields.setdefault("prompt", "a cat on a skateboard")
    return normalize(VideoRequest(model=model.id, **fields), model)


def reject(model: ModelCard, param: str, *fragments: str, **fields: Any) -> str:
    with pytest.raises(InvalidParameter) as info:
        run(model, **fields)
    error = info.value
    assert error.param == param
    assert "allowed: " in error.message
    for fragment in fragments:
        assert fragment in error.message
    return error.message


# --- dimensions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "aspect_ratio", "size"),
    [
        ("480p", "16:9", (854, 480)),
        ("720p", "9:16", (720, 1280)),
        ("720p", "1:1", (720, 720)),
        ("720p", "21:9", (1680, 720)),
        ("4K", "16:9", (3840, 2160)),
        ("4k", "16:9", (3840, 2160)),
        ("2160p", "9:16", (2160, 3840)),
        ("1080p", "16:9", (1920, 1080)),
        ("1080p", "9:21", (1080, 2520)),
        ("720p", "4:3", (960, 720)),
        ("720p", "3:4", (720, 960)),
        ("540p", "9:16", (540, 960)),
        ("360p", "16:9", (640, 360)),
        ("240p", "16:9", (426, 240)),
        ("480p", "9:16", (480, 854)),
    ],
)
def test_dimensions(resolution: str, aspect_ratio: str, size: tuple[int, int]) -> None:
    assert dimensions(resolution, aspect_ratio) == size


def test_dimensions_are_always_even() -> None:
    for resolution in RESOLUTION_SHORT_SIDES:
        for ratio in ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21", "2:1", "5:4"):
            width, height = dimensions(resolution, ratio)
            assert width % 2 == 0
            assert height % 2 == 0
            assert min(width, height) == RESOLUTION_SHORT_SIDES[resolution]


def test_dimensions_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="unknown resolution"):
        dimensions("8K", "16:9")
    with pytest.raises(ValueError, match="W:H"):
        dimensions("720p", "wide")


# --- defaults and the spec itself -------------------------------------------------------


def test_defaults_from_card() -> None:
    spec = run(prompt="  a cat  ")
    assert spec == JobSpec(
        model="sora-2",
        kind="generate",
        prompt="a cat",
        negative_prompt=None,
        seconds=4,
        width=1280,
        height=720,
        resolution="720p",
        aspect_ratio="16:9",
        fps=24,
        n=1,
        seed=None,
        metadata={},
        image=None,
        source=None,
    )
    assert spec.size == "1280x720"
    assert run(VEO).seconds == 8
    assert run(KLING).seconds == 5


def test_spec_is_frozen() -> None:
    spec = run()
    with pytest.raises(ValidationError):
        spec.seconds = 8  # type: ignore[misc]


def test_request_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        VideoRequest.model_validate({"model": "sora-2", "prompt": "x", "duration": 5})


def test_seed_passes_through() -> None:
    assert run(seed=42).seed == 42
    assert run(seed=0).seed == 0
    assert run(seed=2**32 - 1).seed == 2**32 - 1


@pytest.mark.parametrize(
    ("seed", "shown"),
    [(-1, "seed -1"), (2**32, "seed 4294967296"), (True, "seed true"), (10**5000, "128 bits")],
    ids=["negative", "2**32", "bool", "5000 digits"],
)
def test_seed_out_of_range(seed: int, shown: str) -> None:
    """The second line behind the API's check: a negative seed once made every attempt
    of the job fail, a huge one made the tenant's reads fail."""
    reject(SORA, "seed", shown, "allowed: a whole number in 0-4294967295", seed=seed)


@pytest.mark.parametrize(
    ("fields", "param", "fragment"),
    [
        ({"prompt": "a\x00b"}, "prompt", "prompt contains a control character (U+0000)"),
        ({"negative_prompt": "x\x1b"}, "negative_prompt", "(U+001B) at position 1"),
        ({"metadata": {"k\x00": "v"}}, "metadata", "metadata key contains"),
        ({"metadata": {"k": "\x7f"}}, "metadata", "metadata value for 'k' contains"),
        ({"prompt": "x\ud800"}, "prompt", "a lone surrogate (U+D800)"),
    ],
)
def test_stored_text_holds_no_control_characters(
    fields: dict[str, Any], param: str, fragment: str
) -> None:
    reject(SORA, param, fragment, **fields)


def test_prompts_keep_tabs_and_newlines() -> None:
    assert run(prompt="one\n\ttwo\r\n").prompt == "one\n\ttwo"


# --- seconds ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [8, 8.0, "8", " 8 ", "8.0", "+8", "08"])
def test_seconds_accepted_forms(value: object) -> None:
    assert run(seconds=value).seconds == 8


@pytest.mark.parametrize(
    "value", [8.5, "8.5", "abc", "", " ", True, False, 0, -1, "0", "-3", float("nan"), "1e1"]
)
def test_seconds_rejected_forms(value: object) -> None:
    reject(SORA, "seconds", "seconds ", "allowed: 1-60", seconds=value)


def test_seconds_infinite() -> None:
    reject(SORA, "seconds", "allowed: 1-60", seconds=float("inf"))


def test_seconds_huge_string_is_rejected_not_crashed() -> None:
    reject(SORA, "seconds", "allowed: 1-60", seconds="9" * 5000)


def test_seconds_outside_allowed_list() -> None:
    message = reject(KLING, "seconds", seconds=11)
    assert message == "duration 11 is not supported by kling-2.0; allowed: 5, 10"
    reject(KLING, "seconds", "duration 7 ", "allowed: 5, 10", seconds="7")
    assert run(KLING, seconds=10).seconds == 10


def test_seconds_outside_range() -> None:
    reject(SORA, "seconds", "duration 61 is not supported by sora-2; allowed: 1-60", seconds=61)
    reject(VEO, "seconds", "allowed: 1-30", seconds=31)
    assert run(SORA, seconds=60).seconds == 60
    assert run(SORA, seconds=1).seconds == 1


# --- size -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "resolution", "aspect_ratio"),
    [
        ("1280x720", "720p", "16:9"),
        ("720x1280", "720p", "9:16"),
        ("720x720", "720p", "1:1"),
        ("854x480", "480p", "16:9"),
        ("480x854", "480p", "9:16"),
        ("1920x1080", "1080p", "16:9"),
        ("1080x1080", "1080p", "1:1"),
        ("1280*720", "720p", "16:9"),
        ("1280X720", "720p", "16:9"),
        (" 1280 x 720 ", "720p", "16:9"),
    ],
)
def test_size_derives_resolution_and_aspect_ratio(
    size: str, resolution: str, aspect_ratio: str
) -> None:
    spec = run(size=size)
    assert (spec.resolution, spec.aspect_ratio) == (resolution, aspect_ratio)
    assert spec.size == size.strip().replace(" ", "").replace("*", "x").replace("X", "x")


def test_size_ratio_tolerance_is_one_percent() -> None:
    # 1276/720 is 0.3% off 16:9; 1296/720 is 1.25% off.
    spec = run(size="1276x720")
    assert (spec.aspect_ratio, spec.width, spec.height) == ("16:9", 1276, 720)
    reject(SORA, "size", "size 1296x720 is not supported", size="1296x720")


@pytest.mark.parametrize("size", ["1281x720", "1280x721", "0x720", "1280x0"])
def test_size_must_be_even_and_positive(size: str) -> None:
    reject(SORA, "size", "even, positive", f"allowed: {SORA_SIZES}", size=size)


@pytest.mark.parametrize("size", ["abc", "1280x", "1280x720x3", "-1280x720", "1280.0x720", ""])
def test_size_malformed(size: str) -> None:
    reject(SORA, "size", "WIDTHxHEIGHT", f"allowed: {SORA_SIZES}", size=size)


@pytest.mark.parametrize(
    "size",
    [
        "1024x576",  # short side is not one of the model's resolutions
        "1792x1024",
        "960x720",  # 4:3 is not offered by sora-2
        "3840x2160",  # 4K is not offered by sora-2
        "1680x720",
    ],
)
def test_size_not_offered(size: str) -> None:
    message = reject(SORA, "size", f"size {size} is not supported by sora-2", size=size)
    # The default resolution's sizes lead the list.
    assert message.endswith(f"allowed: {SORA_SIZES}")


def test_size_list_for_a_model_with_4k() -> None:
    reject(
        VEO,
        "size",
        "allowed: 1280x720, 720x1280, 1920x1080, 1080x1920, 3840x2160, 2160x3840",
        size="640x360",
    )


def test_size_agreeing_with_resolution_and_aspect_ratio() -> None:
    spec = run(size="720x1280", resolution="720P", aspect_ratio="9:16")
    assert (spec.resolution, spec.aspect_ratio, spec.size) == ("720p", "9:16", "720x1280")


def test_size_disagreeing_with_resolution() -> None:
    reject(
        SORA,
        "size",
        "size 1280x720 is 720p 16:9",
        "1080p",
        "allowed: 1920x1080, 1080x1920, 1080x1080",
        size="1280x720",
        resolution="1080p",
    )


def test_size_disagreeing_with_aspect_ratio() -> None:
    reject(
        SORA,
        "size",
        "allowed: 1280x720, 854x480, 1920x1080",
        size="720x1280",
        aspect_ratio="16:9",
    )


# --- resolution and aspect ratio --------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "value", "resolution", "size"),
    [
        (SORA, "1080p", "1080p", "1920x1080"),
        (SORA, "720P", "720p", "1280x720"),
        (SORA, " 480p ", "480p", "854x480"),
        (VEO, "4k", "4K", "3840x2160"),
        (VEO, "2160p", "4K", "3840x2160"),
        (VEO, "4K", "4K", "3840x2160"),
    ],
)
def test_resolution(model: ModelCard, value: str, resolution: str, size: str) -> None:
    spec = run(model, resolution=value)
    assert (spec.resolution, spec.aspect_ratio, spec.size) == (resolution, "16:9", size)


@pytest.mark.parametrize(("value", "shown"), [("4K", "'4K'"), ("4k", "'4K'"), ("8K", "'8K'")])
def test_resolution_not_offered(value: str, shown: str) -> None:
    message = reject(SORA, "resolution", resolution=value)
    assert message == f"resolution {shown} is not supported by sora-2; allowed: 480p, 720p, 1080p"


def test_aspect_ratio() -> None:
    assert run(aspect_ratio="9:16").size == "720x1280"
    assert run(aspect_ratio=" 1:1 ").size == "720x720"
    spec = run(resolution="1080p", aspect_ratio="9:16")
    assert (spec.width, spec.height) == (1080, 1920)


@pytest.mark.parametrize("value", ["4:3", "16x9", "", "21:9"])
def test_aspect_ratio_not_offered(value: str) -> None:
    reject(
        SORA,
        "aspect_ratio",
        "is not supported by sora-2; allowed: 16:9, 9:16, 1:1",
        aspect_ratio=value,
    )


# --- fps and n --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "fps"), [(30, 30), ("30", 30), ("24.0", 24), (None, 24)])
def test_fps(value: object, fps: int) -> None:
    assert run(fps=value).fps == fps


@pytest.mark.parametrize(("value", "fragment"), [(60, "fps 60 "), ("25", "fps 25 ")])
def test_fps_not_offered(value: object, fragment: str) -> None:
    reject(SORA, "fps", fragment, "allowed: 24, 30", fps=value)


@pytest.mark.parametrize("value", [True, "abc", "24.5", ""])
def test_fps_not_a_number(value: object) -> None:
    reject(SORA, "fps", "fps ", "allowed: 24, 30", fps=value)


def test_sandbox_fps() -> None:
    assert run(SANDBOX, fps=60).fps == 60
    reject(SANDBOX, "fps", "allowed: 8, 12, 16, 24, 25, 30, 60", fps=50)


@pytest.mark.parametrize(("value", "n"), [(None, 1), (1, 1), ("2", 2), (4, 4), ("4", 4)])
def test_n(value: object, n: int) -> None:
    assert run(n=value).n == n


@pytest.mark.parametrize("value", [0, 5, -1, "5", True, False, "two", "1.5"])
def test_n_rejected(value: object) -> None:
    reject(SORA, "n", "n ", "allowed: 1-4", n=value)


def test_n_with_max_one() -> None:
    reject(card(max_n=1), "n", "allowed: 1", n=2)
    assert run(card(max_n=1), n=1).n == 1


# --- prompt, negative prompt and metadata -----------------------------------------------


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_prompt_empty(value: str) -> None:
    reject(SORA, "prompt", "prompt is empty", "allowed: 1-4000 characters", prompt=value)


def test_prompt_length_limit() -> None:
    assert len(run(prompt="x" * 4000).prompt) == 4000
    reject(
        SORA,
        "prompt",
        "prompt is 4001 characters, over the 4000-character limit of sora-2",
        "allowed: 1-4000 characters",
        prompt="x" * 4001,
    )
    assert run(card(max_prompt_chars=10), prompt="  0123456789  ").prompt == "0123456789"
    reject(card(max_prompt_chars=10), "prompt", "allowed: 1-10 characters", prompt="x" * 11)


def test_negative_prompt() -> None:
    assert run(negative_prompt=None).negative_prompt is None
    assert run(negative_prompt="   ").negative_prompt is None
    assert run(negative_prompt=" blur ").negative_prompt == "blur"
    assert run(negative_prompt="x" * 4000).negative_prompt == "x" * 4000
    reject(
        SORA,
        "negative_prompt",
        "negative_prompt is 4001 characters",
        "allowed: 1-4000 characters",
        negative_prompt="x" * 4001,
    )


def test_metadata_limits_accepted() -> None:
    metadata = {f"k{i:02}" + "k" * 61: "v" * 512 for i in range(16)}
    spec = run(metadata=metadata)
    assert spec.metadata == metadata
    metadata.clear()
    assert len(spec.metadata) == 16


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata has 17 keys"),
        ({"k" * 65: "v"}, "is 65 characters"),
        ({"key": "v" * 513}, "metadata value for 'key' is 513 characters"),
    ],
)
def test_metadata_rejected(metadata: dict[str, str], fragment: str) -> None:
    reject(
        SORA,
        "metadata",
        fragment,
        "allowed: at most 16 keys of up to 64 characters, values of up to 512 characters",
        metadata=metadata,
    )


# --- image ------------------------------------------------------------------------------


def test_image_accepted() -> None:
    assert run(image=IMAGE).image == IMAGE


def test_image_not_supported() -> None:
    reject(card(), "image", "an input image is not supported by custom", image=IMAGE)


def test_image_required_by_image_only_model() -> None:
    image_only = card(text_to_video=False, image_to_video=True)
    reject(image_only, "image", "custom needs an input image")
    assert run(image_only, image=IMAGE).image == IMAGE


# --- remix and extend -------------------------------------------------------------------


def test_generate_with_source_rejected() -> None:
    reject(SORA, "video", "only used to remix or extend", source=source())


@pytest.mark.parametrize(
    ("model", "kind", "allowed"),
    [
        (KLING, "remix", "allowed: generate"),
        (KLING, "extend", "allowed: generate"),
        (VEO, "remix", "allowed: generate, extend"),
    ],
)
def test_kind_not_supported(model: ModelCard, kind: str, allowed: str) -> None:
    reject(model, "video", f"{kind} is not supported by {model.id}", allowed, kind=kind)
    reject(model, "video", allowed, kind=kind, source=source(fps=24))


@pytest.mark.parametrize("kind", ["remix", "extend"])
def test_kind_needs_source(kind: str) -> None:
    reject(SORA, "video", f"{kind} needs a completed source video", kind=kind)


def test_remix_inherits_from_source() -> None:
    src = source(seconds=8, width=720, height=1280, fps=30)
    spec = run(kind="remix", source=src)
    assert (spec.kind, spec.seconds, spec.size, spec.resolution, spec.aspect_ratio, spec.fps) == (
        "remix",
        8,
        "720x1280",
        "720p",
        "9:16",
        30,
    )
    assert spec.source == src


def test_remix_overrides_source() -> None:
    src = source(seconds=8, width=720, height=1280, fps=30)
    spec = run(kind="remix", source=src, seconds="4", size="1280x720", fps=24)
    assert (spec.seconds, spec.size, spec.fps) == (4, "1280x720", 24)
    # Given only a resolution, the source's aspect ratio still applies.
    assert run(kind="remix", source=src, resolution="1080p").size == "1080x1920"
    assert run(kind="remix", source=src, aspect_ratio="1:1").size == "720x720"


def test_remix_inherited_values_must_fit_the_model() -> None:
    remixer = card(remix=True)
    reject(
        remixer,
        "seconds",
        "duration 12 (the source video's length) is not supported by custom",
        "allowed: 1-10",
        kind="remix",
        source=source(seconds=12, fps=24),
    )
    reject(
        remixer,
        "fps",
        "fps 30 (the source video's frame rate)",
        "allowed: 24",
        kind="remix",
        source=source(seconds=5),
    )


def test_remix_of_a_size_the_model_does_not_offer() -> None:
    wide = source(width=1680, height=720, fps=24)
    reject(
        SORA,
        "size",
        "source video's size 1680x720",
        "pass a size",
        f"allowed: {SORA_SIZES}",
        kind="remix",
        source=wide,
    )
    assert run(kind="remix", source=wide, size="1280x720").size == "1280x720"
    spec = run(kind="remix", source=wide, resolution="720p", aspect_ratio="1:1")
    assert spec.size == "720x720"


def test_extend_seconds_is_the_extension() -> None:
    src = source(seconds=50, fps=24)
    spec = run(kind="extend", source=src, seconds=8)
    assert (spec.kind, spec.seconds, spec.size, spec.fps) == ("extend", 8, "1280x720", 24)
    # Without seconds the extension is the card's default, not the source's length.
    assert run(kind="extend", source=src).seconds == 4
    assert run(kind="extend", source=source(seconds=56), seconds=4).seconds == 4


def test_extend_total_over_maximum() -> None:
    reject(
        SORA,
        "seconds",
        "to 62 s, over the 60 s maximum of sora-2",
        "allowed: 1-2",
        kind="extend",
        source=source(seconds=58),
        seconds=4,
    )
    reject(
        SORA,
        "seconds",
        "allowed: none",
        kind="extend",
        source=source(seconds=60),
        seconds=1,
    )


def test_extend_seconds_must_fit_the_rule_itself() -> None:
    reject(VEO, "seconds", "allowed: 1-30", kind="extend", source=source(fps=24), seconds=0)
    reject(VEO, "seconds", "duration 31", kind="extend", source=source(fps=24), seconds=31)
    spec = run(VEO, kind="extend", source=source(seconds=8, fps=24), seconds="7")
    assert (spec.seconds, spec.size, spec.fps) == (7, "1280x720", 24)
