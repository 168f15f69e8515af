"""Frames as flat I420 buffers, the encoder's own format, and conversions into it.

A frame is one flat uint8 array laid out as FFmpeg's yuv420p: the Y plane, then U,
then V at half resolution. VideoFrame.from_ndarray/to_ndarray use the same layout,
so a buffer goes to the encoder with a single copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame
from av.video.reformatter import Colorspace

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]


@dataclass(frozen=True)
class Planes:
    y: U8
    u: U8
    v: U8


def planes(buf: U8, width: int, height: int) -> Planes:
    luma = width * height
    chroma = luma // 4
    return Planes(
        y=buf[:luma].reshape(height, width),
        u=buf[luma : luma + chroma].reshape(height // 2, width // 2),
        v=buf[luma + chroma :].reshape(height // 2, width // 2),
    )


def i420_from_frame(frame: VideoFrame) -> U8:
    arr: U8 = np.ascontiguousarray(frame.to_ndarray(), dtype=np.uint8)
    return arr.reshape(-1)


def rgb_to_i420(rgb: U8) -> U8:
    frame = VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return i420_from_frame(
        frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range="MPEG")
    )


def yuv_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    # Go through the same converter as the frames so a flat colour drawn straight
    # into the planes matches the same colour drawn with Pillow.
    block = np.empty((2, 2, 3), dtype=np.uint8)
    block[...] = rgb
    buf = rgb_to_i420(block)
    return int(buf[0]), int(buf[4]), int(buf[5])


def cover_i420(frame: VideoFrame, width: int, height: int) -> U8:
    """Scale ``frame`` to cover width x height (aspect kept), crop the centre, as I420."""
    scale = max(width / frame.width, height / frame.height)
    sw = max(width, even(math.ceil(frame.width * scale)))
    sh = max(height, even(math.ceil(frame.height * scale)))
    scaled = frame.reformat(
        width=sw,
        height=sh,
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range="MPEG",
        interpolation="BILINEAR",
    )
    src = planes(i420_from_frame(scaled), sw, sh)
    if (sw, sh) == (width, height):
        return np.concatenate([src.y.reshape(-1), src.u.reshape(-1), src.v.reshape(-1)])
    ox, oy = even((sw - width) // 2), even((sh - height) // 2)
    out = np.empty(width * height * 3 // 2, dtype=np.uint8)
    dst = planes(out, width, height)
    dst.y[...] = src.y[oy : oy + height, ox : ox + width]
    dst.u[...] = src.u[oy // 2 : (oy + height) // 2, ox // 2 : (ox + width) // 2]
    dst.v[...] = src.v[oy // 2 : (oy + height) // 2, ox // 2 : (ox + width) // 2]
    return out


def even(n: int) -> int:
    return n - (n % 2)
