"""The sandbox renderer: a stand-in for a video model that draws an obvious test clip.

It lets the whole gateway (jobs, storage, previews, webhooks, the API) run end to end
with no provider and no GPU. The clip says what it is on every frame: the prompt, a
label, a frame counter and the words "vidgate sandbox" over a seeded background with
a moving disc, so nobody mistakes it for a model's output.

Speed comes from working in the encoder's own format. Everything that does not move
is drawn once with Pillow, converted once to planar YUV 4:2:0, and each frame is a
copy of that buffer with only the disc and the counter redrawn; RGB-to-YUV conversion
of whole frames (several ms each at 720p) never happens per frame except for remix,
whose background changes every frame and arrives from the decoder already in YUV.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image, ImageDraw

from vidgate.core.errors import InvalidParameter
from vidgate.media.backgrounds import (
    Background,
    background_i420,
    generated_background,
    hsv,
    load_background,
    load_background_async,
)
from vidgate.media.i420 import U8, Planes, even, planes, yuv_of
from vidgate.media.overlay import COUNTER_BOX, WHITE, Layout, lay_out
from vidgate.media.sources import source_count, source_frames

__all__ = [
    "Background",
    "ClipRequest",
    "load_background",
    "load_background_async",
    "render_clip",
]

MIN_SIDE = 16
MAX_SIDE = 4096
MAX_FPS = 120

# BT.709 is what players assume for HD when a stream is untagged, so converting
# with it (and tagging the stream) keeps colours the same in browsers and in FFmpeg.
_AVCOL_BT709 = 1
_AVCOL_RANGE_MPEG = 1


@dataclass(frozen=True)
class ClipRequest:
    width: int
    height: int
    fps: int
    seconds: int
    prompt: str
    label: str
    seed: int | None = None
    # An input image: a file, decoded for this clip, or one already fitted to its size.
    background: Path | Background | None = None
    remix_source: Path | None = None
    extend_source: Path | None = None


def render_clip(
    req: ClipRequest, out: Path, progress: Callable[[float], None] | None = None
) -> None:
    """Render ``req`` as an H.264 MP4 at ``out``.

    The file appears at ``out`` only when complete (written beside it, then renamed),
    so a crash or an exception never leaves a truncated video where a reader expects
    a finished one. ``progress`` receives fractions in 0..1 every few frames and 1.0
    at the end.
    """
    _validate(req)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.part")
    try:
        _render(req, tmp, progress)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0)


def _validate(req: ClipRequest) -> None:
    for side in (req.width, req.height):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise InvalidParameter(
                f"size {req.width}x{req.height} is out of range: each side must be "
                f"between {MIN_SIDE} and {MAX_SIDE} pixels",
                param="size",
            )
        if side % 2:
            # 4:2:0 chroma covers 2x2 pixel blocks; odd sides cannot be encoded.
            raise InvalidParameter(
                f"size {req.width}x{req.height} is invalid: width and height must be even",
                param="size",
            )
    if not 1 <= req.fps <= MAX_FPS:
        raise InvalidParameter(f"fps must be between 1 and {MAX_FPS}", param="fps")
    if req.seconds < 1:
        raise InvalidParameter("seconds must be at least 1", param="seconds")
    if req.remix_source is not None and (
        req.extend_source is not None or req.background is not None
    ):
        raise InvalidParameter(
            "a remix cannot also extend a video or use a background image",
            param="remix_source",
        )


# --- Per-frame parts ------------------------------------------------------------


class _Counter:
    """Redraws "frame i/N" into its opaque box; only luma changes, as both the box and
    the text are neutral grey."""

    def __init__(self, layout: Layout, total: int) -> None:
        self.x, self.y, self.w, self.h = layout.counter_box
        self.font = layout.counter_font
        self.pad = layout.counter_pad
        self.total = total
        self.box_y = yuv_of(COUNTER_BOX)[0]
        self.text_y = yuv_of(WHITE)[0]

    def draw(self, planes: Planes, number: int) -> None:
        if self.w <= 0 or self.h <= 0:
            return
        mask_img = Image.new("L", (self.w, self.h), 0)
        ImageDraw.Draw(mask_img).text(
            (self.pad, self.pad // 2),
            f"frame {number}/{self.total}",
            font=self.font,
            fill=255,
        )
        mask = np.asarray(mask_img, dtype=np.uint16)
        luma = (self.box_y * (255 - mask) + self.text_y * mask + 127) // 255
        planes.y[self.y : self.y + self.h, self.x : self.x + self.w] = luma.astype(np.uint8)


class _Disc:
    """A flat-coloured disc bouncing around the free band between the panels."""

    def __init__(
        self, width: int, height: int, top: int, bottom: int, fps: int, rng: np.random.Generator
    ) -> None:
        size = max(4, even(min(width, height) // 6))
        if bottom - top < size:  # Tiny frames: the panels leave no room; roam freely.
            top, bottom = 0, height
        self.size = min(size, even(bottom - top), even(width))
        self.x_span = max(0, width - self.size)
        self.y_top = even(top)
        self.y_span = max(0, bottom - self.size - self.y_top)
        color = hsv(float(rng.random()), 0.85, 1.0)
        self.yuv = yuv_of(color)
        # Cross the frame in 1.5..3 s, from a seeded start, whatever the fps.
        self.vx = (0.33 + 0.33 * float(rng.random())) / fps
        self.vy = (0.33 + 0.33 * float(rng.random())) / fps
        self.x0, self.y0 = float(rng.random()), float(rng.random())
        r = self.size / 2
        yy, xx = np.mgrid[0 : self.size, 0 : self.size]
        self.mask = (xx + 0.5 - r) ** 2 + (yy + 0.5 - r) ** 2 <= r * r
        half = self.size // 2
        cy, cx = np.mgrid[0:half, 0:half]
        self.c_mask = (cx + 0.5 - r / 2) ** 2 + (cy + 0.5 - r / 2) ** 2 <= (r / 2) ** 2

    def draw(self, planes: Planes, index: int) -> None:
        x = even(round(_bounce(self.x0 + self.vx * index) * self.x_span))
        y = self.y_top + even(round(_bounce(self.y0 + self.vy * index) * self.y_span))
        s, h = self.size, self.size // 2
        planes.y[y : y + s, x : x + s][self.mask] = self.yuv[0]
        planes.u[y // 2 : y // 2 + h, x // 2 : x // 2 + h][self.c_mask] = self.yuv[1]
        planes.v[y // 2 : y // 2 + h, x // 2 : x // 2 + h][self.c_mask] = self.yuv[2]


def _bounce(t: float) -> float:
    """Triangle wave in 0..1: position along a side for a point that bounces off walls."""
    t %= 2.0
    return t if t <= 1.0 else 2.0 - t


# --- Encoding -------------------------------------------------------------------


class _Encoder:
    def __init__(self, container: OutputContainer, width: int, height: int, fps: int) -> None:
        self.container = container
        self.width, self.height = width, height
        self.time_base = Fraction(1, fps)
        options = {
            # Test clips must be cheap: fastest preset, no lookahead or B-frames.
            "preset": "ultrafast",
            "tune": "zerolatency",
            "crf": "23",
        }
        stream: VideoStream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 0
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        # A keyframe every 2 s keeps thumbnail/spritesheet seeks short.
        ctx.gop_size = 2 * fps
        ctx.colorspace = _AVCOL_BT709
        ctx.color_primaries = _AVCOL_BT709
        ctx.color_trc = _AVCOL_BT709
        ctx.color_range = _AVCOL_RANGE_MPEG
        self.stream = stream
        self.count = 0

    def write(self, buf: U8) -> None:
        frame = VideoFrame.from_ndarray(
            buf.reshape(self.height * 3 // 2, self.width), format="yuv420p"
        )
        frame.pts = self.count
        frame.time_base = self.time_base
        self.count += 1
        self.container.mux(self.stream.encode(frame))

    def finish(self) -> None:
        self.container.mux(self.stream.encode(None))


class _Progress:
    def __init__(self, callback: Callable[[float], None] | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.every = max(1, total // 20)
        self.done = 0

    def step(self) -> None:
        self.done += 1
        if self.callback is not None and self.done % self.every == 0 and self.done < self.total:
            self.callback(self.done / self.total)


def _render(req: ClipRequest, tmp: Path, progress: Callable[[float], None] | None) -> None:
    w, h, fps = req.width, req.height, req.fps
    rng = np.random.default_rng(req.seed)
    new_frames = req.seconds * fps
    extended = source_count(req.extend_source, fps)[0] if req.extend_source else 0
    total = extended + new_frames
    tick = _Progress(progress, total)

    banner = "REMIX" if req.remix_source else "EXTEND" if req.extend_source else None
    layout = lay_out(w, h, prompt=req.prompt, label=req.label, banner=banner, total_frames=total)
    counter = _Counter(layout, total)
    disc = _Disc(w, h, layout.free_top, layout.free_bottom, fps, rng)

    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        container.metadata["comment"] = "vidgate sandbox test clip"
        enc = _Encoder(container, w, h, fps)

        background: U8 | None = None
        if req.extend_source is not None:
            for buf in source_frames(req.extend_source, w, h, fps, extended, loop=False):
                enc.write(buf)
                background = buf
                tick.step()
        if req.background is not None:
            background = background_i420(req.background, w, h)

        if req.remix_source is not None:
            frames = source_frames(req.remix_source, w, h, fps, new_frames, loop=True)
            for i, src in enumerate(frames):
                buf = src.copy()
                layout.overlay.apply(buf)
                _draw_moving(buf, w, h, disc, counter, i, extended + i + 1)
                enc.write(buf)
                tick.step()
        else:
            base = background.copy() if background is not None else None
            if base is None:
                base = generated_background(w, h, rng)
            layout.overlay.apply(base)
            for i in range(new_frames):
                buf = base.copy()
                _draw_moving(buf, w, h, disc, counter, i, extended + i + 1)
                enc.write(buf)
                tick.step()
        enc.finish()


def _draw_moving(
    buf: U8, width: int, height: int, disc: _Disc, counter: _Counter, index: int, number: int
) -> None:
    p = planes(buf, width, height)
    disc.draw(p, index)
    counter.draw(p, number)
