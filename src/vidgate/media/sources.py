"""Frames of a source video (remix, extend) at a clip's size and rate, as I420."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

from av.video.frame import VideoFrame

from vidgate.core.errors import InvalidParameter
from vidgate.media.i420 import U8, cover_i420
from vidgate.media.probe import open_video, probe_video


def _decoded(path: Path, rate: float) -> Generator[tuple[float, VideoFrame]]:
    """(seconds since the first frame, frame) for every frame of ``path``."""
    with open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        first: float | None = None
        for index, frame in enumerate(container.decode(stream)):
            t = frame.time if frame.time is not None else index / rate
            if first is None:
                first = t
            yield t - first, frame


def source_count(path: Path, fps: int) -> tuple[int, float, float]:
    """(output frames that cover the source at ``fps``, source duration, source rate)."""
    info = probe_video(path)
    rate = info.fps or float(fps)
    duration = info.duration if info.duration > 0 else info.frames / rate
    # Same rate: keep every source frame, as promised for extend. Otherwise
    # resample by time so the source keeps its duration.
    count = info.frames if abs(rate - fps) < 1e-3 else max(1, round(duration * fps))
    return count, duration, rate


def source_frames(
    path: Path, width: int, height: int, fps: int, count: int, *, loop: bool
) -> Iterator[U8]:
    """I420 buffers of the source frame showing at each output time k/fps, k < count.

    Frames are picked by timestamp (the latest one at or before each time), so a
    source at another rate is resampled rather than sped up, and ``loop`` wraps
    around to the start. The same array may be yielded twice; callers copy before
    drawing on it.
    """
    _, period, rate = source_count(path, fps)
    slack = 0.5 / fps  # Float timestamps: treat "half a frame early" as on time.
    frames = _decoded(path, rate)
    try:
        cur = next(frames, None)
        if cur is None:
            raise InvalidParameter(f"{path.name} has no decodable frames", param="video")
        nxt = next(frames, None)
        converted: U8 | None = None
        last_t = -1.0
        for k in range(count):
            t = k / fps
            if loop and period > 0:
                t %= period
            if t < last_t:
                frames.close()
                frames = _decoded(path, rate)
                cur, nxt, converted = next(frames), next(frames, None), None
            last_t = t
            while nxt is not None and nxt[0] <= t + slack:
                cur, nxt, converted = nxt, next(frames, None), None
            if converted is None:
                converted = cover_i420(cur[1], width, height)
            yield converted
    finally:
        frames.close()
