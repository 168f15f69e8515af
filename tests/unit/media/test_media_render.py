"""The sandbox renderer writes real, well-formed, streamable H.264 test clips."""

from __future__ import annotations

import io
import struct
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from PIL import ExifTags, Image, ImageOps

from vidgate.core.errors import InvalidImage, InvalidParameter
from vidgate.media.backgrounds import _cover_rgb, _flatten
from vidgate.media.budget import image_memory
from vidgate.media.render import Background, ClipRequest, load_background, render_clip

RGB = npt.NDArray[np.uint8]


def _request(
    width: int,
    height: int,
    seconds: int = 1,
    fps: int = 24,
    *,
    seed: int | None = 7,
    background: Path | Background | None = None,
    remix_source: Path | None = None,
    extend_source: Path | None = None,
) -> ClipRequest:
    return ClipRequest(
        width=width,
        height=height,
        fps=fps,
        seconds=seconds,
        prompt="a red fox running through snow, long lens",
        label="video_test #1",
        seed=seed,
        background=background,
        remix_source=remix_source,
        extend_source=extend_source,
    )


def _boxes(path: Path) -> list[str]:
    """Top-level MP4 box types, read independently of vidgate.media.probe."""
    data = path.read_bytes()
    pos, out = 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        elif size == 0:
            size = len(data) - pos
        out.append(kind.decode("latin-1"))
        pos += size
    return out


def _assert_clip(path: Path, width: int, height: int, fps: int, frames: int) -> None:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        assert ctx.name == "h264"
        assert ctx.pix_fmt == "yuv420p"
        assert (ctx.width, ctx.height) == (width, height)
        assert stream.average_rate == fps
        assert stream.frames == frames
        assert stream.duration is not None and stream.time_base is not None
        assert stream.duration * stream.time_base == Fraction(frames, fps)
        # Every frame sits exactly on the 1/fps grid: constant frame rate, no gaps.
        times = [
            frame.pts * frame.time_base
            for frame in container.decode(stream)
            if frame.pts is not None and frame.time_base is not None
        ]
    assert times == [Fraction(i, fps) for i in range(frames)]
    boxes = _boxes(path)
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat"), boxes


def _frames(path: Path) -> list[RGB]:
    with av.open(str(path)) as container:
        return [
            np.asarray(f.to_ndarray(format="rgb24"), dtype=np.uint8)
            for f in container.decode(video=0)
        ]


def _solid_png(path: Path, color: tuple[int, int, int], size: tuple[int, int]) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def _middle_band_median(frame: RGB) -> RGB:
    # The middle rows are free of the text panels; the median ignores the moving disc.
    h = frame.shape[0]
    band = frame[int(h * 0.42) : int(h * 0.58)].reshape(-1, 3)
    return np.asarray(np.median(band, axis=0), dtype=np.uint8)


def test_hd_clip_is_exact_faststart_h264(tmp_path: Path) -> None:
    out = tmp_path / "hd.mp4"
    started = time.perf_counter()
    render_clip(_request(1280, 720, seconds=5), out)
    elapsed = time.perf_counter() - started
    _assert_clip(out, 1280, 720, 24, 120)
    # The budget is ~3 s on 2 cores; this only catches a gross regression.
    assert elapsed < 15, elapsed


def test_small_clip_progress_and_no_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    seen: list[float] = []
    render_clip(_request(64, 64, seconds=2, fps=10), out, progress=seen.append)
    _assert_clip(out, 64, 64, 10, 20)
    assert seen and seen[-1] == 1.0
    assert all(0.0 <= p <= 1.0 for p in seen)
    assert seen == sorted(seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.mp4"]


def test_small_clip_is_fast(tmp_path: Path) -> None:
    render_clip(_request(64, 64), tmp_path / "warm.mp4")
    started = time.perf_counter()
    render_clip(_request(64, 64), tmp_path / "fast.mp4")
    assert time.perf_counter() - started < 1.0


def test_huge_prompt_on_a_tiny_frame_is_still_fast(tmp_path: Path) -> None:
    req = ClipRequest(
        width=16, height=16, fps=4, seconds=1, prompt="x" * 5000 + " word" * 2000, label="L" * 500
    )
    started = time.perf_counter()
    render_clip(req, tmp_path / "tiny.mp4")
    assert time.perf_counter() - started < 1.0
    _assert_clip(tmp_path / "tiny.mp4", 16, 16, 4, 4)


def test_portrait(tmp_path: Path) -> None:
    render_clip(_request(180, 320, seconds=1, fps=8), tmp_path / "portrait.mp4")
    _assert_clip(tmp_path / "portrait.mp4", 180, 320, 8, 8)


def test_frames_move_and_seed_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    render_clip(_request(96, 96, seed=42), a)
    render_clip(_request(96, 96, seed=42), b)
    render_clip(_request(96, 96, seed=43), c)
    fa, fb, fc = _frames(a), _frames(b), _frames(c)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    assert not np.array_equal(fa[0], fc[0])
    assert not np.array_equal(fa[0], fa[12])  # the disc and the counter move


@pytest.mark.parametrize(("width", "height"), [(63, 64), (64, 63), (8, 8), (8192, 64)])
def test_bad_sizes_are_rejected(tmp_path: Path, width: int, height: int) -> None:
    out = tmp_path / "bad.mp4"
    with pytest.raises(InvalidParameter) as err:
        render_clip(_request(width, height), out)
    assert err.value.param == "size"
    assert list(tmp_path.iterdir()) == []


def test_bad_fps_and_seconds_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as err:
        render_clip(_request(64, 64, fps=0), tmp_path / "x.mp4")
    assert err.value.param == "fps"
    with pytest.raises(InvalidParameter) as err:
        render_clip(_request(64, 64, seconds=0), tmp_path / "x.mp4")
    assert err.value.param == "seconds"


def test_background_image_fills_the_frame(tmp_path: Path) -> None:
    # A wide image proves "cover": it is cropped, not letterboxed with black bars.
    bg = _solid_png(tmp_path / "red.png", (255, 0, 0), (400, 100))
    out = tmp_path / "bg.mp4"
    render_clip(_request(160, 160, background=bg), out)
    _assert_clip(out, 160, 160, 24, 24)
    for frame in _frames(out)[::8]:
        r, g, b = (int(v) for v in _middle_band_median(frame))
        assert r > 200 and g < 50 and b < 50, (r, g, b)
        left_edge = frame[int(160 * 0.45), 0]
        assert left_edge[0] > 200, left_edge


def test_unreadable_background_leaves_no_file(tmp_path: Path) -> None:
    bg = tmp_path / "bg.png"
    bg.write_text("not an image")
    out = tmp_path / "out.mp4"
    with pytest.raises(InvalidImage):
        render_clip(_request(64, 64, background=bg), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bg.png"]


def test_remix_uses_source_frames_and_loops(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    bg = _solid_png(tmp_path / "green.png", (0, 200, 0), (160, 160))
    render_clip(_request(160, 160, seconds=1, background=bg), source)
    out = tmp_path / "remix.mp4"
    render_clip(_request(192, 192, seconds=3, remix_source=source), out)
    _assert_clip(out, 192, 192, 24, 72)
    frames = _frames(out)
    for frame in (frames[5], frames[40], frames[70]):  # the 1 s source loops over 3 s
        r, g, b = (int(v) for v in _middle_band_median(frame))
        assert g > 150 and r < 60 and b < 60, (r, g, b)
    # The yellow "REMIX" banner is drawn on top.
    top = frames[0][: 192 // 2].reshape(-1, 3).astype(int)
    yellow = (top[:, 0] > 200) & (top[:, 1] > 160) & (top[:, 2] < 80)
    assert yellow.sum() > 20


def test_remix_cannot_combine_with_extend(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    render_clip(_request(64, 64), source)
    with pytest.raises(InvalidParameter):
        render_clip(_request(64, 64, remix_source=source, extend_source=source), tmp_path / "x.mp4")


def test_extend_keeps_every_source_frame_then_adds_new_ones(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    render_clip(_request(64, 64, seconds=1, seed=1), source)
    out = tmp_path / "extended.mp4"
    render_clip(_request(64, 64, seconds=2, seed=2, extend_source=source), out)
    _assert_clip(out, 64, 64, 24, 24 + 48)
    src, ext = _frames(source), _frames(out)
    for a, b in zip(src, ext[:24], strict=True):
        # Re-encoded, so not bit-exact, but each output frame is its source frame.
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 6
    assert np.abs(src[-1].astype(int) - ext[30].astype(int)).mean() > 1  # new overlay


def test_extend_scales_source_to_requested_size(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    render_clip(_request(96, 64, seconds=1), source)
    out = tmp_path / "extended.mp4"
    render_clip(_request(64, 64, seconds=1, extend_source=source), out)
    _assert_clip(out, 64, 64, 24, 48)


def test_extend_resamples_a_source_at_another_rate(tmp_path: Path) -> None:
    source = tmp_path / "source30.mp4"
    render_clip(_request(64, 64, seconds=1, fps=30), source)
    out = tmp_path / "extended.mp4"
    render_clip(_request(64, 64, seconds=1, fps=24, extend_source=source), out)
    # 1 s of source at 30 fps becomes 1 s at 24 fps: durations add up.
    _assert_clip(out, 64, 64, 24, 48)


def test_extend_of_a_non_video_is_invalid(tmp_path: Path) -> None:
    source = tmp_path / "source.mp4"
    source.write_bytes(b"\x00" * 100)
    out = tmp_path / "extended.mp4"
    with pytest.raises(InvalidParameter):
        render_clip(_request(64, 64, extend_source=source), out)
    assert not out.exists()


# --- Backgrounds: decoded once, within the budget, never copied at full size -------------


def test_a_background_loaded_once_serves_every_clip(tmp_path: Path) -> None:
    bg = _solid_png(tmp_path / "blue.png", (0, 0, 230), (300, 200))
    loaded = load_background(bg.read_bytes(), 160, 160)
    assert (loaded.width, loaded.height) == (160, 160)
    for name in ("a.mp4", "b.mp4"):
        render_clip(_request(160, 160, background=loaded), tmp_path / name)
        r, g, b = (int(v) for v in _middle_band_median(_frames(tmp_path / name)[0]))
        assert b > 180 and r < 50 and g < 50, (r, g, b)
    assert image_memory().in_use == 0
    with pytest.raises(ValueError):  # fitted to another size
        render_clip(_request(64, 64, background=loaded), tmp_path / "c.mp4")


def test_background_follows_exif_orientation() -> None:
    # Stored 64x32, left red, right blue; orientation 6 shows it turned 90 degrees
    # clockwise: 32x64, red on top.
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif, quality=95)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue())))
    assert shown.size == (32, 64)
    loaded = load_background(buf.getvalue(), 32, 64)
    expected = load_background(_png(shown), 32, 64)
    diff = np.abs(loaded.i420.astype(int) - expected.i420.astype(int))
    assert diff.mean() < 2, diff.mean()


@pytest.mark.parametrize(
    ("source", "mode", "out"),
    [
        ((1000, 700), "RGBA", (320, 240)),
        ((3000, 500), "RGBA", (160, 160)),
        ((640, 480), "P", (1280, 720)),
        ((700, 3000), "LA", (100, 16)),
        ((2000, 2000), "RGBA", (1998, 1000)),
    ],
)
def test_fitting_chunk_by_chunk_equals_one_resize_of_the_whole(
    source: tuple[int, int], mode: str, out: tuple[int, int]
) -> None:
    rng = np.random.default_rng(5)
    noise = Image.fromarray(rng.integers(0, 256, (source[1], source[0], 4), dtype=np.uint8))
    image = noise.convert(mode) if mode != "RGBA" else noise
    if mode == "P":
        image.info["transparency"] = 3
    width, height = out
    ratio = min(image.width / width, image.height / height)
    crop_w, crop_h = min(image.width, width * ratio), min(image.height, height * ratio)
    left, top = max(0.0, (image.width - crop_w) / 2), max(0.0, (image.height - crop_h) / 2)
    whole = _flatten(image).resize(
        out, Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
    )
    diff = np.abs(
        np.asarray(_cover_rgb(image, width, height), dtype=int) - np.asarray(whole, dtype=int)
    )
    assert diff.max() <= 1  # float box coordinates round a hair differently


def test_a_background_over_the_budget_is_refused_before_decoding(
    tmp_path: Path,
) -> None:
    budget = image_memory()
    before = budget.capacity
    budget.resize(4 * 1024 * 1024)
    try:
        # 2000x2000 RGBA: 15 MiB decoded.
        data = _png(Image.new("RGBA", (2000, 2000), (0, 0, 0, 0)))
        with pytest.raises(InvalidImage) as err:
            load_background(data, 64, 64)
        assert err.value.param == "input_reference"
        assert "too large to decode" in err.value.message
    finally:
        budget.resize(before)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
