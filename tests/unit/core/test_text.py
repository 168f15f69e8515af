import pytest

from vidgate.core.errors import InvalidParameter
from vidgate.core.text import check_text, forbidden_character


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("\x00", "U+0000"),
        ("tab\there", "U+0009"),
        ("new\nline", "U+000A"),
        ("\x1f", "U+001F"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("c1\x9f", "U+009F"),
        ("half \udc80", "U+DC80"),
    ],
)
def test_one_line_text_refuses_controls_and_surrogates(value: str, code: str) -> None:
    reason = forbidden_character(value)
    assert reason is not None and code in reason


@pytest.mark.parametrize(
    "value", ["", "plain", "café ☕ 🦊", "zero\u200bwidth", "\xa0nbsp", "\ufffd", "a:b/c?d=e"]
)
def test_ordinary_text_passes(value: str) -> None:
    assert forbidden_character(value) is None
    assert forbidden_character(value, multiline=True) is None


def test_multiline_text_keeps_tab_newline_and_carriage_return() -> None:
    assert forbidden_character("a\tb\nc\r\nd", multiline=True) is None
    for char in ("\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\ud800"):
        assert forbidden_character(f"a\n{char}", multiline=True) is not None


def test_check_text_names_the_parameter() -> None:
    assert check_text("ok", param="model") == "ok"
    with pytest.raises(InvalidParameter) as info:
        check_text("k\x00", param="metadata", what="metadata key")
    assert info.value.param == "metadata"
    assert info.value.message == (
        "metadata key contains a control character (U+0000) at position 1;"
        " allowed: text without control characters"
    )
