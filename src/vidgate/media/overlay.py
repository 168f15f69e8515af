"""The static overlay of a sandbox clip: the prompt panel, the banner and the footer,
drawn once with Pillow and blended onto each background in YUV."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from vidgate.media.i420 import U8, U16, even, planes, rgb_to_i420

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

WHITE = (255, 255, 255)
COUNTER_BOX = (24, 24, 24)
_PANEL = (0, 0, 0, 168)
_BANNER = (255, 204, 0)


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


class Overlay:
    """The text panels, blended onto a background buffer in place.

    Blending in YUV gives the same result as blending in RGB and converting, because
    the conversion is affine; that lets a per-frame background (remix) take the
    overlay without any per-frame RGB work.
    """

    def __init__(self, rgba: U8) -> None:
        height, width = rgba.shape[:2]
        self.width, self.height = width, height
        ov = planes(rgb_to_i420(rgba[..., :3]), width, height)
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
        p = planes(buf, self.width, self.height)
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
class Layout:
    overlay: Overlay
    counter_box: tuple[int, int, int, int]  # x, y, w, h
    counter_font: Font
    counter_pad: int
    free_top: int
    free_bottom: int


def lay_out(
    width: int,
    height: int,
    *,
    prompt: str,
    label: str,
    banner: str | None,
    total_frames: int,
) -> Layout:
    # Scale by the short side so portrait (720x1280) looks like landscape (1280x720).
    short = min(width, height)
    margin = max(2, even(round(short * 0.025)))
    pad = max(2, even(round(short * 0.012)))
    big = _font(max(8, round(short / 22)))
    small = _font(max(8, round(short / 30)))
    big_lh, small_lh = _line_height(big), _line_height(small)
    inner_w = max(1, width - 2 * margin - 2 * pad)

    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)

    # Prompt panel, top. At most a quarter of the height so the picture stays visible.
    max_lines = max(1, min(3, (height // 4 - 2 * pad) // big_lh))
    lines = _wrap(prompt, big, inner_w, max_lines)
    top_bottom = even(margin + 2 * pad + len(lines) * big_lh + 1)
    draw.rectangle((margin, margin, width - margin - 1, top_bottom - 1), fill=_PANEL)
    for i, line in enumerate(lines):
        draw.text((margin + pad, margin + pad + i * big_lh), line, font=big, fill=WHITE)
    free_top = top_bottom

    if banner:
        bw = even(_text_width(big, banner) + 2 * pad + 1)
        by = top_bottom + pad
        bh = even(big_lh + 2 * pad + 1)
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
    counter_w = even(_text_width(small, f"frame {total_frames}/{total_frames}") + 2 * pad + 1)
    counter_h = even(small_lh + pad + 1)
    footer_h = even(2 * pad + len(footer_lines) * small_lh + counter_h + 1)
    footer_top = even(height - margin - footer_h)
    draw.rectangle((margin, footer_top, width - margin - 1, height - margin - 1), fill=_PANEL)
    for i, (left, right) in enumerate(footer_lines):
        y = footer_top + pad + i * small_lh
        draw.text((margin + pad, y), left, font=small, fill=WHITE)
        if right:
            rx = width - margin - pad - _text_width(small, right)
            draw.text((rx, y), right, font=small, fill=WHITE)
    cx = margin  # With the box's own padding, its text lines up with the label.
    cy = even(footer_top + pad + len(footer_lines) * small_lh)
    counter_w = min(counter_w, even(width - cx))
    counter_h = min(counter_h, even(height - cy))
    draw.rectangle((cx, cy, cx + counter_w - 1, cy + counter_h - 1), fill=(*COUNTER_BOX, 255))

    return Layout(
        overlay=Overlay(np.asarray(img, dtype=np.uint8)),
        counter_box=(cx, cy, counter_w, counter_h),
        counter_font=small,
        counter_pad=pad,
        free_top=free_top,
        free_bottom=footer_top,
    )
