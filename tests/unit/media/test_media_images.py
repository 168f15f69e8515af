"""Input image validation: accept the six formats, refuse everything else clearly,
judge each from its header before decoding, and decode within the memory budget."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable, Iterator

import pytest
from PIL import Image

from vidgate.core.errors import InvalidImage
from vidgate.media.budget import image_memory
from vidgate.media.images import (
    MAX_IMAGE_FRAMES,
    ImageInfo,
    inspect_image,
    inspect_image_async,
    parse_data_url,
    read_header,
)

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
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
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
    assert "PNG, JPEG, WebP, GIF, BMP or TIFF" in _invalid(b"hello, I am a text file\n").message


def test_empty_bytes() -> None:
    _invalid(b"")


def test_unsupported_format() -> None:
    assert "supported format" in _invalid(_encode("ICO")).message


def test_tiff_pages_are_counted_up_to_the_limit_only() -> None:
    pages = [Image.new("L", (8, 8), i) for i in range(MAX_IMAGE_FRAMES + 5)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    assert "more than 1000 frames" in _invalid(buf.getvalue()).message
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:3])
    assert read_header(buf.getvalue(), param="image").frames == 3


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


# --- Checked from the header, decoded within the budget (issue 10, point 2) -------------


@pytest.fixture
def budget_of() -> Iterator[Callable[[int], None]]:
    """Shrink this process's budget for decoded images for one test."""
    budget = image_memory()
    before = budget.capacity
    yield budget.resize
    budget.resize(before)


def _gif_with_frames(*frames: tuple[int, int, int, int]) -> bytes:
    """A 1x1 GIF from Pillow, then more image blocks (left, top, width, height) with a
    token of data: only headers are read past the first frame."""
    one = _encode("GIF", (1, 1), mode="P")
    blocks = b"".join(
        b"\x2c" + struct.pack("<HHHHB", *frame, 0) + b"\x02\x02\x44\x01\x00" for frame in frames
    )
    return one[:-1] + blocks + b";"  # before the trailer


def test_gif_frames_are_counted_and_capped() -> None:
    ok = _gif_with_frames(*[(0, 0, 1, 1)] * (MAX_IMAGE_FRAMES - 1))
    assert inspect_image(ok, max_bytes=LIMIT, param="image").format == "GIF"
    err = _invalid(_gif_with_frames(*[(0, 0, 1, 1)] * MAX_IMAGE_FRAMES))
    assert f"more than {MAX_IMAGE_FRAMES} frames" in err.message


def test_a_later_gif_frame_may_not_exceed_the_side_limit() -> None:
    err = _invalid(_gif_with_frames((0, 0, 1, 1), (8000, 0, 193, 1)))
    assert "frame 3" in err.message and "8192" in err.message


def test_apng_frame_count_is_read_from_its_header() -> None:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(buf, format="PNG", save_all=True, append_images=frames[1:])
    data = bytearray(buf.getvalue())
    at = data.index(b"acTL")  # length, "acTL", num_frames, num_plays, CRC
    data[at + 4 : at + 8] = struct.pack(">I", 5000)
    data[at + 12 : at + 16] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 12])))
    assert f"more than {MAX_IMAGE_FRAMES} frames" in _invalid(bytes(data)).message


def test_decoding_is_charged_by_pixels_and_mode() -> None:
    rgba = read_header(_encode("PNG", (100, 50), mode="RGBA"), param="image")
    grey = read_header(_encode("PNG", (100, 50), mode="L"), param="image")
    webp = read_header(_encode("WEBP", (100, 50)), param="image")
    assert (rgba.decode_bytes(), grey.decode_bytes()) == (100 * 50 * 4, 100 * 50)
    assert webp.decode_bytes() == 100 * 50 * 16  # libwebp's canvases and the copies


def test_a_progressive_jpeg_is_charged_for_its_coefficients() -> None:
    def jpeg(**options: object) -> bytes:
        buf = io.BytesIO()
        Image.effect_noise((256, 256), 64).convert("RGB").save(buf, "JPEG", **options)
        return buf.getvalue()

    baseline, progressive = jpeg(), jpeg(progressive=True)
    # An EXIF-like APP1 segment holding a whole JPEG (a thumbnail) is no second scan.
    thumb = jpeg(quality=20)
    with_thumb = baseline[:2] + b"\xff\xe1" + struct.pack(">H", len(thumb) + 8) + b"Exif\0\0"
    with_thumb += thumb + baseline[2:]
    for data in (baseline, with_thumb):
        assert not read_header(data, param="image").multi_scan
    header = read_header(progressive, param="image")
    assert header.multi_scan
    # 1/8 scale for a check, but every coefficient of the full size is buffered.
    assert header.decode_bytes((1, 1)) == 32 * 32 * 4 + 256 * 256 * 3 * 2


def test_an_image_whose_decode_exceeds_the_budget_is_refused(
    budget_of: Callable[[int], None],
) -> None:
    budget_of(1024 * 1024)
    err = _invalid(_encode("PNG", (600, 600), mode="RGBA"))  # 1.4 MB decoded
    assert "too large to decode" in err.message
    assert "600x600 PNG" in err.message and "1 MiB" in err.message
    assert image_memory().in_use == 0
    # The same pixels as one byte each fit.
    assert inspect_image(_encode("PNG", (600, 600), mode="L"), max_bytes=LIMIT, param="i")


def test_a_jpeg_is_checked_at_an_eighth_of_its_size(budget_of: Callable[[int], None]) -> None:
    budget_of(1024 * 1024)
    # 2048x2048 RGB is 16 MiB in full; a check decodes it at 256x256 (256 KiB).
    info = inspect_image(_encode("JPEG", (2048, 2048)), max_bytes=LIMIT, param="image")
    assert (info.width, info.height) == (2048, 2048)


def test_a_damaged_image_gives_its_memory_back() -> None:
    data = _encode("PNG", (200, 200))
    _invalid(data[: len(data) // 2])
    assert image_memory().in_use == 0


async def test_inspect_image_async_matches_the_threaded_check() -> None:
    png = _encode("PNG")
    assert await inspect_image_async(png, max_bytes=LIMIT, param="image") == inspect_image(
        png, max_bytes=LIMIT, param="image"
    )
    with pytest.raises(InvalidImage) as err:
        await inspect_image_async(png[: len(png) // 2], max_bytes=LIMIT, param="input_reference")
    assert err.value.param == "input_reference"
    assert image_memory().in_use == 0


def test_a_multi_picture_jpeg_is_a_jpeg() -> None:
    buf = io.BytesIO()
    left, right = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    left.save(buf, format="MPO", save_all=True, append_images=[right])
    info = inspect_image(buf.getvalue(), max_bytes=LIMIT, param="image")
    assert info == ImageInfo(width=64, height=48, format="JPEG", content_type="image/jpeg")
