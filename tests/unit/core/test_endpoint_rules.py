"""The delivery rules of webhook endpoints, as pure functions."""

from __future__ import annotations

from vidgate.core.webhook_endpoints import RETRY_DELAYS_S, RETRY_JITTER, retry_delay_s


def test_retries_last_more_than_a_day_even_with_the_most_jitter() -> None:
    waits = [retry_delay_s(n, jitter=0.999) for n in range(1, len(RETRY_DELAYS_S) + 1)]
    assert all(w is not None for w in waits)
    assert sum(w for w in waits if w is not None) >= 24 * 3600
    # Each wait is at least as long as the one before: backoff, not a fixed period.
    assert waits == sorted(waits, key=lambda w: w or 0)


def test_no_retry_after_the_last_attempt_or_before_the_first() -> None:
    assert retry_delay_s(len(RETRY_DELAYS_S) + 1) is None
    assert retry_delay_s(0) is None
    assert retry_delay_s(1) == RETRY_DELAYS_S[0]
    assert retry_delay_s(1, jitter=0.5) == RETRY_DELAYS_S[0] * (1 - RETRY_JITTER / 2)
