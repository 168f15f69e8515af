"""Checks on images that clients send as input references, and their bounded decoding.

Everything here treats the bytes as hostile. An image is judged from its header first,
before a single pixel is decoded: its size in bytes, format, dimensions, frame count
and colour mode, and from those the memory its decode needs. Only then is it decoded,
once, so that a truncated or corrupt file fails here with a clear 400 rather than later
inside a job; and that decode holds its memory in the process's budget for decoded
images (``vidgate.media.budget``), so concurrent requests cannot add up to more.

Only the first frame of an animated image (or the first page of a TIFF) is ever
decoded. A JPEG is decoded at the smallest scale that serves (1/8 for a check: every
byte of its data is still read); PNG, WebP, GIF, BMP and TIFF have no reduced decode in
Pillow, so they cost their full size.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from PIL import Image, UnidentifiedImageError

from vidgate.core.errors import InvalidImage
from vidgate.media.budget import OverBudget, image_memory, run_in_thread

__all__ = [
    "CONTENT_TYPES",
    "MAX_IMAGE_FRAMES",
    "MAX_IMAGE_SIDE",
    "Decoding",
    "ImageHeader",
    "ImageInfo",
    "decode_image",
    "decode_image_async",
    "inspect_image",
    "inspect_image_async",
    "parse_data_url",
    "read_header",
]

T = TypeVar("T")

MAX_IMAGE_SIDE = 8192
# Only the first frame is used; counting frames is bounded by this, and so is what a
# provider that reads every frame gets from us.
MAX_IMAGE_FRAMES = 1000

_CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    # A multi-picture JPEG (stereo and some phone cameras): a JPEG whose first picture
    # is the image. Pillow names it by its own format when it finds the MP header.
    "MPO": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    # Taken for upstreams that list them (Gemini Omni) or get a converted copy.
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
_OPEN_FORMATS = ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]
_FORMAT_NAMES = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# Every content type an input image may have.
CONTENT_TYPES = frozenset(_CONTENT_TYPES.values())
_JPEG = ("JPEG", "MPO")

# Bytes per pixel of Pillow's own storage for each mode these formats decode to:
# one-byte modes are packed, two-band and three-band modes take four bytes.
_PIXEL_BYTES = {
    "1": 1,
    "L": 1,
    "P": 1,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I;16N": 2,
    "LA": 4,
    "PA": 4,
    "RGB": 4,
    "RGBA": 4,
    "CMYK": 4,
    "YCbCr": 4,
    "I": 4,
    "F": 4,
}
# Pillow decodes WebP through libwebp's animation decoder: its canvas and its copy of
# the previous frame (both RGBA), the frame handed over as bytes, then Pillow's image.
# Measured: an 8192x8192 WebP peaks at 1031 MiB.
_WEBP_BYTES_PER_PIXEL = 16
# A compressed TIFF is decoded through libtiff, a whole strip or tile at a time: one
# strip as tall as the image takes up to as much again as Pillow's image. Counted
# twice. Measured: a 4096x4096 RGB TIFF in one deflate strip peaks at 112 MiB (64 MiB
# image); in Pillow's default strips, at the image's 64.
_TIFF_COPIES = 2
# A progressive or multi-scan JPEG is decoded through a buffer of every DCT coefficient
# of every component (2 bytes each), whatever the output scale. Measured: 8192x8192
# progressive 4:4:4 at 1/8 scale peaks at 392 MiB, 384 of them coefficients.
_COEFFICIENT_BYTES = 2
# The smallest JPEG scale libjpeg decodes to, for a check that only needs to read it all.
_CHECK_DRAFT = (1, 1)
# A marker after the first scan's data: not a stuffed 0xFF00, a restart or fill bytes.
_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")
_STANDALONE_MARKERS = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # TEM, SOI, RSTn

# RFC 2397: data:[<mediatype>][;param=value]*[;base64],<data>
_DATA_URL = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*?)(?P<b64>;base64)?,(?P<data>.*)",
    re.IGNORECASE | re.DOTALL,
)
_WHITESPACE = re.compile(rb"\s+")


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    content_type: str


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding any pixels."""

    format: str  # Pillow's name: PNG, JPEG, MPO, WEBP, GIF, BMP or TIFF
    width: int
    height: int
    mode: str
    frames: int
    # JPEG only: its scans go through a whole-image coefficient buffer when decoded.
    multi_scan: bool = False
    components: int = 0

    @property
    def info(self) -> ImageInfo:
        fmt = "JPEG" if self.format == "MPO" else self.format
        return ImageInfo(self.width, self.height, fmt, _CONTENT_TYPES[self.format])

    def decoded_size(self, draft: tuple[int, int] | None = None) -> tuple[int, int]:
        """The size of the decoded first frame: for a JPEG, at the scale ``draft``
        makes Pillow choose (the largest reduction that keeps at least that size)."""
        if draft is None or self.format not in _JPEG:
            return self.width, self.height
        ratio = min(self.width // max(1, draft[0]), self.height // max(1, draft[1]))
        scale = next((s for s in (8, 4, 2, 1) if ratio >= s), 1)
        return -(-self.width // scale), -(-self.height // scale)

    def decode_bytes(self, draft: tuple[int, int] | None = None) -> int:
        """The most memory decoding the first frame holds at once, in bytes."""
        if self.format == "WEBP":
            return self.width * self.height * _WEBP_BYTES_PER_PIXEL
        width, height = self.decoded_size(draft)
        need = width * height * _PIXEL_BYTES[self.mode]
        if self.multi_scan:
            need += self.width * self.height * self.components * _COEFFICIENT_BYTES
        if self.format == "TIFF":
            need *= _TIFF_COPIES
        return need


def parse_data_url(
    url: str, *, param: str = "image", max_bytes: int | None = None
) -> tuple[str, bytes]:
    """Split a base64 ``data:`` URL into (lower-cased MIME type, decoded bytes).

    ``max_bytes``, when given, is checked against the decoded size before decoding,
    so an enormous payload is refused without another copy of it in memory.
    """
    match = _DATA_URL.fullmatch(url.strip()) if url[:5].lower() == "data:" else None
    if match is None:
        raise InvalidImage("expected a data URL such as data:image/png;base64,...", param=param)
    if not match["b64"]:
        raise InvalidImage("the data URL must be base64-encoded (;base64,)", param=param)
    mime = (match["mime"] or "").lower()
    if not mime.startswith("image/"):
        raise InvalidImage(
            f"the data URL has media type {mime or '(none)'!r}; expected an image type",
            param=param,
        )
    try:
        encoded = _WHITESPACE.sub(b"", match["data"].encode("ascii"))
    except UnicodeEncodeError as exc:
        raise InvalidImage("the data URL contains invalid base64", param=param) from exc
    if max_bytes is not None and len(encoded) // 4 * 3 > max_bytes + 2:
        raise InvalidImage(_too_large(max_bytes), param=param)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage("the data URL contains invalid base64", param=param) from exc
    if not data:
        raise InvalidImage("the data URL is empty", param=param)
    return mime, data


def inspect_image(data: bytes, *, max_bytes: int, param: str) -> ImageInfo:
    """Validate ``data`` as a PNG, JPEG, WebP, GIF, BMP or TIFF and describe it.

    Raises ``InvalidImage(param=param)`` if it is over ``max_bytes``, not an image, in
    another format, larger than ``MAX_IMAGE_SIDE`` on either side, has more than
    ``MAX_IMAGE_FRAMES`` frames, needs more memory to decode than the whole budget for
    decoded images, or is damaged. Blocks the calling thread while the budget is full:
    call it from a worker thread, or await ``inspect_image_async`` instead.
    """
    return decode_image(data, Decoding(_describe, param, max_bytes, _CHECK_DRAFT))


async def inspect_image_async(data: bytes, *, max_bytes: int, param: str) -> ImageInfo:
    """``inspect_image`` from the event loop: the header is read and the image decoded
    on the decode threads, and waiting for room in the budget holds no thread."""
    return await decode_image_async(data, Decoding(_describe, param, max_bytes, _CHECK_DRAFT))


def _describe(header: ImageHeader, image: Image.Image) -> ImageInfo:
    return header.info


@dataclass(frozen=True)
class Decoding(Generic[T]):
    """How to decode an image: what to make of it, and what may be spent on the way.

    ``use(header, image)`` makes the result; the decoded image is freed before the
    budget is. ``param`` names the input in errors. ``max_bytes``: the most the encoded
    image may be. ``draft``: decode a JPEG at the smallest scale that is still at least
    this size. ``work_bytes(width, height)``: the most that ``use`` allocates besides
    the image, given the decoded size; held in the budget with the decode.
    """

    use: Callable[[ImageHeader, Image.Image], T]
    param: str
    max_bytes: int | None = None
    draft: tuple[int, int] | None = None
    work_bytes: Callable[[int, int], int] | None = None

    def header(self, data: bytes) -> ImageHeader:
        return read_header(data, param=self.param, max_bytes=self.max_bytes)

    def needed(self, header: ImageHeader) -> int:
        """Budget bytes for the decode and for ``use``."""
        size = header.decoded_size(self.draft)
        work = self.work_bytes(*size) if self.work_bytes is not None else 0
        return header.decode_bytes(self.draft) + work


def decode_image(data: bytes, how: Decoding[T]) -> T:
    """Check ``data``'s header, then decode its first frame within the memory budget
    and return ``how.use(header, image)``. Blocks the calling thread while the budget
    is full."""
    header = how.header(data)
    with _reserved(header, how.needed(header), how.param):
        return _decode(data, header, how)


async def decode_image_async(data: bytes, how: Decoding[T]) -> T:
    """``decode_image`` from the event loop, on the decode threads (``run_in_thread``)."""
    header = await run_in_thread(lambda: how.header(data))
    async with _reserved_async(header, how.needed(header), how.param):
        return await run_in_thread(lambda: _decode(data, header, how))


def read_header(data: bytes, *, param: str, max_bytes: int | None = None) -> ImageHeader:
    """Everything checked before decoding: byte size, format, dimensions, frame count,
    colour mode and (for PNG) the chunk checksums. Raises ``InvalidImage``."""
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidImage(_too_large(max_bytes, len(data)), param=param)
    try:
        with Image.open(io.BytesIO(data), formats=_OPEN_FORMATS) as img:
            fmt = img.format or ""
            width, height = img.size
            _check_side(width, height, param)
            frames = _count_frames(img, data, param)
            if frames > MAX_IMAGE_FRAMES:
                raise InvalidImage(
                    f"the image has more than {MAX_IMAGE_FRAMES} frames; an input image "
                    "is a still (only its first frame is used)",
                    param=param,
                )
            if img.mode not in _PIXEL_BYTES:
                raise InvalidImage(
                    f"the image's colour mode ({img.mode}) is not supported", param=param
                )
            multi_scan = fmt in _JPEG and _jpeg_multi_scan(img, data)
            header = ImageHeader(
                format=fmt,
                width=width,
                height=height,
                mode=img.mode,
                frames=frames,
                multi_scan=multi_scan,
                components=int(getattr(img, "layers", 0)) if fmt in _JPEG else 0,
            )
            # verify() checks structure (chunk CRCs for PNG) without decoding...
            img.verify()
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            f"the file is not an image in a supported format ({_FORMAT_NAMES})",
            param=param,
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(
            f"the image is too large; at most {MAX_IMAGE_SIDE} pixels per side",
            param=param,
        ) from exc
    except Exception as exc:
        # Pillow reports damaged files through many types (OSError, SyntaxError,
        # struct.error, EOFError, ValueError...); to a client they all mean one thing.
        raise InvalidImage("the image is damaged or truncated", param=param) from exc
    return header


def _decode(data: bytes, header: ImageHeader, how: Decoding[T]) -> T:
    try:
        image = _load_first_frame(data, header, how.draft)
    except Exception as exc:
        # The traceback's frames hold the half-decoded image; the budget is about to
        # be released, so its memory must go now, not when the error is logged.
        traceback.clear_frames(exc.__traceback__)
        raise InvalidImage("the image is damaged or truncated", param=how.param) from exc
    with image:
        return how.use(header, image)


def _load_first_frame(
    data: bytes, header: ImageHeader, draft: tuple[int, int] | None
) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    try:
        if image.format != header.format or image.size != (header.width, header.height):
            raise ValueError("the image changed between its header check and its decode")
        if draft is not None and header.format in _JPEG:
            image.draft(image.mode, draft)
        # ...but says nothing about truncated JPEG/WebP data; only decoding does.
        image.load()
        if image.size != header.decoded_size(draft):
            raise ValueError("the decoded image is not the size its header promised")
    except BaseException:
        image.close()
        raise
    return image


@contextmanager
def _reserved(header: ImageHeader, nbytes: int, param: str) -> Iterator[None]:
    try:
        with image_memory().reserve(nbytes):
            yield
    except OverBudget as exc:
        raise _over_budget(header, exc, param) from None


@asynccontextmanager
async def _reserved_async(header: ImageHeader, nbytes: int, param: str) -> AsyncIterator[None]:
    try:
        async with image_memory().reserve_async(nbytes):
            yield
    except OverBudget as exc:
        raise _over_budget(header, exc, param) from None


def _over_budget(header: ImageHeader, exc: OverBudget, param: str) -> InvalidImage:
    fmt = header.info.format
    return InvalidImage(
        f"the image is too large to decode: a {header.width}x{header.height} {fmt} needs "
        f"about {_human(exc.needed)} of memory, and this server decodes images of at "
        f"most {_human(exc.capacity)}",
        param=param,
    )


def _count_frames(img: Image.Image, data: bytes, param: str) -> int:
    """Frames, up to one past ``MAX_IMAGE_FRAMES``: WebP, APNG and MPO say so in their
    headers; a GIF's frames are counted by walking its blocks, a TIFF's pages by
    seeking from one to the next (Pillow's ``n_frames`` would walk all)."""
    if img.format == "GIF":
        return _gif_frames(data, MAX_IMAGE_FRAMES + 1, param)
    if img.format == "TIFF":
        return _tiff_pages(img, MAX_IMAGE_FRAMES + 1)
    return int(getattr(img, "n_frames", 1))


def _tiff_pages(img: Image.Image, limit: int) -> int:
    pages = 1
    try:
        while pages < limit:
            img.seek(pages)
            pages += 1
    except EOFError:
        pass
    img.seek(0)
    return pages


def _gif_frames(data: bytes, limit: int, param: str) -> int:
    """Count a GIF's image descriptors (at most ``limit``), checking each frame's extent.

    The layout: a 13-byte header and screen descriptor, an optional global colour table,
    then blocks until the trailer (0x3B): extensions (0x21, label, sub-blocks) and images
    (0x2C, 9-byte descriptor, optional local colour table, LZW code size, sub-blocks).
    A damaged tail just ends the count; the decode judges the first frame.
    """
    end = len(data)
    pos = 13
    if end > 10 and data[10] & 0x80:
        pos += 3 << ((data[10] & 7) + 1)
    frames = 0
    while pos < end and frames < limit:
        kind = data[pos]
        if kind == 0x21:
            pos = _skip_sub_blocks(data, pos + 2)
        elif kind == 0x2C and pos + 10 <= end:
            left, top, width, height = (
                int.from_bytes(data[pos + i : pos + i + 2], "little") for i in (1, 3, 5, 7)
            )
            if left + width > MAX_IMAGE_SIDE or top + height > MAX_IMAGE_SIDE:
                raise InvalidImage(
                    f"frame {frames + 1} of the GIF reaches {left + width}x{top + height}; "
                    f"at most {MAX_IMAGE_SIDE} pixels per side",
                    param=param,
                )
            flags = data[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 7) + 1)
            frames += 1
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            break
    return frames


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            break
    return pos


def _jpeg_multi_scan(img: Image.Image, data: bytes) -> bool:
    """Whether another scan follows the first one before the picture ends (EOI).

    Walking the segments by their lengths up to the first scan, then looking for the
    next marker after its data, does not mistake an EXIF thumbnail or an MPO's second
    picture for a second scan, as counting start-of-scan markers in the file would.
    """
    if img.info.get("progressive"):
        return True
    first_scan = _jpeg_first_scan(data)
    if first_scan is None:
        return True  # unreadable structure: assume the dearer decode
    after = _NEXT_MARKER.search(data, first_scan)
    return after is not None and after.group()[-1] != 0xD9


def _jpeg_first_scan(data: bytes) -> int | None:
    """Where the first scan's entropy-coded data starts."""
    pos, end = 2, len(data)  # past SOI
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
        if marker == 0xDA:
            return pos
    return None


def _check_side(width: int, height: int, param: str) -> None:
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise InvalidImage(
            f"the image is {width}x{height}; at most {MAX_IMAGE_SIDE} pixels per side",
            param=param,
        )
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels", param=param)


def _too_large(limit: int, size: int | None = None) -> str:
    have = f"{size} bytes; " if size is not None else ""
    return f"the image is too large ({have}the limit is {limit} bytes, {_human(limit)})"


def _human(n: int) -> str:
    value, unit = float(n), "bytes"
    for bigger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.3g} {unit}"
