"""services/small_blobs.py: small stored files read once, then served from memory."""

from __future__ import annotations

from pathlib import Path

from vidgate.services.small_blobs import SmallBlobs


async def test_a_small_file_is_read_once_and_then_held(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"x" * 100)
    cache = SmallBlobs(max_file_bytes=1000, budget_bytes=10_000)
    first = await cache.get(path)
    assert first is not None and first.data == b"x" * 100 and first.stat_result.st_size == 100
    path.unlink()  # blobs never change: what was read stays right
    assert await cache.get(path) is first


async def test_larger_and_missing_files_are_left_to_the_disk_path(tmp_path: Path) -> None:
    cache = SmallBlobs(max_file_bytes=10, budget_bytes=100)
    big, missing = tmp_path / "big", tmp_path / "missing"
    big.write_bytes(b"y" * 11)
    assert await cache.get(big) is None
    assert await cache.get(tmp_path) is None  # not a file
    assert await cache.get(missing) is None
    missing.write_bytes(b"z")  # a file that appears later is found then
    found = await cache.get(missing)
    assert found is not None and found.data == b"z"


async def test_the_least_recently_used_go_past_the_budget(tmp_path: Path) -> None:
    cache = SmallBlobs(max_file_bytes=10, budget_bytes=20)
    paths = [tmp_path / str(i) for i in range(3)]
    for path in paths:
        path.write_bytes(b"0123456789")
    held = [await cache.get(p) for p in paths[:2]]
    assert await cache.get(paths[0]) is held[0]  # now the most recent
    await cache.get(paths[2])  # over the budget: paths[1] goes
    for path in paths:
        path.unlink()
    assert await cache.get(paths[0]) is held[0]
    assert await cache.get(paths[1]) is None
