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
from pathlib import Path
from typing import Any

from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from vidgate.core.errors import InvalidParameter
from vidgate.media.probe import open_video

__all__ = [
    "SPRITESHEET_CONTENT_TYPE",
    "THUMBNAIL_CONTENT_TYPE",
    "VIDEO_CONTENT_TYPE",
    "make_spritesheet",
    "make_thumbnail",
]

THUMBNAIL_CONTENT_TYPE = "image/webp"
SPRITESHEET_CONTENT_TYPE = "image/jpeg"
VIDEO_CONTENT_TYPE = "video/mp4"

# Up to this length one sequential decode is cheaper than a seek per frame, since
# every seek decodes from a keyframe that may be seconds before its target.
_SEQUENTIAL_MAX_SECONDS = 20.0


def make_thumbnail(video: Path, out: Path, *, max_width: int = 640) -> None:
    """Write a WebP of the frame about a third of the way in (the first frame of a
    clip too short to have one), at most ``max_width`` wide."""
    if max_width < 1:
        raise ValueError("max_width must be positive")
    with open_video(video) as (container, stream):
        duration = _duration(container, stream)
        target = duration / 3 if duration > 0 else 0.0
        frame = next(_frames_at(container, stream, [target], duration), None)
        if frame is None:
            raise _no_frames(video)
        width = min(max_width, frame.width)
        height = max(1, round(frame.height * width / frame.width))
        image = _to_image(frame, width, height)
    _save_atomic(image, out, "WEBP", quality=80, method=4)


def make_spritesheet(
    video: Path, out: Path, *, tiles: int = 10, columns: int = 5, tile_width: int = 160
) -> None:
    """Write a JPEG grid of ``tiles`` evenly spaced frames, ``columns`` per row, left
    to right then top to bottom; each tile is ``tile_width`` wide with the video's
    aspect ratio."""
    if tiles < 1 or columns < 1 or tile_width < 1:
        raise ValueError("tiles, columns and tile_width must be positive")
    columns = min(columns, tiles)
    rows = math.ceil(tiles / columns)
    with open_video(video) as (container, stream):
        ctx = stream.codec_context
        tile_height = max(1, round(ctx.height * tile_width / ctx.width))
        sheet = Image.new("RGB", (columns * tile_width, rows * tile_height))
        duration = _duration(container, stream)
        # The middle of each of `tiles` equal slices: never the black first frame of a
        # fade-in, never past the end.
        targets = [(i + 0.5) * duration / tiles for i in range(tiles)]
        placed = 0
        for i, frame in enumerate(_frames_at(container, stream, targets, duration)):
            tile = _to_image(frame, tile_width, tile_height)
            sheet.paste(tile, ((i % columns) * tile_width, (i // columns) * tile_height))
            placed += 1
        if placed == 0:
            raise _no_frames(video)
    _save_atomic(sheet, out, "JPEG", quality=82, optimize=True)


def _frames_at(
    container: InputContainer, stream: VideoStream, targets: list[float], duration: float
) -> Iterator[VideoFrame]:
    """For each target time (ascending, seconds from the start), the first frame at or
    after it, or the last frame when the video ends before it."""
    stream.thread_type = "AUTO"
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


def _to_image(frame: VideoFrame, width: int, height: int) -> Image.Image:
    # Scaling in swscale on the YUV frame is cheaper than converting full size
    # to RGB and resizing in Pillow; AREA averages properly when shrinking a lot.
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
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
