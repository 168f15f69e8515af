"""Thumbnails and spritesheets: right format, right size, and the right frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidgate.core.errors import InvalidParameter
from vidgate.media.previews import (
    SPRITESHEET_CONTENT_TYPE,
    THUMBNAIL_CONTENT_TYPE,
    VIDEO_CONTENT_TYPE,
    make_previews,
    make_spritesheet,
    make_thumbnail,
    spritesheet_grid,
)
from vidgate.media.render import ClipRequest, render_clip


def _gray_ramp(path: Path, *, frames: int, fps: int, step: int, gop: int, w: int = 64) -> None:
    """A video whose frame i is flat grey 20 + step*i, so a picture tells its frame."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "crf": "4"}
        )
        stream.width, stream.height = w, w // 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.gop_size = gop
        for i in range(frames):
            rgb = np.full((w // 2, w, 3), 20 + step * i, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _gray(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float64).mean())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("previews") / "clip.mp4"
    render_clip(ClipRequest(width=320, height=180, fps=24, seconds=3, prompt="p", label="l"), out)
    return out


def test_content_types() -> None:
    assert THUMBNAIL_CONTENT_TYPE == "image/webp"
    assert SPRITESHEET_CONTENT_TYPE == "image/jpeg"
    assert VIDEO_CONTENT_TYPE == "video/mp4"


def test_thumbnail_is_webp_and_never_upscaled(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "thumb.webp"
    make_thumbnail(clip, out)
    data = out.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    with Image.open(out) as img:
        assert img.format == "WEBP"
        assert img.size == (320, 180)


def test_thumbnail_respects_max_width(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "thumb.webp"
    make_thumbnail(clip, out, max_width=160)
    with Image.open(out) as img:
        assert img.size == (160, 90)
    assert [p.name for p in tmp_path.iterdir()] == ["thumb.webp"]


def test_thumbnail_is_a_third_of_the_way_in(tmp_path: Path) -> None:
    video = tmp_path / "ramp.mp4"
    _gray_ramp(video, frames=30, fps=10, step=7, gop=10)
    out = tmp_path / "thumb.webp"
    make_thumbnail(video, out)
    with Image.open(out) as img:
        assert _gray(img) == pytest.approx(20 + 7 * 10, abs=4)  # frame 10 of 30


def test_thumbnail_of_a_one_frame_video(tmp_path: Path) -> None:
    video = tmp_path / "one.mp4"
    _gray_ramp(video, frames=1, fps=10, step=7, gop=10)
    out = tmp_path / "thumb.webp"
    make_thumbnail(video, out)
    with Image.open(out) as img:
        assert _gray(img) == pytest.approx(20, abs=4)


def test_spritesheet_grid(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "sheet.jpg"
    make_spritesheet(clip, out)
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    with Image.open(out) as img:
        assert img.format == "JPEG"
        assert img.size == (5 * 160, 2 * 90)

    make_spritesheet(clip, out, tiles=7, columns=3, tile_width=64)
    with Image.open(out) as img:
        assert img.size == (3 * 64, 3 * 36)


@pytest.mark.parametrize(("width", "height"), [(320, 180), (180, 320), (426, 240)])
def test_the_described_grid_is_the_one_drawn(width: int, height: int, tmp_path: Path) -> None:
    """What the API tells clients (``spritesheet_grid``) is what make_previews draws."""
    video, out = tmp_path / "clip.mp4", tmp_path / "sheet.jpg"
    render_clip(
        ClipRequest(width=width, height=height, fps=8, seconds=1, prompt="p", label="l"), video
    )
    make_spritesheet(video, out)
    grid = spritesheet_grid(width, height)
    assert (grid.columns, grid.rows, grid.frames, grid.tile_width) == (5, 2, 10, 160)
    with Image.open(out) as img:
        assert img.size == (grid.columns * grid.tile_width, grid.rows * grid.tile_height)


def _tile_grays(sheet: Path, tiles: int, columns: int, tile_w: int, tile_h: int) -> list[float]:
    with Image.open(sheet) as img:
        grays = []
        for i in range(tiles):
            x, y = (i % columns) * tile_w, (i // columns) * tile_h
            # Inset by 2 px: JPEG blocks bleed across tile borders.
            grays.append(_gray(img.crop((x + 2, y + 2, x + tile_w - 2, y + tile_h - 2))))
    return grays


def test_spritesheet_frames_are_evenly_spaced(tmp_path: Path) -> None:
    video = tmp_path / "ramp.mp4"
    _gray_ramp(video, frames=30, fps=10, step=7, gop=10)
    out = tmp_path / "sheet.jpg"
    make_spritesheet(video, out, tiles=10, columns=5, tile_width=32)
    grays = _tile_grays(out, 10, 5, 32, 16)
    # Tile k shows the first frame at or after the middle of slice k: (k + 0.5) * 0.3 s.
    expected = [20 + 7 * f for f in (2, 5, 8, 11, 14, 17, 20, 23, 26, 29)]
    assert grays == pytest.approx(expected, abs=4)


def test_long_video_previews_seek_to_the_right_frames(tmp_path: Path) -> None:
    # 25 s is past the sequential-decode cut-off, so this takes the seek path.
    video = tmp_path / "long.mp4"
    _gray_ramp(video, frames=100, fps=4, step=2, gop=8)
    sheet = tmp_path / "sheet.jpg"
    make_spritesheet(video, sheet, tiles=5, columns=5, tile_width=32)
    grays = _tile_grays(sheet, 5, 5, 32, 16)
    # Targets 2.5, 7.5, 12.5, 17.5, 22.5 s -> frames 10, 30, 50, 70, 90.
    assert grays == pytest.approx([20 + 2 * f for f in (10, 30, 50, 70, 90)], abs=3)

    thumb = tmp_path / "thumb.webp"
    make_thumbnail(video, thumb)
    with Image.open(thumb) as img:
        # A third of 25 s is 8.33 s -> frame 34 (8.5 s).
        assert _gray(img) == pytest.approx(20 + 2 * 34, abs=3)


@pytest.mark.parametrize("frames,fps", [(30, 10), (100, 4)])  # sequential, then seeking
def test_both_previews_in_one_pass_are_the_ones_made_apart(
    tmp_path: Path, frames: int, fps: int
) -> None:
    video = tmp_path / "ramp.mp4"
    _gray_ramp(video, frames=frames, fps=fps, step=2, gop=8)
    make_thumbnail(video, tmp_path / "t1.webp")
    make_spritesheet(video, tmp_path / "s1.jpg")
    make_previews(video, thumbnail=tmp_path / "t2.webp", spritesheet=tmp_path / "s2.jpg")
    # The thumbnail's frame is among the tiles' (a third of the way in sorts between
    # them): the merged pass must hand each output its own frame, byte for byte.
    assert (tmp_path / "t2.webp").read_bytes() == (tmp_path / "t1.webp").read_bytes()
    assert (tmp_path / "s2.jpg").read_bytes() == (tmp_path / "s1.jpg").read_bytes()


def test_previews_of_a_non_video(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"definitely not a video" * 20)
    with pytest.raises(InvalidParameter) as err:
        make_thumbnail(bogus, tmp_path / "t.webp")
    assert err.value.param == "video"
    with pytest.raises(InvalidParameter):
        make_spritesheet(bogus, tmp_path / "s.jpg")
    with pytest.raises(InvalidParameter):
        make_previews(bogus, thumbnail=tmp_path / "t.webp", spritesheet=tmp_path / "s.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.mp4"]
