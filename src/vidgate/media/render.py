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

import colorsys
import math
import os
import re
import secrets
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import Colorspace
from av.video.stream import VideoStream
from PIL import ExifTags, Image, ImageDraw, ImageFont

from vidgate.core.errors import InvalidParameter
from vidgate.media.images import decode_image, decode_image_async
from vidgate.media.probe import open_video, probe_video

__all__ = [
    "Background",
    "ClipRequest",
    "load_background",
    "load_background_async",
    "render_clip",
]

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

MIN_SIDE = 16
MAX_SIDE = 4096
MAX_FPS = 120

_WHITE = (255, 255, 255)
_PANEL = (0, 0, 0, 168)
_COUNTER_BOX = (24, 24, 24)
_BANNER = (255, 204, 0)

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


# --- I420 buffers ---------------------------------------------------------------
#
# A frame is one flat uint8 array laid out as FFmpeg's yuv420p: the Y plane, then U,
# then V at half resolution. VideoFrame.from_ndarray/to_ndarray use the same layout,
# so a buffer goes to the encoder with a single copy.


@dataclass(frozen=True)
class _Planes:
    y: U8
    u: U8
    v: U8


def _planes(buf: U8, width: int, height: int) -> _Planes:
    luma = width * height
    chroma = luma // 4
    return _Planes(
        y=buf[:luma].reshape(height, width),
        u=buf[luma : luma + chroma].reshape(height // 2, width // 2),
        v=buf[luma + chroma :].reshape(height // 2, width // 2),
    )


def _i420_from_frame(frame: VideoFrame) -> U8:
    arr: U8 = np.ascontiguousarray(frame.to_ndarray(), dtype=np.uint8)
    return arr.reshape(-1)


def _rgb_to_i420(rgb: U8) -> U8:
    frame = VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return _i420_from_frame(
        frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range="MPEG")
    )


def _yuv_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    # Go through the same converter as the frames so a flat colour drawn straight
    # into the planes matches the same colour drawn with Pillow.
    block = np.empty((2, 2, 3), dtype=np.uint8)
    block[...] = rgb
    buf = _rgb_to_i420(block)
    return int(buf[0]), int(buf[4]), int(buf[5])


def _cover_i420(frame: VideoFrame, width: int, height: int) -> U8:
    """Scale ``frame`` to cover width x height (aspect kept), crop the centre, as I420."""
    scale = max(width / frame.width, height / frame.height)
    sw = max(width, _even(math.ceil(frame.width * scale)))
    sh = max(height, _even(math.ceil(frame.height * scale)))
    scaled = frame.reformat(
        width=sw,
        height=sh,
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range="MPEG",
        interpolation="BILINEAR",
    )
    src = _planes(_i420_from_frame(scaled), sw, sh)
    if (sw, sh) == (width, height):
        return np.concatenate([src.y.reshape(-1), src.u.reshape(-1), src.v.reshape(-1)])
    ox, oy = _even((sw - width) // 2), _even((sh - height) // 2)
    out = np.empty(width * height * 3 // 2, dtype=np.uint8)
    dst = _planes(out, width, height)
    dst.y[...] = src.y[oy : oy + height, ox : ox + width]
    dst.u[...] = src.u[oy // 2 : (oy + height) // 2, ox // 2 : (ox + width) // 2]
    dst.v[...] = src.v[oy // 2 : (oy + height) // 2, ox // 2 : (ox + width) // 2]
    return out


def _even(n: int) -> int:
    return n - (n % 2)


# --- Backgrounds ----------------------------------------------------------------


def _generated_background(width: int, height: int, rng: np.random.Generator) -> U8:
    hue = float(rng.random())
    a = _hsv(hue, 0.55, 0.42)
    b = _hsv((hue + 0.18 + 0.3 * float(rng.random())) % 1.0, 0.65, 0.22)
    # A diagonal two-colour gradient: cheap, clearly synthetic, and different per seed.
    t = (
        np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :] * 0.6
        + np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None] * 0.4
    )
    rgb = np.asarray(a, np.float32) * (1 - t[..., None]) + np.asarray(b, np.float32) * t[..., None]
    img = rgb.astype(np.uint8)
    step = max(8, _even(height // 8))
    img[::step, :, :] = np.minimum(img[::step, :, :].astype(np.uint16) + 28, 255).astype(np.uint8)
    img[:, ::step, :] = np.minimum(img[:, ::step, :].astype(np.uint16) + 28, 255).astype(np.uint8)
    return _rgb_to_i420(img)


@dataclass(frozen=True)
class Background:
    """An input image fitted to a clip's size, as I420: what a clip draws over.

    Made once per job (``load_background``) and shared by all of its outputs.
    """

    width: int
    height: int
    i420: U8


def load_background(data: bytes, width: int, height: int) -> Background:
    """Decode an input image within the memory budget for decoded images and fit it
    to ``width`` x ``height`` (cover: scaled, centre cropped, transparency on black).
    Blocks while the budget is full; raises ``InvalidImage(param="input_reference")``."""
    i420 = decode_image(
        data,
        lambda _, image: _fit(image, width, height),
        param=_BACKGROUND_PARAM,
        draft=_draft_for(width, height),
        work_bytes=lambda src_w, src_h: _fit_bytes(src_w, src_h, width, height),
    )
    return Background(width, height, i420)


async def load_background_async(data: bytes, width: int, height: int) -> Background:
    """``load_background`` from the event loop: waiting for the budget holds no thread."""
    i420 = await decode_image_async(
        data,
        lambda _, image: _fit(image, width, height),
        param=_BACKGROUND_PARAM,
        draft=_draft_for(width, height),
        work_bytes=lambda src_w, src_h: _fit_bytes(src_w, src_h, width, height),
    )
    return Background(width, height, i420)


_BACKGROUND_PARAM = "input_reference"
# Source rows are made RGB and narrowed to the output's width this many bytes at a time.
_CHUNK_BYTES = 1024 * 1024
# After the resize, per output pixel: RGB (4), turned by EXIF (4), as an array (3),
# through PyAV into I420 (3 + 1.5 + 1.5), the I420 kept (1.5); never all at once.
# Measured: 7 bytes a pixel at most, fitting an 8192x8192 RGBA PNG to 2160x3840.
_FIT_BYTES_PER_PIXEL = 10
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = {Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE}
_SWAPS_SIDES |= {Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270}


def _draft_for(width: int, height: int) -> tuple[int, int]:
    # A JPEG decodes at 1/2..1/8 scale for free, down to no less than the longer side
    # in both directions, since its EXIF orientation may turn it by 90 degrees.
    side = max(width, height)
    return side, side


def _fit(image: Image.Image, width: int, height: int) -> U8:
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    transpose = _EXIF_TRANSPOSE.get(orientation)
    swap = transpose in _SWAPS_SIDES
    rgb = _cover_rgb(image, height if swap else width, width if swap else height)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    return _rgb_to_i420(np.asarray(rgb, dtype=np.uint8))


@dataclass(frozen=True)
class _Cover:
    """Where a width x height output's pixels come from in a src_w x src_h source:
    the centred crop with the output's aspect, and the rows and columns around it
    that bilinear filtering reads."""

    ratio: float  # source pixels per output pixel
    left: float
    top: float
    crop_w: float
    crop_h: float
    x0: int
    x1: int
    y0: int
    y1: int

    @classmethod
    def of(cls, src_w: int, src_h: int, width: int, height: int) -> _Cover:
        ratio = min(src_w / width, src_h / height)
        # Clamped: rounding must not reach past the source, which Pillow refuses.
        crop_w, crop_h = min(src_w, width * ratio), min(src_h, height * ratio)
        left, top = max(0.0, (src_w - crop_w) / 2), max(0.0, (src_h - crop_h) / 2)
        # Bilinear reads up to one output pixel's worth of source on each side (one
        # source pixel when enlarging); one more for rounding.
        reach = math.ceil(max(ratio, 1.0)) + 1
        return cls(
            ratio,
            left,
            top,
            crop_w,
            crop_h,
            x0=max(0, math.floor(left) - reach),
            x1=min(src_w, math.ceil(left + crop_w) + reach),
            y0=max(0, math.floor(top) - reach),
            y1=min(src_h, math.ceil(top + crop_h) + reach),
        )


def _fit_bytes(src_w: int, src_h: int, width: int, height: int) -> int:
    """The most that fitting a src_w x src_h image holds besides the image itself:
    the source's rows at the output's width, a chunk's conversions, then the output
    as RGB (resized, turned), as an array and through I420. Either way round (EXIF)."""
    upright, turned = _Cover.of(src_w, src_h, width, height), _Cover.of(src_w, src_h, height, width)
    wide = max(width * (upright.y1 - upright.y0), height * (turned.y1 - turned.y0))
    return wide * 4 + 5 * _CHUNK_BYTES + width * height * _FIT_BYTES_PER_PIXEL


def _cover_rgb(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale ``image`` to cover width x height (aspect kept), crop the centre, as RGB
    with any transparency composited onto black.

    Never a second copy of the source: converted to RGB, composited, or premultiplied
    for resizing (as Pillow does with RGBA), a full-size image would be another copy
    of the largest thing in memory. So the resize is done as Pillow does it, in two
    passes, and the first (across, each row on its own) a chunk of rows at a time,
    straight after each chunk is made RGB; only the second pass sees a whole image,
    already at the output's width. The result is the same as one resize of the whole.
    """
    cover = _Cover.of(image.width, image.height, width, height)
    across = (cover.left - cover.x0, cover.left + cover.crop_w - cover.x0)
    wide = Image.new("RGB", (width, cover.y1 - cover.y0))
    rows = max(1, _CHUNK_BYTES // ((cover.x1 - cover.x0) * 4))
    for y in range(cover.y0, cover.y1, rows):
        chunk = _flatten(image.crop((cover.x0, y, cover.x1, min(cover.y1, y + rows))))
        row_box = (across[0], 0.0, across[1], float(chunk.height))
        wide.paste(
            chunk.resize((width, chunk.height), Image.Resampling.BILINEAR, box=row_box),
            (0, y - cover.y0),
        )
    down = (0.0, cover.top - cover.y0, float(width), cover.top + cover.crop_h - cover.y0)
    return wide.resize((width, height), Image.Resampling.BILINEAR, box=down)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image.convert("RGB")


def _background_i420(source: Path | Background, width: int, height: int) -> U8:
    if isinstance(source, Path):
        source = load_background(source.read_bytes(), width, height)
    if (source.width, source.height) != (width, height):
        raise ValueError(f"a {source.width}x{source.height} background for a {width}x{height} clip")
    return source.i420


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


# --- Static overlay -------------------------------------------------------------


@lru_cache(maxsize=32)
def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _line_height(font: Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return int(ascent + descent)
    return int(font.getbbox("Hg")[3]) + 1


def _text_width(font: Font, text: str) -> int:
    return math.ceil(font.getlength(text))


def _wrap(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines`` lines, the last one ellipsised."""
    words = re.sub(r"\s+", " ", text).strip().split(" ") if text.strip() else []
    lines: list[str] = []
    current = ""
    for word in words:
        # One line past the limit is enough to know an ellipsis is needed; prompts
        # can be thousands of characters long.
        if len(lines) > max_lines:
            break
        candidate = f"{current} {word}" if current else word
        if _text_width(font, candidate) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        # A word wider than the line (a URL, a long token) is broken anywhere.
        while len(word) > 1 and _text_width(font, word) > max_width and len(lines) <= max_lines:
            cut = _fitting_prefix(font, word, max_width)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and _text_width(font, last + "…") > max_width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "…"]
    return lines or ["(empty prompt)"]


def _fitting_prefix(font: Font, word: str, max_width: int) -> int:
    """Length of the longest prefix of ``word`` that fits (at least 1 character)."""
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _text_width(font, word[:mid]) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class _Band:
    """Rows [top, bottom) of the overlay, pre-multiplied for a fast integer blend."""

    top: int
    bottom: int
    y_pre: U16
    y_inv: U16
    u_pre: U16
    v_pre: U16
    c_inv: U16


class _Overlay:
    """The text panels, blended onto a background buffer in place.

    Blending in YUV gives the same result as blending in RGB and converting, because
    the conversion is affine; that lets a per-frame background (remix) take the
    overlay without any per-frame RGB work.
    """

    def __init__(self, rgba: U8) -> None:
        height, width = rgba.shape[:2]
        self.width, self.height = width, height
        ov = _planes(_rgb_to_i420(rgba[..., :3]), width, height)
        alpha = rgba[..., 3].astype(np.uint16)
        c_alpha = (
            alpha[0::2, 0::2] + alpha[1::2, 0::2] + alpha[0::2, 1::2] + alpha[1::2, 1::2] + 2
        ) // 4
        self.bands: list[_Band] = []
        for top, bottom in _row_runs(alpha.max(axis=1) > 0):
            a = alpha[top:bottom]
            ca = c_alpha[top // 2 : bottom // 2]
            self.bands.append(
                _Band(
                    top=top,
                    bottom=bottom,
                    y_pre=ov.y[top:bottom].astype(np.uint16) * a,
                    y_inv=255 - a,
                    u_pre=ov.u[top // 2 : bottom // 2].astype(np.uint16) * ca,
                    v_pre=ov.v[top // 2 : bottom // 2].astype(np.uint16) * ca,
                    c_inv=255 - ca,
                )
            )

    def apply(self, buf: U8) -> None:
        p = _planes(buf, self.width, self.height)
        for band in self.bands:
            ys = slice(band.top, band.bottom)
            cs = slice(band.top // 2, band.bottom // 2)
            _blend(p.y[ys], band.y_pre, band.y_inv)
            _blend(p.u[cs], band.u_pre, band.c_inv)
            _blend(p.v[cs], band.v_pre, band.c_inv)


def _blend(dst: U8, pre: U16, inv: U16) -> None:
    mixed = dst.astype(np.uint16)
    mixed *= inv
    mixed += pre
    mixed += 127
    mixed //= 255
    dst[...] = mixed


def _row_runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Even-aligned [top, bottom) runs of true rows, so chroma rows line up."""
    runs: list[tuple[int, int]] = []
    rows = np.logical_or(mask[0::2], mask[1::2])
    start: int | None = None
    for i, on in enumerate(rows.tolist()):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((start * 2, i * 2))
            start = None
    if start is not None:
        runs.append((start * 2, len(rows) * 2))
    return runs


@dataclass(frozen=True)
class _Layout:
    overlay: _Overlay
    counter_box: tuple[int, int, int, int]  # x, y, w, h
    counter_font: Font
    counter_pad: int
    free_top: int
    free_bottom: int


def _layout(
    width: int,
    height: int,
    *,
    prompt: str,
    label: str,
    banner: str | None,
    total_frames: int,
) -> _Layout:
    # Scale by the short side so portrait (720x1280) looks like landscape (1280x720).
    short = min(width, height)
    margin = max(2, _even(round(short * 0.025)))
    pad = max(2, _even(round(short * 0.012)))
    big = _font(max(8, round(short / 22)))
    small = _font(max(8, round(short / 30)))
    big_lh, small_lh = _line_height(big), _line_height(small)
    inner_w = max(1, width - 2 * margin - 2 * pad)

    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)

    # Prompt panel, top. At most a quarter of the height so the picture stays visible.
    max_lines = max(1, min(3, (height // 4 - 2 * pad) // big_lh))
    lines = _wrap(prompt, big, inner_w, max_lines)
    top_bottom = _even(margin + 2 * pad + len(lines) * big_lh + 1)
    draw.rectangle((margin, margin, width - margin - 1, top_bottom - 1), fill=_PANEL)
    for i, line in enumerate(lines):
        draw.text((margin + pad, margin + pad + i * big_lh), line, font=big, fill=_WHITE)
    free_top = top_bottom

    if banner:
        bw = _even(_text_width(big, banner) + 2 * pad + 1)
        by = top_bottom + pad
        bh = _even(big_lh + 2 * pad + 1)
        draw.rectangle((margin, by, margin + bw - 1, by + bh - 1), fill=(*_BANNER, 255))
        draw.text((margin + pad, by + pad), banner, font=big, fill=(0, 0, 0, 255))
        free_top = by + bh

    # Footer: label and "vidgate sandbox" share a line when they fit, then the
    # counter sits in an opaque box whose size fits the longest "frame N/N".
    sandbox = "vidgate sandbox"
    gap = 2 * pad
    label = _wrap(label, small, inner_w, 1)[0] if label.strip() else ""
    footer_lines: list[tuple[str, str]] = []
    if _text_width(small, label) + gap + _text_width(small, sandbox) <= inner_w:
        footer_lines.append((label, sandbox))
    else:
        footer_lines += [(label, ""), (sandbox, "")]
    counter_w = _even(_text_width(small, f"frame {total_frames}/{total_frames}") + 2 * pad + 1)
    counter_h = _even(small_lh + pad + 1)
    footer_h = _even(2 * pad + len(footer_lines) * small_lh + counter_h + 1)
    footer_top = _even(height - margin - footer_h)
    draw.rectangle((margin, footer_top, width - margin - 1, height - margin - 1), fill=_PANEL)
    for i, (left, right) in enumerate(footer_lines):
        y = footer_top + pad + i * small_lh
        draw.text((margin + pad, y), left, font=small, fill=_WHITE)
        if right:
            rx = width - margin - pad - _text_width(small, right)
            draw.text((rx, y), right, font=small, fill=_WHITE)
    cx = margin  # With the box's own padding, its text lines up with the label.
    cy = _even(footer_top + pad + len(footer_lines) * small_lh)
    counter_w = min(counter_w, _even(width - cx))
    counter_h = min(counter_h, _even(height - cy))
    draw.rectangle((cx, cy, cx + counter_w - 1, cy + counter_h - 1), fill=(*_COUNTER_BOX, 255))

    return _Layout(
        overlay=_Overlay(np.asarray(img, dtype=np.uint8)),
        counter_box=(cx, cy, counter_w, counter_h),
        counter_font=small,
        counter_pad=pad,
        free_top=free_top,
        free_bottom=footer_top,
    )


# --- Per-frame parts ------------------------------------------------------------


class _Counter:
    """Redraws "frame i/N" into its opaque box; only luma changes, as both the box and
    the text are neutral grey."""

    def __init__(self, layout: _Layout, total: int) -> None:
        self.x, self.y, self.w, self.h = layout.counter_box
        self.font = layout.counter_font
        self.pad = layout.counter_pad
        self.total = total
        self.box_y = _yuv_of(_COUNTER_BOX)[0]
        self.text_y = _yuv_of(_WHITE)[0]

    def draw(self, planes: _Planes, number: int) -> None:
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
        size = max(4, _even(min(width, height) // 6))
        if bottom - top < size:  # Tiny frames: the panels leave no room; roam freely.
            top, bottom = 0, height
        self.size = min(size, _even(bottom - top), _even(width))
        self.x_span = max(0, width - self.size)
        self.y_top = _even(top)
        self.y_span = max(0, bottom - self.size - self.y_top)
        color = _hsv(float(rng.random()), 0.85, 1.0)
        self.yuv = _yuv_of(color)
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

    def draw(self, planes: _Planes, index: int) -> None:
        x = _even(round(_bounce(self.x0 + self.vx * index) * self.x_span))
        y = self.y_top + _even(round(_bounce(self.y0 + self.vy * index) * self.y_span))
        s, h = self.size, self.size // 2
        planes.y[y : y + s, x : x + s][self.mask] = self.yuv[0]
        planes.u[y // 2 : y // 2 + h, x // 2 : x // 2 + h][self.c_mask] = self.yuv[1]
        planes.v[y // 2 : y // 2 + h, x // 2 : x // 2 + h][self.c_mask] = self.yuv[2]


def _bounce(t: float) -> float:
    """Triangle wave in 0..1: position along a side for a point that bounces off walls."""
    t %= 2.0
    return t if t <= 1.0 else 2.0 - t


# --- Source videos --------------------------------------------------------------


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


def _source_count(path: Path, fps: int) -> tuple[int, float, float]:
    """(output frames that cover the source at ``fps``, source duration, source rate)."""
    info = probe_video(path)
    rate = info.fps or float(fps)
    duration = info.duration if info.duration > 0 else info.frames / rate
    # Same rate: keep every source frame, as promised for extend. Otherwise
    # resample by time so the source keeps its duration.
    count = info.frames if abs(rate - fps) < 1e-3 else max(1, round(duration * fps))
    return count, duration, rate


def _source_frames(
    path: Path, width: int, height: int, fps: int, count: int, *, loop: bool
) -> Iterator[U8]:
    """I420 buffers of the source frame showing at each output time k/fps, k < count.

    Frames are picked by timestamp (the latest one at or before each time), so a
    source at another rate is resampled rather than sped up, and ``loop`` wraps
    around to the start. The same array may be yielded twice; callers copy before
    drawing on it.
    """
    _, period, rate = _source_count(path, fps)
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
                converted = _cover_i420(cur[1], width, height)
            yield converted
    finally:
        frames.close()


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
    source_frames = _source_count(req.extend_source, fps)[0] if req.extend_source else 0
    total = source_frames + new_frames
    tick = _Progress(progress, total)

    banner = "REMIX" if req.remix_source else "EXTEND" if req.extend_source else None
    layout = _layout(w, h, prompt=req.prompt, label=req.label, banner=banner, total_frames=total)
    counter = _Counter(layout, total)
    disc = _Disc(w, h, layout.free_top, layout.free_bottom, fps, rng)

    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        container.metadata["comment"] = "vidgate sandbox test clip"
        enc = _Encoder(container, w, h, fps)

        background: U8 | None = None
        if req.extend_source is not None:
            for buf in _source_frames(req.extend_source, w, h, fps, source_frames, loop=False):
                enc.write(buf)
                background = buf
                tick.step()
        if req.background is not None:
            background = _background_i420(req.background, w, h)

        if req.remix_source is not None:
            frames = _source_frames(req.remix_source, w, h, fps, new_frames, loop=True)
            for i, src in enumerate(frames):
                buf = src.copy()
                layout.overlay.apply(buf)
                _draw_moving(buf, w, h, disc, counter, i, source_frames + i + 1)
                enc.write(buf)
                tick.step()
        else:
            base = background.copy() if background is not None else None
            if base is None:
                base = _generated_background(w, h, rng)
            layout.overlay.apply(base)
            for i in range(new_frames):
                buf = base.copy()
                _draw_moving(buf, w, h, disc, counter, i, source_frames + i + 1)
                enc.write(buf)
                tick.step()
        enc.finish()


def _draw_moving(
    buf: U8, width: int, height: int, disc: _Disc, counter: _Counter, index: int, number: int
) -> None:
    planes = _planes(buf, width, height)
    disc.draw(planes, index)
    counter.draw(planes, number)
