"""Input images made into what an upstream takes, where the client's own would be
refused: fitted to an exact frame (OpenAI's image-to-video wants the image at the
requested width x height), or converted to a type the upstream reads (Veo: JPEG, PNG).

Each decode goes through ``images.decode_image_async``, so it holds its memory in the
process's budget for decoded images like every other decode. An image that needs no
change is handed back as it is, byte for byte.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps

from vidgate.media.budget import run_in_thread
from vidgate.media.images import Decoding, ImageHeader, decode_image_async, read_header

__all__ = ["EncodedImage", "convert_image", "fit_image"]

# Re-encoded images are PNG, or JPEG when the client's was a JPEG (a photo as PNG is
# several times larger, and nothing is gained).
_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png"}
_JPEG_QUALITY = 95
_HAS_ALPHA = {"RGBA", "LA", "PA"}
# The working copies a fit or a conversion may hold besides the decoded image: one in
# RGB(A), one turned by EXIF, at 4 bytes a pixel; then the output, and its encoding.
_COPIES = 2
_OUTPUT_COPIES = 3
_SLACK = 1024 * 1024


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    content_type: str


async def fit_image(data: bytes, width: int, height: int, *, param: str) -> EncodedImage:
    """``data`` at exactly ``width`` x ``height``: turned upright by its EXIF orientation,
    scaled to cover the frame (aspect kept), the centre cropped. A JPEG stays a JPEG,
    anything else becomes a PNG (transparency kept). Raises ``InvalidImage``."""
    header = await run_in_thread(lambda: read_header(data, param=param))
    exact = (header.width, header.height) == (width, height) and header.format in _FORMATS
    if exact and not await run_in_thread(lambda: _turned(data)):
        return EncodedImage(data, _FORMATS[header.format])
    side = max(width, height)
    how = Decoding(
        lambda head, image: _fit(head, image, width, height),
        param=param,
        # A JPEG decodes at a reduced scale for free, down to no less than the longer
        # side in both directions (its EXIF orientation may turn it).
        draft=(side, side),
        work_bytes=lambda src_w, src_h: _work(src_w, src_h, width, height),
    )
    return await decode_image_async(data, how)


async def convert_image(
    data: bytes, content_type: str, accepted: Collection[str], *, param: str
) -> EncodedImage:
    """``data`` as it is when ``content_type`` is ``accepted``, else its first frame
    (turned upright by its EXIF orientation) as a PNG. Raises ``InvalidImage``."""
    if content_type in accepted:
        return EncodedImage(data, content_type)
    how = Decoding(
        lambda _, image: _encode(_upright(image, keep_alpha=True), "PNG"),
        param=param,
        work_bytes=lambda src_w, src_h: _work(src_w, src_h, src_w, src_h),
    )
    return await decode_image_async(data, how)


def _turned(data: bytes) -> bool:
    """Whether the image's EXIF orientation turns or flips it."""
    with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as image:
        return image.getexif().get(ExifTags.Base.Orientation, 1) not in (1, None)


def _work(src_w: int, src_h: int, width: int, height: int) -> int:
    return (_COPIES * src_w * src_h + _OUTPUT_COPIES * width * height) * 4 + _SLACK


def _fit(header: ImageHeader, image: Image.Image, width: int, height: int) -> EncodedImage:
    fmt = "JPEG" if header.format in ("JPEG", "MPO") else "PNG"
    upright = _upright(image, keep_alpha=fmt == "PNG")
    fitted = ImageOps.fit(upright, (width, height), Image.Resampling.LANCZOS)
    del upright
    return _encode(fitted, fmt)


def _upright(image: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """Turned upright by its EXIF orientation (read before a conversion, which would
    drop a TIFF's), as RGB, or RGBA where it has transparency and ``keep_alpha``."""
    alpha = image.mode in _HAS_ALPHA or "transparency" in image.info
    turned = ImageOps.exif_transpose(image)
    return turned.convert("RGBA" if keep_alpha and alpha else "RGB")


def _encode(image: Image.Image, fmt: str) -> EncodedImage:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=_JPEG_QUALITY)
    else:
        image.save(buf, format="PNG")
    return EncodedImage(buf.getvalue(), _FORMATS[fmt])
