"""From what a client sent to one validated, frozen job description.

Both API shapes (OpenAI-style ``size`` and the ``resolution``/``aspect_ratio`` style)
fill a ``VideoRequest``; ``normalize`` checks it against a model card and produces the
``JobSpec`` the rest of the gateway works from. Every rejection is an
``InvalidParameter`` whose message names the parameter and what would have been allowed,
because the client sees it verbatim.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from vidgate.core.catalog import (
    RESOLUTION_SHORT_SIDES,
    ModelCard,
    canonical_resolution,
    parse_aspect_ratio,
)
from vidgate.core.errors import InvalidParameter
from vidgate.core.text import check_text

JobKind = Literal["generate", "remix", "extend"]

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# Seeds are unsigned 32-bit integers: what providers take, and what fits every store.
MAX_SEED = 2**32 - 1
SEED_ALLOWED = f"a whole number in 0-{MAX_SEED}"

# Within this relative distance a requested W/H counts as a model's aspect ratio, so that
# 854x480 (1.779) is 16:9 (1.778) although 480 * 16/9 is not a whole number.
_ASPECT_TOLERANCE = Fraction(1, 100)
_SIZE = re.compile(r"\s*(\d{1,6})\s*[xX*]\s*(\d{1,6})\s*", re.ASCII)
# Digits capped so a huge numeric string cannot hit int()'s conversion limit.
_WHOLE = re.compile(r"\s*\+?(\d{1,18})(?:\.0*)?\s*", re.ASCII)


class ImageRef(BaseModel, frozen=True):
    """An input image already stored by the media layer."""

    sha256: str
    width: int
    height: int
    content_type: str


class SourceRef(BaseModel, frozen=True):
    """A completed video that a remix or extend starts from."""

    video_id: str
    sha256: str
    seconds: int
    width: int
    height: int
    fps: int
    # Where the source was made and its id there: a provider that can remix or extend
    # its own generations (Luma, OpenAI-shaped servers) references them by that id,
    # and by the adapter's state for that task (Kling: the endpoint that made it).
    provider: str | None = None
    upstream_id: str | None = None
    upstream_state: dict[str, JsonValue] | None = None


class VideoRequest(BaseModel):
    """What a client asked for, in either API shape, before any checks.

    ``bool`` is part of the numeric unions only so that ``normalize`` gets to see it and
    reject it; without it pydantic would quietly turn ``true`` into 1.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    prompt: str
    kind: JobKind = "generate"
    seconds: bool | int | float | str | None = None
    size: str | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    fps: bool | int | str | None = None
    n: bool | int | str | None = None
    seed: bool | int | None = None
    negative_prompt: str | None = None
    metadata: dict[str, str] | None = None
    image: ImageRef | None = None
    last_frame: ImageRef | None = None
    reference_images: list[ImageRef] = []
    source: SourceRef | None = None


class JobSpec(BaseModel, frozen=True):
    model: str
    kind: JobKind
    prompt: str
    negative_prompt: str | None
    seconds: int
    width: int
    height: int
    resolution: str
    aspect_ratio: str
    fps: int
    n: int
    seed: int | None
    metadata: dict[str, str]
    image: ImageRef | None
    source: SourceRef | None
    # Defaults keep specs stored before these fields existed readable.
    last_frame: ImageRef | None = None
    reference_images: tuple[ImageRef, ...] = ()

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


def dimensions(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """(width, height) in pixels: the short side from the resolution, the long side from
    the aspect ratio, rounded to the nearest even number because yuv420p video cannot
    have odd dimensions."""
    name = canonical_resolution(resolution)
    if name is None:
        raise ValueError(
            f"unknown resolution {resolution!r}; known: {', '.join(RESOLUTION_SHORT_SIDES)}"
        )
    short = RESOLUTION_SHORT_SIDES[name]
    a, b = parse_aspect_ratio(aspect_ratio)
    long_side = short * Fraction(max(a, b), min(a, b))
    long_even = 2 * math.floor(long_side / 2 + Fraction(1, 2))
    return (long_even, short) if a >= b else (short, long_even)


def normalize(req: VideoRequest, card: ModelCard) -> JobSpec:
    """Check ``req`` against ``card`` and fill every default; raises InvalidParameter."""
    source = _check_kind(req, card)
    prompt = _check_prompt(req.prompt, "prompt", card)
    negative_prompt = (
        _check_prompt(req.negative_prompt, "negative_prompt", card)
        if req.negative_prompt is not None and req.negative_prompt.strip()
        else None
    )
    _check_image(req, card)
    seconds = _seconds(req, card, source)
    resolution, aspect_ratio, width, height = _shape(req, card, source)
    return JobSpec(
        model=card.id,
        kind=req.kind,
        prompt=prompt,
        negative_prompt=negative_prompt,
        seconds=seconds,
        width=width,
        height=height,
        resolution=resolution,
        aspect_ratio=aspect_ratio,
        fps=_fps(req, card, source),
        n=_n(req, card),
        seed=_seed(req.seed),
        metadata=_metadata(req.metadata),
        image=req.image,
        source=source if req.kind != "generate" else None,
        last_frame=req.last_frame,
        reference_images=tuple(req.reference_images),
    )


def _check_kind(req: VideoRequest, card: ModelCard) -> SourceRef | None:
    kinds = ", ".join(card.kinds) or "none"
    if req.kind == "generate":
        if req.source is not None:
            raise InvalidParameter(
                "a source video is only used to remix or extend; allowed: remix, extend",
                param="video",
            )
        return None
    supported = card.remix if req.kind == "remix" else card.extend
    if not supported:
        raise InvalidParameter(
            f"{req.kind} is not supported by {card.id}; allowed: {kinds}", param="video"
        )
    if req.source is None:
        raise InvalidParameter(
            f"{req.kind} needs a completed source video; allowed: the id of a completed video",
            param="video",
        )
    return req.source


def _check_prompt(value: str, param: str, card: ModelCard) -> str:
    text = check_text(value, param=param, multiline=True).strip()
    limit = card.max_prompt_chars
    if not text:
        raise InvalidParameter(f"{param} is empty; allowed: 1-{limit} characters", param=param)
    if len(text) > limit:
        raise InvalidParameter(
            f"{param} is {len(text)} characters, over the {limit}-character limit of "
            f"{card.id}; allowed: 1-{limit} characters",
            param=param,
        )
    return text


def _check_image(req: VideoRequest, card: ModelCard) -> None:
    if req.image is not None and not card.image_to_video:
        raise InvalidParameter(
            f"an input image is not supported by {card.id}; allowed: a text prompt only",
            param="image",
        )
    if req.kind == "generate" and req.image is None and not card.text_to_video:
        raise InvalidParameter(
            f"{card.id} needs an input image; allowed: image-to-video requests only",
            param="image",
        )
    if req.last_frame is not None:
        if not card.last_frame:
            raise InvalidParameter(
                f"a last frame is not supported by {card.id}; allowed: a first frame only",
                param="last_frame",
            )
        if req.image is None:
            raise InvalidParameter(
                "a last frame needs a first frame too; allowed: image with last_frame",
                param="last_frame",
            )
    if len(req.reference_images) > card.max_reference_images:
        raise InvalidParameter(
            f"{len(req.reference_images)} reference images is more than {card.id} takes;"
            f" allowed: 0-{card.max_reference_images}",
            param="reference_images",
        )


def _seconds(req: VideoRequest, card: ModelCard, source: SourceRef | None) -> int:
    rule = card.durations
    inherited = req.seconds is None and req.kind == "remix" and source is not None
    if req.seconds is None:
        seconds = source.seconds if inherited and source is not None else card.default_seconds
    else:
        parsed = _whole_number(req.seconds)
        if parsed is None or parsed <= 0:
            raise InvalidParameter(
                f"seconds {_show(req.seconds)} is not a positive whole number of seconds; "
                f"allowed: {rule.describe()}",
                param="seconds",
            )
        seconds = parsed
    if not rule.check(seconds):
        origin = " (the source video's length)" if inherited else ""
        raise InvalidParameter(
            f"duration {seconds}{origin} is not supported by {card.id}; allowed: {rule.describe()}",
            param="seconds",
        )
    most = card.max_total_seconds
    if req.kind == "extend" and source is not None and most is not None:
        total = source.seconds + seconds
        if total > most:
            room = rule.describe(up_to=most - source.seconds)
            raise InvalidParameter(
                f"duration {seconds} would extend the {source.seconds} s source video to "
                f"{total} s, over the {most} s maximum of {card.id}; "
                f"allowed: {room or 'none, the source video is already too long to extend'}",
                param="seconds",
            )
    return seconds


def _shape(
    req: VideoRequest, card: ModelCard, source: SourceRef | None
) -> tuple[str, str, int, int]:
    """(resolution, aspect_ratio, width, height)."""
    resolution = _resolution(req.resolution, card) if req.resolution is not None else None
    aspect_ratio = _aspect_ratio(req.aspect_ratio, card) if req.aspect_ratio is not None else None

    if req.size is not None:
        width, height = _parse_size(req.size, card)
        matched = _match_size(width, height, card)
        if matched is None:
            raise InvalidParameter(
                f"size {width}x{height} is not supported by {card.id}; "
                f"allowed: {_allowed_sizes(card)}",
                param="size",
            )
        size_resolution, size_aspect_ratio = matched
        if (resolution is not None and resolution != size_resolution) or (
            aspect_ratio is not None and aspect_ratio != size_aspect_ratio
        ):
            given = " ".join(v for v in (resolution, aspect_ratio) if v is not None)
            raise InvalidParameter(
                f"size {width}x{height} is {size_resolution} {size_aspect_ratio}, which "
                f"contradicts {given}; allowed: "
                f"{_allowed_sizes(card, resolution=resolution, aspect_ratio=aspect_ratio)}",
                param="size",
            )
        return size_resolution, size_aspect_ratio, width, height

    # A remix or extension keeps the source's frame unless the client asks otherwise.
    if source is not None and req.kind != "generate":
        matched = _match_size(source.width, source.height, card)
        if matched is None:
            if resolution is None or aspect_ratio is None:
                raise InvalidParameter(
                    f"the source video's size {source.width}x{source.height} is not "
                    f"supported by {card.id}; pass a size; allowed: {_allowed_sizes(card)}",
                    param="size",
                )
        elif resolution is None and aspect_ratio is None:
            return (*matched, source.width, source.height)
        else:
            resolution = resolution or matched[0]
            aspect_ratio = aspect_ratio or matched[1]

    resolution = resolution or card.default_resolution
    aspect_ratio = aspect_ratio or card.default_aspect_ratio
    return (resolution, aspect_ratio, *dimensions(resolution, aspect_ratio))


def _resolution(value: str, card: ModelCard) -> str:
    name = canonical_resolution(value)
    if name is None or name not in card.resolutions:
        raise InvalidParameter(
            f"resolution {_show(name or value.strip())} is not supported by {card.id}; "
            f"allowed: {', '.join(card.resolutions)}",
            param="resolution",
        )
    return name


def _aspect_ratio(value: str, card: ModelCard) -> str:
    ratio = value.strip()
    if ratio not in card.aspect_ratios:
        raise InvalidParameter(
            f"aspect_ratio {_show(ratio)} is not supported by {card.id}; "
            f"allowed: {', '.join(card.aspect_ratios)}",
            param="aspect_ratio",
        )
    return ratio


def _parse_size(value: str, card: ModelCard) -> tuple[int, int]:
    match = _SIZE.fullmatch(value)
    if match is None:
        raise InvalidParameter(
            f"size {_show(value)} is not of the form WIDTHxHEIGHT; allowed: {_allowed_sizes(card)}",
            param="size",
        )
    width, height = int(match[1]), int(match[2])
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InvalidParameter(
            f"size {width}x{height} must have even, positive width and height; "
            f"allowed: {_allowed_sizes(card)}",
            param="size",
        )
    return width, height


def _match_size(width: int, height: int, card: ModelCard) -> tuple[str, str] | None:
    short = min(width, height)
    resolution = next((r for r in card.resolutions if RESOLUTION_SHORT_SIDES[r] == short), None)
    if resolution is None:
        return None
    ratio = Fraction(width, height)
    best: tuple[Fraction, str] | None = None
    for aspect_ratio in card.aspect_ratios:
        a, b = parse_aspect_ratio(aspect_ratio)
        distance = abs(ratio / Fraction(a, b) - 1)
        if distance <= _ASPECT_TOLERANCE and (best is None or distance < best[0]):
            best = (distance, aspect_ratio)
    return None if best is None else (resolution, best[1])


def _allowed_sizes(
    card: ModelCard, *, resolution: str | None = None, aspect_ratio: str | None = None
) -> str:
    # The default resolution leads so the most likely fix comes first in a long list.
    resolutions = [card.default_resolution] + [
        r for r in card.resolutions if r != card.default_resolution
    ]
    sizes = [
        "{}x{}".format(*dimensions(r, a))
        for r in resolutions
        if resolution is None or r == resolution
        for a in card.aspect_ratios
        if aspect_ratio is None or a == aspect_ratio
    ]
    return ", ".join(sizes)


def _fps(req: VideoRequest, card: ModelCard, source: SourceRef | None) -> int:
    allowed = ", ".join(str(f) for f in card.fps)
    if req.fps is None:
        inherited = source is not None and req.kind != "generate"
        fps = source.fps if inherited and source is not None else card.default_fps
        origin = " (the source video's frame rate)" if inherited else ""
    else:
        parsed = _whole_number(req.fps)
        if parsed is None:
            raise InvalidParameter(
                f"fps {_show(req.fps)} is not a whole number; allowed: {allowed}", param="fps"
            )
        fps, origin = parsed, ""
    if fps not in card.fps:
        raise InvalidParameter(
            f"fps {fps}{origin} is not supported by {card.id}; allowed: {allowed}", param="fps"
        )
    return fps


def _n(req: VideoRequest, card: ModelCard) -> int:
    allowed = f"1-{card.max_n}" if card.max_n > 1 else "1"
    if req.n is None:
        return 1
    n = _whole_number(req.n)
    if n is None:
        raise InvalidParameter(
            f"n {_show(req.n)} is not a whole number; allowed: {allowed}", param="n"
        )
    if not 1 <= n <= card.max_n:
        raise InvalidParameter(
            f"n {n} is not supported by {card.id}; allowed: {allowed}", param="n"
        )
    return n


def _metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    allowed = (
        f"allowed: at most {MAX_METADATA_KEYS} keys of up to {MAX_METADATA_KEY_CHARS} "
        f"characters, values of up to {MAX_METADATA_VALUE_CHARS} characters"
    )
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidParameter(f"metadata has {len(metadata)} keys; {allowed}", param="metadata")
    for key, value in metadata.items():
        check_text(key, param="metadata", what="metadata key")
        check_text(value, param="metadata", what=f"metadata value for {_show(key)}")
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidParameter(
                f"metadata key {_show(key)} is {len(key)} characters; {allowed}",
                param="metadata",
            )
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidParameter(
                f"metadata value for {_show(key)} is {len(value)} characters; {allowed}",
                param="metadata",
            )
    return dict(metadata)


def _seed(seed: bool | int | None) -> int | None:
    # bool is an int to Python; a seed of ``true`` is a client's mistake, not 1.
    if seed is not None and (isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        # str() of an int of thousands of digits raises; such a seed is not worth showing.
        shown = _show(seed) if seed.bit_length() <= 128 else "of more than 128 bits"
        raise InvalidParameter(
            f"seed {shown} is out of range; allowed: {SEED_ALLOWED}", param="seed"
        )
    return seed


def _whole_number(value: bool | int | float | str) -> int | None:
    """An int from an int, a whole float or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    match = _WHOLE.fullmatch(value)
    return int(match[1]) if match else None


def _show(value: object) -> str:
    """A client's value as it should appear in an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return str(value)
