"""vidgate.heap: startup garbage is collected, what survives is frozen; and the C
allocator gives large freed blocks back to the system."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
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


# Run in a fresh interpreter: the allocator's state is per process and history-dependent.
_FRAGMENT = """
import sys
from vidgate.heap import pin_malloc_thresholds
if sys.argv[1] == "pinned":
    assert pin_malloc_thresholds()
MIB = 1024 * 1024
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
# glibc raises its mmap threshold to the size of a freed mmapped block (up to 32 MiB)...
del bytearray(30 * MIB)[:]
# ...so these come from the heap, each followed by a small block that stays.
big, kept = [], []
for _ in range(20):
    big.append(bytearray(12 * MIB))
    kept.append(bytearray(64 * 1024))
held = rss()
del big
print((held - rss()) // MIB)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_pinned_thresholds_give_freed_blocks_back_to_the_system() -> None:
    def returned(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _FRAGMENT, mode], capture_output=True, text=True, check=True
        )
        return int(run.stdout.split()[-1])

    # 240 MiB freed: stuck between the small blocks by default, returned when pinned.
    assert returned("default") < 60
    assert returned("pinned") > 200
