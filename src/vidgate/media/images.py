"""Checks on images that clients send as input references.

Everything here treats the bytes as hostile: sizes are checked before decoding, the
format must be one we accept, and the pixels are decoded once so that a truncated or
corrupt file fails here, with a clear 400, rather than later inside a job.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from vidgate.core.errors import InvalidImage

__all__ = ["MAX_IMAGE_SIDE", "ImageInfo", "inspect_image", "parse_data_url"]

MAX_IMAGE_SIDE = 8192

_CONTENT_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}

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
    """Validate ``data`` as a PNG, JPEG, WebP or GIF and describe it.

    Raises ``InvalidImage(param=param)`` if it is over ``max_bytes``, not an image, in
    another format, damaged, or larger than ``MAX_IMAGE_SIDE`` on either side.
    """
    if len(data) > max_bytes:
        raise InvalidImage(_too_large(max_bytes, len(data)), param=param)
    try:
        with Image.open(io.BytesIO(data), formats=list(_CONTENT_TYPES)) as img:
            fmt = img.format or ""
            width, height = img.size
            _check_side(width, height, param)
            # verify() checks structure (chunk CRCs for PNG) without decoding...
            img.verify()
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            # ...but says nothing about truncated JPEG/WebP data; only decoding does.
            img.load()
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage(
            "the file is not an image in a supported format (PNG, JPEG, WebP or GIF)",
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
    return ImageInfo(width=width, height=height, format=fmt, content_type=_CONTENT_TYPES[fmt])


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
