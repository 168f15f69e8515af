"""Decoded-image memory is bounded by design (issue 10, point 2), measured on a real server.

An 8192x8192 PNG of zeros is ~255 KB on the wire and 256 MiB decoded. Six sent at once
used to take a fresh server from 0.14 GB to 7 GB of RSS (each decoded in full by the
API, then about 1 GB more per output in the sandbox's render), and it kept 6 GB after.
Now every decode holds its size in the process's budget for decoded images
(``VIDGATE_IMAGE_MEMORY_BYTES``, 512 MiB by default) and the memory goes back to the
system afterwards. The server here is fresh and its own, so its RSS is theirs alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from tests.conftest import ServerProcess, fast_env, make_database, png_bytes
from tests.memory import MIB, RssSampler, solid_png, zeros_png

from vidgate.media.budget import DEFAULT_IMAGE_MEMORY_BYTES

SIDE = 8192
# Growth besides decoded images while a burst is handled: request bodies and their
# copies, the render's own buffers and encoders at 320x240, Python's heap. Measured
# ~60 MiB; the rest is slack for a loaded 2-core machine.
WORK_MARGIN = 256 * MIB
# What a server may keep once the work is done: caches, pools, Python's own arenas.
# Measured ~25 MiB.
KEPT_MARGIN = 128 * MIB


@pytest.fixture(scope="module")
def fresh(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own with the documented defaults for images (20 MiB, 512 MiB)."""
    srv = ServerProcess(
        data_dir=tmp_path_factory.mktemp("memory") / "vidgate",
        env=fast_env(VIDGATE_DATABASE_URL=make_database(pg_server)),
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def key(fresh: ServerProcess) -> str:
    key = fresh.create_key("memory test")
    # Warm up: the first job imports and builds what every later one reuses.
    video = _create(fresh, key, png_bytes(), prompt="warm-up")
    assert video.status_code == 200, video.text
    assert _wait(fresh, key, video.json()["id"])["status"] == "completed"
    return key


def _create(
    srv: ServerProcess, key: str, image: bytes, *, prompt: str, **fields: str
) -> httpx.Response:
    return httpx.post(
        f"{srv.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {key}"},
        data={"model": "sandbox", "prompt": prompt, "seconds": "1", "size": "320x240", **fields},
        files={"input_reference": ("image.png", image, "image/png")},
        timeout=120,
    )


def _wait(srv: ServerProcess, key: str, video_id: str, timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = httpx.get(
            f"{srv.base_url}/v1/videos/{video_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        ).json()
        if got["status"] in ("completed", "failed"):
            return dict(got)
        time.sleep(0.2)
    raise AssertionError(f"{video_id} did not finish")


def _settled_rss(sampler: RssSampler) -> int:
    """RSS once the process has had a moment to finish freeing (at most ~3 s)."""
    lowest = sampler.rss()
    for _ in range(6):
        time.sleep(0.5)
        lowest = min(lowest, sampler.rss())
    return lowest


def test_parallel_bomb_uploads_stay_within_the_image_budget(fresh: ServerProcess, key: str) -> None:
    bomb = zeros_png(SIDE, SIDE)
    assert len(bomb) < 300_000  # the "255 KB on the wire"
    assert fresh.proc is not None
    sampler = RssSampler(fresh.proc.pid)
    before = sampler.rss()

    def upload(i: int) -> httpx.Response:
        # Refused at submit: this measures the API's own check of the image.
        return _create(fresh, key, bomb, prompt=f"bomb {i}", **{"metadata[sandbox_fail]": "submit"})

    with sampler, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(upload, range(6)))
    after = _settled_rss(sampler)

    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    growth, kept = sampler.peak - before, after - before
    print(f"RSS before {before / MIB:.0f} MiB, peak +{growth / MIB:.0f}, after +{kept / MIB:.0f}")
    assert growth <= DEFAULT_IMAGE_MEMORY_BYTES + WORK_MARGIN, f"peak +{growth / MIB:.0f} MiB"
    assert kept <= KEPT_MARGIN, f"kept +{kept / MIB:.0f} MiB"


def test_a_bomb_background_is_decoded_within_the_budget_and_shown(
    fresh: ServerProcess, key: str, tmp_path: Path
) -> None:
    # Not zeros: the output must show the image's colour, to prove it was used.
    image = solid_png(SIDE, SIDE, (220, 20, 20, 255))
    assert fresh.proc is not None
    sampler = RssSampler(fresh.proc.pid)
    before = sampler.rss()

    with sampler:
        created = _create(fresh, key, image, prompt="a huge background", n="2")
        assert created.status_code == 200, created.text
        video = _wait(fresh, key, created.json()["id"])
    after = _settled_rss(sampler)

    assert video["status"] == "completed", video
    growth, kept = sampler.peak - before, after - before
    print(f"RSS before {before / MIB:.0f} MiB, peak +{growth / MIB:.0f}, after +{kept / MIB:.0f}")
    # One job: one decode (256 MiB) for both outputs, fitted to 320x240 band by band.
    assert growth <= DEFAULT_IMAGE_MEMORY_BYTES + WORK_MARGIN, f"peak +{growth / MIB:.0f} MiB"
    assert kept <= KEPT_MARGIN, f"kept +{kept / MIB:.0f} MiB"
    for index in (0, 1):
        content = httpx.get(
            f"{fresh.base_url}/v1/videos/{video['id']}/content",
            params={"index": index},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert content.status_code == 200, content.text
        path = tmp_path / f"{index}.mp4"
        path.write_bytes(content.content)
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        # The band between the text panels shows the image (see test_openai_shape).
        r, g, b = np.median(frame[40:200, :, :].reshape(-1, 3), axis=0)
        assert r > 180 and g < 80 and b < 80, (index, r, g, b)
