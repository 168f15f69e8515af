"""Thumbnails and spritesheets, made from a stored MP4.

Only a handful of frames are needed, so for anything but short clips each one is
reached by seeking to the keyframe before it and decoding forward, never by
decoding the whole file.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream
from PIL import Image

from vidgate.core.errors import InvalidParameter
from vidgate.media.probe import open_video

__all__ = [
    "SPRITESHEET_COLUMNS",
    "SPRITESHEET_CONTENT_TYPE",
    "SPRITESHEET_TILES",
    "SPRITESHEET_TILE_WIDTH",
    "THUMBNAIL_CONTENT_TYPE",
    "VIDEO_CONTENT_TYPE",
    "SpritesheetGrid",
    "make_previews",
    "make_spritesheet",
    "make_thumbnail",
    "spritesheet_grid",
]

THUMBNAIL_CONTENT_TYPE = "image/webp"
SPRITESHEET_CONTENT_TYPE = "image/jpeg"
VIDEO_CONTENT_TYPE = "video/mp4"

# The spritesheet every output gets: what make_previews draws by default, and what
# the API describes to clients that cut it into frames (``spritesheet_grid``).
SPRITESHEET_TILES = 10
SPRITESHEET_COLUMNS = 5
SPRITESHEET_TILE_WIDTH = 160


@dataclass(frozen=True, slots=True)
class SpritesheetGrid:
    """Where a spritesheet's tiles are: ``frames`` tiles of ``tile_width`` by
    ``tile_height``, ``columns`` per row, left to right then top to bottom."""

    columns: int
    rows: int
    frames: int
    tile_width: int
    tile_height: int


def spritesheet_grid(
    width: int,
    height: int,
    *,
    tiles: int = SPRITESHEET_TILES,
    columns: int = SPRITESHEET_COLUMNS,
    tile_width: int = SPRITESHEET_TILE_WIDTH,
) -> SpritesheetGrid:
    """The grid of a spritesheet made from a ``width`` x ``height`` video: tiles keep
    the video's aspect ratio."""
    columns = min(columns, tiles)
    tile_height = max(1, round(height * tile_width / width))
    return SpritesheetGrid(columns, math.ceil(tiles / columns), tiles, tile_width, tile_height)


# Up to this length one sequential decode is cheaper than a seek per frame, since
# every seek decodes from a keyframe that may be seconds before its target.
_SEQUENTIAL_MAX_SECONDS = 20.0


def make_thumbnail(video: Path, out: Path, *, max_width: int = 640) -> None:
    """Write a WebP of the frame about a third of the way in (the first frame of a
    clip too short to have one), at most ``max_width`` wide."""
    make_previews(video, thumbnail=out, max_width=max_width)


def make_spritesheet(
    video: Path,
    out: Path,
    *,
    tiles: int = SPRITESHEET_TILES,
    columns: int = SPRITESHEET_COLUMNS,
    tile_width: int = SPRITESHEET_TILE_WIDTH,
) -> None:
    """Write a JPEG grid of ``tiles`` evenly spaced frames, ``columns`` per row, left
    to right then top to bottom; each tile is ``tile_width`` wide with the video's
    aspect ratio."""
    make_previews(video, spritesheet=out, tiles=tiles, columns=columns, tile_width=tile_width)


def make_previews(
    video: Path,
    *,
    thumbnail: Path | None = None,
    spritesheet: Path | None = None,
    max_width: int = 640,
    tiles: int = SPRITESHEET_TILES,
    columns: int = SPRITESHEET_COLUMNS,
    tile_width: int = SPRITESHEET_TILE_WIDTH,
) -> None:
    """Write the thumbnail and/or the spritesheet (as ``make_thumbnail`` and
    ``make_spritesheet`` describe them) from one opening of the file and one pass over
    its frames: finalize makes both, and opening and decoding twice cost more than
    everything else for short clips."""
    if max_width < 1 or tiles < 1 or columns < 1 or tile_width < 1:
        raise ValueError("max_width, tiles, columns and tile_width must be positive")
    thumb: Image.Image | None = None
    sheet: Image.Image | None = None
    with open_video(video) as (container, stream):
        ctx = stream.codec_context
        grid = spritesheet_grid(
            ctx.width, ctx.height, tiles=tiles, columns=columns, tile_width=tile_width
        )
        columns, rows, tile_height = grid.columns, grid.rows, grid.tile_height
        duration = _duration(container, stream)
        # (time, what to make of the frame there): the thumbnail a third of the way in;
        # tiles at the middle of each of `tiles` equal slices, so never the black first
        # frame of a fade-in, never past the end.
        wanted: list[tuple[float, int]] = []
        if thumbnail is not None:
            wanted.append((duration / 3 if duration > 0 else 0.0, _THUMBNAIL))
        if spritesheet is not None:
            sheet = Image.new("RGB", (columns * tile_width, rows * tile_height))
            wanted += [((i + 0.5) * duration / tiles, i) for i in range(tiles)]
        wanted.sort()
        frames = _frames_at(container, stream, [t for t, _ in wanted], duration)
        # One scaler per output size: a scaler is set up (filter tables and all) once
        # and reused for every frame of the same size, not once per frame.
        thumb_scaler, tile_scaler = VideoReformatter(), VideoReformatter()
        found = 0
        for (_, use), frame in zip(wanted, frames, strict=False):
            found += 1
            if use == _THUMBNAIL:
                width = min(max_width, frame.width)
                height = max(1, round(frame.height * width / frame.width))
                thumb = _to_image(thumb_scaler, frame, width, height)
            elif sheet is not None:
                tile = _to_image(tile_scaler, frame, tile_width, tile_height)
                sheet.paste(tile, ((use % columns) * tile_width, (use // columns) * tile_height))
        # _frames_at yields a frame for every target once it has found any frame.
        if wanted and found == 0:
            raise _no_frames(video)
    if thumbnail is not None and thumb is not None:
        _save_atomic(thumb, thumbnail, "WEBP", quality=80, method=4)
    if spritesheet is not None and sheet is not None:
        _save_atomic(sheet, spritesheet, "JPEG", quality=82, optimize=True)


_THUMBNAIL = -1
# Below this many pixels per frame, decoding threads cost more to start than they save.
_THREADED_MIN_PIXELS = 640 * 360


def _frames_at(
    container: InputContainer, stream: VideoStream, targets: list[float], duration: float
) -> Iterator[VideoFrame]:
    """For each target time (ascending, seconds from the start), the first frame at or
    after it, or the last frame when the video ends before it."""
    ctx = stream.codec_context
    stream.thread_type = "AUTO" if ctx.width * ctx.height >= _THREADED_MIN_PIXELS else "NONE"
    start = _seconds(stream, stream.start_time) or 0.0
    if duration <= _SEQUENTIAL_MAX_SECONDS:
        yield from _scan(container.decode(stream), targets, start)
        return
    for target in targets:
        offset = (stream.start_time or 0) + _to_pts(stream, target)
        container.seek(offset, stream=stream, backward=True)
        yield from _scan(container.decode(stream), [target], start)


def _scan(frames: Iterator[VideoFrame], targets: list[float], start: float) -> Iterator[VideoFrame]:
    pending = list(targets)
    last: VideoFrame | None = None
    for frame in frames:
        last = frame
        t = (frame.time - start) if frame.time is not None else math.inf
        while pending and t >= pending[0]:
            pending.pop(0)
            yield frame
        if not pending:
            return
    if last is not None:
        for _ in pending:
            yield last


def _duration(container: InputContainer, stream: VideoStream) -> float:
    seconds = _seconds(stream, stream.duration)
    if seconds:
        return seconds
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _seconds(stream: VideoStream, pts: int | None) -> float | None:
    if pts is None or stream.time_base is None:
        return None
    return float(pts * stream.time_base)


def _to_pts(stream: VideoStream, seconds: float) -> int:
    if stream.time_base is None:
        return 0
    return int(seconds / stream.time_base)


def _to_image(scaler: VideoReformatter, frame: VideoFrame, width: int, height: int) -> Image.Image:
    # Scaling in swscale on the YUV frame is cheaper than converting full size
    # to RGB and resizing in Pillow; AREA averages properly when shrinking a lot.
    rgb = scaler.reformat(frame, width=width, height=height, format="rgb24", interpolation="AREA")
    return Image.fromarray(rgb.to_ndarray())


def _save_atomic(image: Image.Image, out: Path, fmt: str, **params: Any) -> None:
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.part")
    try:
        image.save(tmp, format=fmt, **params)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _no_frames(video: Path) -> InvalidParameter:
    return InvalidParameter(f"{video.name} has no decodable frames", param="video")
