"""cli_limits.py: the values ``--rpm`` and ``--max-concurrent`` take, and how limits read."""

from __future__ import annotations

import pytest

from vidgate.cli_limits import LimitArgumentError, describe, limit_values, parse_limit
from vidgate.core.limits import Limits


def test_a_number_sets_off_removes_nothing_keeps() -> None:
    assert parse_limit("--rpm", "60") == {"rpm": 60}
    assert parse_limit("--max-concurrent", "1000000") == {"max_concurrent": 1_000_000}
    assert parse_limit("--rpm", "OFF") == {"rpm": None}
    assert parse_limit("--rpm", None) == {}
    assert limit_values(5, None) == {"rpm": 5}
    assert limit_values(None, None) == {}


@pytest.mark.parametrize("value", ["0", "-1", "1000001", "x", "", "1.5", "none"])
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(LimitArgumentError, match=r"--rpm must be 1\.\.1000000, or 'off'"):
        parse_limit("--rpm", value)


def test_describe() -> None:
    assert describe(Limits(60, None)) == "60 creates per minute, no jobs-in-flight limit"
    assert describe(Limits(None, 2)) == "no creates-per-minute limit, 2 jobs in flight"
