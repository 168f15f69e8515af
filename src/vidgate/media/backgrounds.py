"""What a sandbox clip is drawn over: an input image fitted to the clip's size within
the memory budget for decoded images, or a generated gradient, as I420."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

from vidgate.media.i420 import U8, even, rgb_to_i420
from vidgate.media.images import Decoding, decode_image, decode_image_async


def generated_background(width: int, height: int, rng: np.random.Generator) -> U8:
    hue = float(rng.random())
    a = hsv(hue, 0.55, 0.42)
    b = hsv((hue + 0.18 + 0.3 * float(rng.random())) % 1.0, 0.65, 0.22)
    # A diagonal two-colour gradient: cheap, clearly synthetic, and different per seed.
    t = (
        np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :] * 0.6
        + np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None] * 0.4
    )
    rgb = np.asarray(a, np.float32) * (1 - t[..., None]) + np.asarray(b, np.float32) * t[..., None]
    img = rgb.astype(np.uint8)
    step = max(8, even(height // 8))
    img[::step, :, :] = np.minimum(img[::step, :, :].astype(np.uint16) + 28, 255).astype(np.uint8)
    img[:, ::step, :] = np.minimum(img[:, ::step, :].astype(np.uint16) + 28, 255).astype(np.uint8)
    return rgb_to_i420(img)


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
    return Background(width, height, decode_image(data, _fitting(width, height)))


async def load_background_async(data: bytes, width: int, height: int) -> Background:
    """``load_background`` from the event loop: waiting for the budget holds no thread."""
    return Background(width, height, await decode_image_async(data, _fitting(width, height)))


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


def _fitting(width: int, height: int) -> Decoding[U8]:
    # A JPEG decodes at 1/2..1/8 scale for free, down to no less than the longer side
    # in both directions, since its EXIF orientation may turn it by 90 degrees.
    side = max(width, height)
    return Decoding(
        lambda _, image: _fit(image, width, height),
        param=_BACKGROUND_PARAM,
        draft=(side, side),
        work_bytes=lambda src_w, src_h: _fit_bytes(src_w, src_h, width, height),
    )


def _fit(image: Image.Image, width: int, height: int) -> U8:
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    transpose = _EXIF_TRANSPOSE.get(orientation)
    swap = transpose in _SWAPS_SIDES
    rgb = _cover_rgb(image, height if swap else width, width if swap else height)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    return rgb_to_i420(np.asarray(rgb, dtype=np.uint8))


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


def background_i420(source: Path | Background, width: int, height: int) -> U8:
    if isinstance(source, Path):
        source = load_background(source.read_bytes(), width, height)
    if (source.width, source.height) != (width, height):
        raise ValueError(f"a {source.width}x{source.height} background for a {width}x{height} clip")
    return source.i420


def hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return round(r * 255), round(g * 255), round(b * 255)
