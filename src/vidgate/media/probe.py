"""What a stored video is: size, rate, length, codec, and whether it streams well.

Read from the container's header (and the few packets FFmpeg needs for the codec's
parameters), never every frame: finalize probes every result, and under a burst a probe
that demuxed the whole file cost as much as the rest of finalize.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from vidgate.core.errors import InvalidParameter

# Anything FFmpeg or the OS can throw at an unreadable file; av.FFmpegError is
# itself a ValueError/OSError subclass in places, so listing both is not redundant.
_READ_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError, ValueError, EOFError)
# The most a probe lets FFmpeg read looking for the streams' parameters (its own default
# is 5 MB): an index at the end of an MP4 is reached by seeking, not by reading.
_PROBE_BYTES = 1 << 20


@dataclass(frozen=True)
class MediaInfo:
    width: int
    height: int
    fps: float
    duration: float
    frames: int
    codec: str
    pix_fmt: str
    size_bytes: int
    faststart: bool


@contextmanager
def open_video(
    path: Path, *, param: str = "video", options: dict[str, str] | None = None
) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open ``path`` and its first video stream, or raise ``InvalidParameter``.

    Read errors raised inside the ``with`` body are turned into the same error, so
    every "this is not a video" failure reads the same wherever it is noticed.
    ``options``: FFmpeg's format options.
    """
    try:
        container = av.open(str(path), "r", options=options, metadata_errors="replace")
    except _READ_ERRORS as exc:
        raise InvalidParameter(f"{path.name} is not a readable video", param=param) from exc
    with container:
        # FFmpeg happily opens a still image as a one-frame video; nothing vidgate
        # stores or serves as a video should be one.
        if container.format.name.endswith("_pipe") or container.format.name == "image2":
            raise InvalidParameter(f"{path.name} is an image, not a video", param=param)
        if not container.streams.video:
            raise InvalidParameter(f"{path.name} has no video stream", param=param)
        stream = container.streams.video[0]
        if stream.codec_context.width <= 0 or stream.codec_context.height <= 0:
            raise InvalidParameter(f"{path.name} has a video stream without a size", param=param)
        try:
            yield container, stream
        except _READ_ERRORS as exc:
            # Truncated or corrupt data usually shows only once demuxing/decoding starts.
            raise InvalidParameter(f"{path.name} is not a readable video", param=param) from exc


def top_level_boxes(path: Path) -> list[str]:
    """The four-letter types of the top-level ISO-BMFF boxes of ``path``, in file order.

    Stops quietly at the first box that does not parse, so a non-MP4 file gives a
    short (often empty) list rather than an error.
    """
    boxes: list[str] = []
    with path.open("rb") as f:
        f.seek(0, 2)
        end = f.tell()
        pos = 0
        while pos + 8 <= end:
            f.seek(pos)
            size, raw_type = struct.unpack(">I4s", f.read(8))
            header = 8
            if size == 1:
                extended = f.read(8)
                if len(extended) < 8:
                    break
                (size,) = struct.unpack(">Q", extended)
                header = 16
            elif size == 0:
                size = end - pos
            if size < header or not raw_type.isascii():
                break
            boxes.append(raw_type.decode("ascii"))
            pos += size
    return boxes


def is_faststart(path: Path) -> bool:
    """True when the index (moov) comes before the media data, so playback can start
    before the whole file has arrived."""
    boxes = top_level_boxes(path)
    if "moov" not in boxes or "mdat" not in boxes:
        return False
    return boxes.index("moov") < boxes.index("mdat")


def probe_video(path: Path) -> MediaInfo:
    """Describe the first video stream of ``path``.

    Raises ``InvalidParameter(param="video")`` when the file is missing or is not a
    video FFmpeg can read.
    """
    try:
        size_bytes = path.stat().st_size
    except OSError as exc:
        raise InvalidParameter(f"{path.name} is not a readable video", param="video") from exc

    with open_video(path, options={"probesize": str(_PROBE_BYTES)}) as (container, stream):
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames = stream.frames

        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        if not frames:
            # WebM/MKV carry no frame count, but their header has the length and rate.
            # Counting packets (demuxing the whole file) is left for a file whose header
            # has neither.
            frames = round(duration * fps) if duration > 0 and fps else 0
            frames = frames or _count_packets(container, stream)
        if not duration and fps:
            duration = frames / fps
        if frames <= 0:
            raise InvalidParameter(f"{path.name} has no video frames", param="video")

        width, height, codec = ctx.width, ctx.height, ctx.name
        pix_fmt = ctx.pix_fmt or (ctx.format.name if ctx.format else "")

    try:
        faststart = is_faststart(path)
    except OSError:
        faststart = False
    return MediaInfo(
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        frames=frames,
        codec=codec,
        pix_fmt=pix_fmt,
        size_bytes=size_bytes,
        faststart=faststart,
    )


def _count_packets(container: InputContainer, stream: VideoStream) -> int:
    # Demuxing is cheap next to decoding, and flush packets (size 0) are not frames.
    return sum(1 for packet in container.demux(stream) if packet.size)
