"""The vocabulary of frames that model cards and upstream capability data share:
resolution names and aspect ratios, as written in YAML."""

from __future__ import annotations

import re

# Short side in pixels of every resolution name the gateway understands. Names are
# canonical: "720p", never "720P"; "4K", never "2160p".
RESOLUTION_SHORT_SIDES: dict[str, int] = {
    "240p": 240,
    "360p": 360,
    "480p": 480,
    "540p": 540,
    "720p": 720,
    "1080p": 1080,
    "4K": 2160,
}

_RESOLUTION_ALIASES = {"2160p": "4K", "4k": "4K"}
_ASPECT_RATIO = re.compile(r"([1-9][0-9]*):([1-9][0-9]*)")


def canonical_resolution(value: str) -> str | None:
    """The canonical name of a resolution written in any case, or None if unknown."""
    key = value.strip().lower()
    if key in _RESOLUTION_ALIASES:
        return _RESOLUTION_ALIASES[key]
    return key if key in RESOLUTION_SHORT_SIDES else None


def parse_aspect_ratio(value: str) -> tuple[int, int]:
    """``"16:9"`` -> ``(16, 9)``; ValueError for anything else."""
    match = _ASPECT_RATIO.fullmatch(value)
    if match is None:
        raise ValueError(f"aspect ratio {value!r} is not of the form 'W:H', e.g. '16:9'")
    return int(match[1]), int(match[2])


def reject_sexagesimal(value: object) -> object:
    # YAML 1.1 reads an unquoted 16:9 as the base-60 integer 969; say so instead of
    # pydantic's bare "should be a valid string".
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"aspect ratio must be a quoted string such as '16:9', got the number {value} "
            "(YAML reads an unquoted 16:9 as a base-60 number)"
        )
    return value


def check_resolutions(values: list[str]) -> list[str]:
    """Known, canonical resolution names, each once."""
    for resolution in values:
        if resolution not in RESOLUTION_SHORT_SIDES:
            raise ValueError(
                f"unknown resolution {resolution!r}; known: {', '.join(RESOLUTION_SHORT_SIDES)}"
            )
    if len(set(values)) != len(values):
        raise ValueError("resolutions lists a value more than once")
    return values


def check_aspect_ratios(values: list[str]) -> list[str]:
    """``W:H`` aspect ratios, each once."""
    for ratio in values:
        parse_aspect_ratio(ratio)
    if len(set(values)) != len(values):
        raise ValueError("aspect_ratios lists a value more than once")
    return values
