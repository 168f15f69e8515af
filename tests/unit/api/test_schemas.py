"""The field checks of the request schemas, as ``parse_model`` reports them."""

from typing import Any

import pytest

from vidgate.api.inputs import parse_model
from vidgate.api.schemas import CreateGenerationBody, CreateVideoBody, ExtendBody, RemixBody
from vidgate.core.errors import InvalidParameter, InvalidRequest

BODY = {"model": "sandbox", "prompt": "x"}


def refused(model: type[Any], fields: dict[str, Any]) -> InvalidParameter:
    with pytest.raises(InvalidParameter) as info:
        parse_model(model, fields)
    assert info.value.code == "invalid_parameter"
    assert "allowed: " in info.value.message
    return info.value


@pytest.mark.parametrize("seed", [0, 7, 4294967295, "4294967295", "12", 5.0])
def test_seeds_in_range(seed: Any) -> None:
    assert parse_model(CreateVideoBody, {**BODY, "seed": seed}).seed == int(seed)
    assert parse_model(CreateGenerationBody, {**BODY, "seed": seed}).seed == int(seed)


@pytest.mark.parametrize(
    "seed",
    [-1, 2**32, 2**70, "123456789012345678901234567890", "-5", "1e3", "", "x", True, 1.5, [], {}],
)
def test_seeds_out_of_range(seed: Any) -> None:
    for model in (CreateVideoBody, CreateGenerationBody):
        error = refused(model, {**BODY, "seed": seed})
        assert error.param == "seed"
        assert error.message.startswith("seed ")
        assert "allowed: a whole number in 0-4294967295" in error.message


def test_a_huge_seed_is_shown_short() -> None:
    for seed in ("9" * 5000, 10**5000):
        error = refused(CreateVideoBody, {**BODY, "seed": seed})
        assert len(error.message) < 200


def test_the_seed_range_is_in_the_openapi_schema() -> None:
    schema = CreateVideoBody.model_json_schema()["properties"]["seed"]["anyOf"][0]
    assert (schema["minimum"], schema["maximum"]) == (0, 4294967295)


@pytest.mark.parametrize(
    ("model", "fields", "param", "fragment"),
    [
        (CreateVideoBody, {"prompt": "\x00"}, "prompt", "prompt contains a control character"),
        (CreateVideoBody, {"negative_prompt": "a\x1b"}, "negative_prompt", "(U+001B)"),
        (CreateVideoBody, {"model": "sandbox\n"}, "model", "(U+000A)"),
        (CreateVideoBody, {"size": "1x1\x00"}, "size", "size contains"),
        (CreateVideoBody, {"resolution": "\x85"}, "resolution", "(U+0085)"),
        (CreateVideoBody, {"aspect_ratio": "\x7f"}, "aspect_ratio", "(U+007F)"),
        (CreateVideoBody, {"seconds": "5\x00"}, "seconds", "seconds contains"),
        (CreateVideoBody, {"fps": "\x00"}, "fps", "fps contains"),
        (CreateVideoBody, {"n": "\x00"}, "n", "n contains"),
        (CreateVideoBody, {"metadata": {"\x00": "v"}}, "metadata", "metadata key contains"),
        (CreateVideoBody, {"metadata": {"k": "\t"}}, "metadata", "a metadata value contains"),
        (CreateVideoBody, {"webhook_url": "https://a\x00"}, "webhook_url", "webhook_url"),
        (CreateVideoBody, {"input_reference": "https://a/\x00"}, "input_reference", "(U+0000)"),
        (
            CreateVideoBody,
            {"input_reference": {"image_url": "https://a/\x00"}},
            "input_reference.image_url",
            "input_reference.image_url contains",
        ),
        (CreateVideoBody, {"reference_images": ["ok", "\x00"]}, "reference_images", "(U+0000)"),
        (CreateVideoBody, {"prompt": "x\ud800"}, "prompt", "a lone surrogate (U+D800)"),
        (CreateGenerationBody, {"image": "data:\x00"}, "image", "image contains"),
        (CreateGenerationBody, {"duration": "\x00"}, "duration", "duration contains"),
        (RemixBody, {"metadata": {"k": "\x00"}}, "metadata", "metadata value"),
        (ExtendBody, {"video": {"id": "video_\x00"}}, "video.id", "video.id contains"),
    ],
)
def test_control_characters_name_the_parameter(
    model: type[Any], fields: dict[str, Any], param: str, fragment: str
) -> None:
    base = {"prompt": "x", "video": {"id": "video_x"}} if model is ExtendBody else {"prompt": "x"}
    if model is CreateGenerationBody:
        base["model"] = "sandbox"
    error = refused(model, {**base, **fields})
    assert error.param == param
    assert fragment in error.message, error.message


def test_prompts_keep_tabs_and_newlines() -> None:
    body = parse_model(CreateVideoBody, {"prompt": "a\n\tb\r\n", "negative_prompt": "c\td"})
    assert (body.prompt, body.negative_prompt) == ("a\n\tb\r\n", "c\td")


def test_other_errors_keep_their_codes() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_model(CreateVideoBody, {"prompt": "x", "colour": "red"})
    assert info.value.code == "unknown_parameter"
    with pytest.raises(InvalidRequest) as info:
        parse_model(CreateVideoBody, {"prompt": 5})
    assert (info.value.code, info.value.param) == ("invalid_request", "prompt")
