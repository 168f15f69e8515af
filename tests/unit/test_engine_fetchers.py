"""engine/app.py: a queue's concurrency is split between several fetching workers."""

from __future__ import annotations

import pytest

from vidgate.engine.app import STEPS_PER_FETCHER, fetcher_shares


@pytest.mark.parametrize(
    "concurrency,shares",
    [(32, [8, 8, 8, 8]), (16, [8, 8]), (9, [5, 4]), (8, [8]), (5, [5]), (1, [1])],
)
def test_concurrency_is_split_evenly_between_fetchers(concurrency: int, shares: list[int]) -> None:
    assert fetcher_shares(concurrency) == shares


def test_every_split_adds_up_and_respects_the_bound() -> None:
    for concurrency in range(1, 100):
        shares = fetcher_shares(concurrency)
        assert sum(shares) == concurrency
        assert max(shares) <= STEPS_PER_FETCHER and min(shares) >= 1
        assert max(shares) - min(shares) <= 1
