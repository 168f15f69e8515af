"""probe_video describes real files and refuses everything else as InvalidParameter."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidgate.core.errors import InvalidParameter
from vidgate.media.probe import is_faststart, probe_video, top_level_boxes
from vidgate.media.render import ClipRequest, render_clip


def _write_video(
    path: Path, *, frames: int, fps: int = 10, size: int = 32, fmt: str, faststart: bool
) -> None:
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(frames):
            rgb = np.full((size, size, 3), i * 7 % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_probe_of_a_sandbox_clip(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    render_clip(
        ClipRequest(width=96, height=64, fps=12, seconds=2, prompt="p", label="l", seed=1), out
    )
    info = probe_video(out)
    assert (info.width, info.height) == (96, 64)
    assert info.fps == 12.0
    assert info.frames == 24
    assert info.duration == pytest.approx(2.0, abs=1e-6)
    assert info.codec == "h264"
    assert info.pix_fmt == "yuv420p"
    assert info.size_bytes == out.stat().st_size
    assert info.faststart is True


def test_faststart_false_when_index_is_at_the_end(tmp_path: Path) -> None:
    out = tmp_path / "slow.mp4"
    _write_video(out, frames=10, fmt="mp4", faststart=False)
    boxes = top_level_boxes(out)
    assert boxes.index("mdat") < boxes.index("moov")
    assert is_faststart(out) is False
    info = probe_video(out)
    assert info.faststart is False
    assert info.frames == 10


def test_frames_are_counted_when_the_container_has_no_count(tmp_path: Path) -> None:
    out = tmp_path / "clip.mkv"
    _write_video(out, frames=17, fmt="matroska", faststart=False)
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == 0  # the premise of this test
    info = probe_video(out)
    assert info.frames == 17
    assert info.faststart is False
    assert info.duration == pytest.approx(1.7, abs=0.11)


@pytest.mark.parametrize(
    "content", [b"", b"hello, this is not a video\n" * 10, b"\x00\x00\x00\x18ftypmp42" + b"\0" * 8]
)
def test_non_videos_are_invalid_parameter(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(InvalidParameter) as err:
        probe_video(path)
    assert err.value.param == "video"


def test_missing_file_is_invalid_parameter(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        probe_video(tmp_path / "nope.mp4")
    assert err.value.param == "video"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_a_still_image_is_not_a_video(tmp_path: Path, fmt: str) -> None:
    # FFmpeg would open these as one-frame videos.
    path = tmp_path / "still"
    Image.new("RGB", (20, 10)).save(path, format=fmt)
    with pytest.raises(InvalidParameter) as err:
        probe_video(path)
    assert err.value.param == "video"


def _bytes_read() -> int:
    """What this process has read so far (all files, every thread), from the kernel."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="reads counted by Linux only")
@pytest.mark.parametrize("fmt", ["matroska", "mp4"])
def test_probe_reads_the_header_not_every_frame(tmp_path: Path, fmt: str) -> None:
    """A 5.7 MB video (noise compresses badly) is described from at most 2 MB of it: a
    Matroska file, which has no frame count (its frames were once counted by demuxing
    it all), and an MP4 whose index is at the end (reached by seeking)."""
    path = tmp_path / f"big.{fmt}"
    rng = np.random.default_rng(1)
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        for i in range(40):
            noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(noise, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    size = path.stat().st_size
    assert size > 5_000_000
    before = _bytes_read()
    info = probe_video(path)
    read = _bytes_read() - before
    assert read < 2_000_000, f"read {read:,} of {size:,} bytes"
    assert (info.width, info.height, info.frames, info.fps) == (640, 360, 40, 10.0)
    assert info.duration == pytest.approx(4.0, abs=0.11)
