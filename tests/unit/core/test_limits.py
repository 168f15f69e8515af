"""core/limits.py: the verdict on one create, and the headers it answers with."""

from __future__ import annotations

import pytest

from vidgate.core.limits import Limits, ScopeUsage, go_duration, judge


def _key(rpm: int | None = None, conc: int | None = None, **usage: float) -> ScopeUsage:
    return ScopeUsage("key", "key_1", Limits(rpm, conc), **usage)  # type: ignore[arg-type]


def _project(rpm: int | None = None, conc: int | None = None, **usage: float) -> ScopeUsage:
    return ScopeUsage("project", "acme", Limits(rpm, conc), **usage)  # type: ignore[arg-type]


def test_no_limit_no_verdict() -> None:
    assert judge([]) is None
    assert judge([_key()]) is None


def test_within_rpm_counts_this_create_and_resets_a_window_after_it() -> None:
    verdict = judge([_key(rpm=60, recent=10, oldest_age_s=30.0, newest_age_s=1.0)])
    assert verdict is not None and verdict.allowed
    assert verdict.headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "49",
        "x-ratelimit-reset-requests": "1m0s",
    }


def test_over_rpm_waits_for_the_oldest_create_to_leave_the_window() -> None:
    verdict = judge([_key(rpm=3, recent=3, oldest_age_s=42.5, newest_age_s=0.25)])
    assert verdict is not None and not verdict.allowed
    assert verdict.headers() == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "59.75s",
        "retry-after": "18",
        "retry-after-ms": "17500",
    }
    assert "key key_1: 3 creates per minute" in verdict.message


def test_the_window_is_a_parameter() -> None:
    verdict = judge([_key(rpm=2, recent=2, oldest_age_s=0.4, newest_age_s=0.1)], window_s=1.0)
    assert verdict is not None and not verdict.allowed
    assert verdict.headers()["retry-after-ms"] == "600"
    assert verdict.headers()["retry-after"] == "1"


def test_over_max_concurrent() -> None:
    verdict = judge([_key(conc=2, in_flight=2)])
    assert verdict is not None and not verdict.allowed
    headers = verdict.headers()
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-concurrent"] == "2"
    assert headers["x-ratelimit-remaining-concurrent"] == "0"
    assert headers["retry-after"] == "1"
    assert "2 jobs in flight" in verdict.message


def test_every_scope_must_have_room_and_the_refusal_is_the_one_that_frees_last() -> None:
    # The key has room; its project's creates per minute and jobs in flight do not.
    verdict = judge(
        [
            _key(rpm=100, recent=1, oldest_age_s=5.0, newest_age_s=5.0),
            _project(rpm=10, conc=4, recent=10, oldest_age_s=50.0, newest_age_s=2.0, in_flight=4),
        ]
    )
    assert verdict is not None and not verdict.allowed
    assert verdict.bound.usage.kind == "project" and verdict.bound.what == "rpm"
    assert verdict.headers()["retry-after"] == "10"
    assert "project acme" in verdict.message


def test_the_headers_describe_the_tightest_limit() -> None:
    verdict = judge(
        [
            _key(rpm=100, conc=3, recent=1, oldest_age_s=5.0, newest_age_s=5.0, in_flight=1),
            _project(rpm=10, recent=5, oldest_age_s=20.0, newest_age_s=2.0),
        ]
    )
    assert verdict is not None and verdict.allowed
    headers = verdict.headers()
    # Key: 98 creates left this minute, 1 job slot; project: 4 creates left.
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-remaining-concurrent"] == "1"
    assert "retry-after" not in headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (59.02, "59.02s"),
        (60, "1m0s"),
        (61.25, "1m1.25s"),
        (600, "10m0s"),
    ],
)
def test_go_durations(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
