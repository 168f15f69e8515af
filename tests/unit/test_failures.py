"""What a failed upstream task is called (providers/failures.py): vidgate's codes, the
provider's message bounded to one line, and transient against final."""

from __future__ import annotations

import pytest

from vidgate.providers import failures


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The prompt was flagged by content moderation.", failures.REFUSED),
        ("Failure to pass the risk control system", failures.REFUSED),
        ("output may contain sensitive information; internal error", failures.REFUSED),
        ("Request timed out", failures.TIMED_OUT),
        ("CUDA out of memory. Tried to allocate 2.00 GiB", failures.TRANSIENT),
        ("The service is temporarily unavailable", failures.TRANSIENT),
        ("image is too large", failures.INVALID),
        ("image_too_large", failures.INVALID),
        ("InvalidParameter", failures.INVALID),
        ("the model could not render this", failures.FAILED),
        (None, failures.FAILED),
    ],
)
def test_free_text_is_read_refusal_first(text: str | None, expected: failures.Failure) -> None:
    assert failures.from_text(text) == expected


def test_a_table_wins_over_words_and_prefixes_take_the_longest() -> None:
    table = {
        "SAFETY.": failures.REFUSED,
        "INPUT_PREPROCESSING.": failures.INVALID,
        "INPUT_PREPROCESSING.INTERNAL": failures.TRANSIENT,
    }
    assert failures.lookup(table, "SAFETY.INPUT.TEXT", "x", prefixes=True) == failures.REFUSED
    assert (
        failures.lookup(table, "INPUT_PREPROCESSING.INTERNAL.X", prefixes=True)
        == failures.TRANSIENT
    )
    assert failures.lookup(table, "INPUT_PREPROCESSING.BAD", prefixes=True) == failures.INVALID
    # Without prefixes only exact codes count; the rest is words.
    assert failures.lookup(table, "SAFETY.INPUT.TEXT", "flagged") == failures.REFUSED
    assert failures.lookup(table, "SAFETY.INPUT.TEXT", "hm") == failures.REFUSED  # "safety"
    assert failures.lookup({}, None, "CUDA out of memory") == failures.TRANSIENT


def test_the_message_is_the_providers_on_one_bounded_line() -> None:
    assert failures.message("fal-eu", "Internal error", "internal_error") == (
        "fal-eu: Internal error (internal_error)"
    )
    # A code the text already names is not repeated; no text says the task failed.
    assert failures.message("r", "flagged (E005)", "E005") == "r: flagged (E005)"
    assert failures.message("k", None) == "k: the task failed"
    long = failures.message("p", "line one\n\tline two " + "x" * 2000, "c")
    assert "\n" not in long and "\t" not in long
    assert len(long) == failures.MAX_MESSAGE and long.startswith("p: line one line two x")


def test_failed_carries_the_code_and_whether_it_is_transient() -> None:
    status = failures.failed(failures.TIMED_OUT, "m", "gave up", "1001", progress=40)
    assert (status.state, status.error_code, status.transient, status.progress) == (
        "failed",
        "upstream_timeout",
        True,
        40,
    )
    assert status.error_message == "m: gave up (1001)"
    refused = failures.failed(failures.REFUSED, "m", "no")
    assert (refused.error_code, refused.transient) == ("upstream_content_refused", False)
