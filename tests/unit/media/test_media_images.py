"""Input image validation: accept the four formats, refuse everything else clearly."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from vidgate.core.errors import InvalidImage
from vidgate.media.images import ImageInfo, inspect_image, parse_data_url

LIMIT = 10 * 1024 * 1024


def _encode(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 1).save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header that claims a huge image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_supported_formats(fmt: str, content_type: str) -> None:
    info = inspect_image(_encode(fmt), max_bytes=LIMIT, param="input_reference")
    assert info == ImageInfo(width=40, height=30, format=fmt, content_type=content_type)


def _invalid(data: bytes, *, max_bytes: int = LIMIT) -> InvalidImage:
    with pytest.raises(InvalidImage) as err:
        inspect_image(data, max_bytes=max_bytes, param="input_reference")
    assert err.value.param == "input_reference"
    return err.value


def test_text_is_not_an_image() -> None:
    assert "PNG, JPEG, WebP or GIF" in _invalid(b"hello, I am a text file\n").message


def test_empty_bytes() -> None:
    _invalid(b"")


def test_unsupported_format() -> None:
    assert "supported format" in _invalid(_encode("BMP")).message


def test_truncated_png() -> None:
    data = _encode("PNG", (200, 200))
    _invalid(data[: len(data) // 2])


def test_truncated_jpeg() -> None:
    # verify() alone passes a truncated JPEG; only decoding notices.
    buf = io.BytesIO()
    noise = Image.effect_noise((256, 256), 64).convert("RGB")
    noise.save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    _invalid(data[: len(data) // 2])


def test_corrupt_png_crc() -> None:
    data = bytearray(_encode("PNG"))
    data[45] ^= 0xFF  # inside the IDAT data: the chunk CRC no longer matches
    _invalid(bytes(data))


def test_oversize_mentions_the_limit() -> None:
    data = _encode("PNG")
    err = _invalid(data, max_bytes=100)
    assert "100 bytes" in err.message
    assert "limit" in err.message


def test_too_many_pixels_per_side() -> None:
    err = _invalid(_encode("PNG", (8193, 1), mode="1"))
    assert "8192" in err.message


@pytest.mark.parametrize("side", [10000, 30000])  # Pillow's warning, then its error
def test_decompression_bomb(side: int) -> None:
    err = _invalid(_png_claiming(side, side))
    assert "8192" in err.message


def test_exactly_8192_is_fine() -> None:
    info = inspect_image(_encode("PNG", (8192, 1), mode="1"), max_bytes=LIMIT, param="image")
    assert (info.width, info.height) == (8192, 1)


def test_parse_data_url_round_trip() -> None:
    png = _encode("PNG")
    mime, data = parse_data_url("data:image/png;base64," + base64.b64encode(png).decode())
    assert (mime, data) == ("image/png", png)


def test_parse_data_url_is_lenient_about_case_params_and_line_breaks() -> None:
    png = _encode("PNG")
    wrapped = base64.encodebytes(png).decode()  # 76-column lines
    mime, data = parse_data_url(f"DATA:Image/PNG;name=x.png;base64,{wrapped}")
    assert (mime, data) == ("image/png", png)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "image/png;base64,AAAA",
        "",
        "data:image/png,not-base64",  # no ;base64 marker
        "data:image/png;base64,@@@not base64@@@",
        "data:image/png;base64,AAAAA",  # bad padding
        "data:image/png;base64,",
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png;base64,ÄÖÜ",
    ],
)
def test_parse_data_url_rejects(url: str) -> None:
    with pytest.raises(InvalidImage) as err:
        parse_data_url(url, param="input_reference")
    assert err.value.param == "input_reference"


def test_parse_data_url_default_param() -> None:
    with pytest.raises(InvalidImage) as err:
        parse_data_url("nope")
    assert err.value.param == "image"


def test_parse_data_url_refuses_oversize_before_decoding() -> None:
    url = "data:image/png;base64," + base64.b64encode(b"\0" * 3000).decode()
    with pytest.raises(InvalidImage) as err:
        parse_data_url(url, max_bytes=1000)
    assert "1000 bytes" in err.value.message
    assert parse_data_url(url, max_bytes=3000)[1] == b"\0" * 3000
