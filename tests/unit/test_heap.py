"""vidgate.heap: startup garbage is collected, what survives is frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from vidgate.heap import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_garbage_is_collected_before_the_survivors_are_frozen(unfrozen: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    dead = weakref.ref(a)
    kept = Node()
    del a, b

    frozen = freeze_startup_heap()

    assert dead() is None, "the cycle was frozen instead of collected"
    assert frozen == gc.get_freeze_count() > 0
    assert any(obj is kept for obj in gc.get_objects()) is False  # frozen: out of sight
