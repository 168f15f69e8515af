"""Input images made into what an upstream takes: fitted to an exact frame (cover),
or converted to PNG; an image that needs neither is handed back untouched."""

from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image

from vidgate.core.errors import InvalidImage
from vidgate.media.image_bridge import convert_image, fit_image

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _striped(width: int, height: int) -> Image.Image:
    """Red left third, green middle third, blue right third."""
    image = Image.new("RGB", (width, height), GREEN)
    image.paste(RED, (0, 0, width // 3, height))
    image.paste(BLUE, (width - width // 3, 0, width, height))
    return image


async def test_a_wide_image_is_scaled_to_cover_and_centre_cropped() -> None:
    fitted = await fit_image(_encode(_striped(900, 300), "PNG"), 100, 100, param="image")
    image = _open(fitted.data)
    assert (image.format, image.size, fitted.content_type) == ("PNG", (100, 100), "image/png")
    assert image.convert("RGB").getpixel((5, 50)) == GREEN  # the sides are cropped away
    assert image.convert("RGB").getpixel((95, 50)) == GREEN


async def test_a_small_image_is_enlarged_and_a_jpeg_stays_a_jpeg() -> None:
    fitted = await fit_image(_encode(_striped(64, 48), "JPEG"), 1280, 720, param="image")
    image = _open(fitted.data)
    assert (image.format, image.size, fitted.content_type) == ("JPEG", (1280, 720), "image/jpeg")


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
async def test_other_types_are_fitted_into_png(fmt: str) -> None:
    fitted = await fit_image(_encode(_striped(64, 48), fmt), 72, 128, param="image")
    image = _open(fitted.data)
    assert (image.format, image.size, fitted.content_type) == ("PNG", (72, 128), "image/png")


async def test_transparency_is_kept_in_a_png() -> None:
    clear = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    fitted = await fit_image(_encode(clear, "PNG"), 20, 40, param="image")
    image = _open(fitted.data)
    assert image.mode == "RGBA" and image.getpixel((10, 10))[3] == 0


async def test_an_image_of_the_exact_size_is_sent_as_it_is() -> None:
    data = _encode(_striped(1280, 720), "PNG")
    fitted = await fit_image(data, 1280, 720, param="image")
    assert fitted.data is data and fitted.content_type == "image/png"


async def test_the_exif_orientation_is_applied_before_fitting() -> None:
    # Stored 720x1280 and marked "turn 90 degrees": it is shown (and must be sent) as
    # 1280x720, upright, without the tag.
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored = Image.new("RGB", (720, 1280), GREEN)
    stored.paste(RED, (0, 0, 720, 100))  # the top, which the turn puts on the right
    fitted = await fit_image(_encode(stored, "JPEG", exif=exif), 1280, 720, param="image")
    image = _open(fitted.data)
    assert image.size == (1280, 720) and image.getexif().get(ExifTags.Base.Orientation) is None
    r, g, _ = image.convert("RGB").getpixel((1270, 360))
    assert r > 200 and g < 60


async def test_accepted_types_are_not_converted() -> None:
    data = _encode(_striped(64, 48), "JPEG")
    same = await convert_image(data, "image/jpeg", {"image/jpeg", "image/png"}, param="image")
    assert same.data is data and same.content_type == "image/jpeg"


async def test_a_gif_becomes_its_first_frame_as_png() -> None:
    frames = [Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    converted = await convert_image(data, "image/gif", {"image/png"}, param="image")
    image = _open(converted.data)
    assert (image.format, image.size, converted.content_type) == ("PNG", (40, 30), "image/png")
    assert image.convert("RGB").getpixel((5, 5)) == RED
    assert getattr(image, "n_frames", 1) == 1


async def test_what_is_not_an_image_is_refused_naming_the_input() -> None:
    with pytest.raises(InvalidImage) as caught:
        await convert_image(b"not an image", "image/gif", {"image/png"}, param="last_frame")
    assert caught.value.param == "last_frame"
