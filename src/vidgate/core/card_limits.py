"""A model card's public limits, from what its deployments' upstream models take.

Clients see a card's limits (``GET /v1/models``) and every request is checked against
them before routing. They may never promise more than some deployment of the card can
do, so they are tied to the ``upstreams:`` capability data (``core/capabilities.py``)
once, when the catalogue loads:

- A limit the card declares must lie within the union of what its deployments' upstream
  models take; a card that claims more is refused, naming the limit, the extra values
  and what the deployments take.
- A limit the card leaves out is that union.
- Where the data cannot say (a list left out there: the upstream decides; a deployment
  of an adapter the data does not know; a card with no deployments), a declared limit
  stands and a missing one is the plain default below: 5 s, 720p, 16:9, 24 fps, one
  video.

Defaults (``default_seconds`` and so on) left out are chosen from the final limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vidgate.core.capabilities import Capabilities, CapabilityTable, DurationRule
from vidgate.core.frames import (
    RESOLUTION_SHORT_SIDES,
    check_aspect_ratios,
    check_resolutions,
    reject_sexagesimal,
)

T = TypeVar("T", int, str)

# What a card takes where neither it nor its deployments' data say more.
FALLBACK_SECONDS = 5
FALLBACK_RESOLUTION = "720p"
FALLBACK_ASPECT_RATIO = "16:9"
FALLBACK_FPS = 24
FALLBACK_PROMPT_CHARS = 4000

# Deployments of these adapters are not upstream models (the local test double).
_NOT_UPSTREAM = frozenset({"sandbox"})


class DeploymentRef(BaseModel):
    """Where a model can run: an adapter, the upstream model it is asked for, and how
    routing weighs it against the card's other deployments (``engine/routing.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    upstream_model: str | None = None
    priority: int = 0
    weight: int = Field(default=1, ge=0)


@dataclass(frozen=True, slots=True)
class Union:
    """What at least one deployment takes; None: the data does not say (any value)."""

    generate: bool
    remix: bool
    extend: bool
    text_to_video: bool
    image_to_video: bool
    durations: frozenset[int] | None
    resolutions: frozenset[str] | None
    aspect_ratios: frozenset[str] | None
    fps: frozenset[int] | None
    max_n: int | None
    max_prompt_chars: int | None
    # Of the models that extend; None: some has no limit vidgate knows of.
    max_total_seconds: int | None
    last_frame: bool
    max_reference_images: int


def _seconds(rule: DurationRule) -> frozenset[int]:
    if rule.allowed is not None:
        return frozenset(rule.allowed)
    return frozenset(range(rule.minimum, rule.maximum + 1))


def _union_set(values: Iterable[Iterable[T] | None]) -> frozenset[T] | None:
    found: set[T] = set()
    for value in values:
        if value is None:
            return None
        found.update(value)
    return frozenset(found)


def _highest(values: Iterable[int | None]) -> int | None:
    found = list(values)
    if not found or any(v is None for v in found):
        return None
    return max(v for v in found if v is not None)


def union_of(caps: Sequence[Capabilities]) -> Union | None:
    """The union of ``caps``; None for none."""
    if not caps:
        return None
    generating = [c for c in caps if "generate" in c.kinds]
    durations: list[frozenset[int] | None] = []
    for c in caps:
        durations.append(None if c.durations is None else _seconds(c.durations))
        if "extend" in c.kinds and c.extend_durations is not None:
            durations.append(_seconds(c.extend_durations))
    return Union(
        generate=bool(generating),
        remix=any("remix" in c.kinds for c in caps),
        extend=any("extend" in c.kinds for c in caps),
        text_to_video=any(c.text_to_video for c in generating),
        image_to_video=any(c.image_to_video for c in generating),
        durations=_union_set(durations),
        resolutions=_union_set(c.resolutions for c in caps),
        # Without an own aspect_ratios the output follows the first frame, so what a
        # request can name is what the model takes from text.
        aspect_ratios=_union_set(c.aspect_ratios or c.text_aspect_ratios for c in caps),
        fps=_union_set(c.fps for c in caps),
        max_n=_highest(c.max_n for c in caps),
        max_prompt_chars=_highest(c.max_prompt_chars for c in caps),
        max_total_seconds=_highest(c.max_total_seconds for c in caps if "extend" in c.kinds),
        last_frame=any(c.last_frame for c in caps),
        max_reference_images=max(c.max_reference_images for c in caps),
    )


def deployments_union(
    refs: Sequence[DeploymentRef],
    table: CapabilityTable,
    named: Mapping[str, str] | None = None,
) -> Union | None:
    """The union of what ``refs``' upstream models take; None when the data cannot say
    (no deployment, or one of an adapter it does not know). A ref names an adapter, or
    a deployment of ``named`` (deployment name -> its adapter). ValueError for an
    upstream model that its adapter's data does not list."""
    caps: list[Capabilities] = []
    for ref in refs:
        adapter = ref.provider if table.knows(ref.provider) else (named or {}).get(ref.provider)
        if adapter is None or adapter in _NOT_UPSTREAM or not table.knows(adapter):
            return None
        found = table.lookup(adapter, ref.upstream_model or "")
        if found is None:
            raise ValueError(
                f"deployment {ref.provider} upstream_model "
                f"{ref.upstream_model!r} is not a model the {adapter} adapter takes "
                f"(known: {', '.join(table.patterns(adapter))}); add an "
                f"upstreams.{adapter} entry for it"
            )
        caps.append(found)
    return union_of(caps)


class DeclaredLimits(BaseModel):
    """The limits a card's YAML declares; every one optional. Other keys are the card's
    and are checked by ``ModelCard``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    durations: DurationRule | None = None
    resolutions: list[str] | None = Field(default=None, min_length=1)
    aspect_ratios: list[str] | None = Field(default=None, min_length=1)
    fps: list[int] | None = Field(default=None, min_length=1)
    max_n: int | None = Field(default=None, ge=1)
    max_prompt_chars: int | None = Field(default=None, ge=1)
    text_to_video: bool | None = None
    image_to_video: bool | None = None
    last_frame: bool | None = None
    max_reference_images: int | None = Field(default=None, ge=0)
    max_total_seconds: int | None = Field(default=None, ge=1)
    remix: bool | None = None
    extend: bool | None = None
    default_seconds: int | None = None
    default_resolution: str | None = None
    default_aspect_ratio: str | None = None
    default_fps: int | None = None
    deployments: list[DeploymentRef] = Field(default_factory=list)

    @field_validator("resolutions")
    @classmethod
    def _check_resolutions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_resolutions(value)

    @field_validator("aspect_ratios", mode="before")
    @classmethod
    def _aspect_ratios_are_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [reject_sexagesimal(item) for item in value]
        return value

    @field_validator("default_aspect_ratio", mode="before")
    @classmethod
    def _default_aspect_ratio_is_string(cls, value: object) -> object:
        return reject_sexagesimal(value)

    @field_validator("aspect_ratios")
    @classmethod
    def _check_aspect_ratios(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_aspect_ratios(value)


def _show(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


class _Limits:
    """Declared limits checked against the union, one field at a time."""

    def __init__(self, union: Union | None) -> None:
        self.union = union
        self.refusals: list[str] = []

    def refuse(self, field: str, extra: str, takes: str) -> None:
        self.refusals.append(f"{field} {extra} (its deployments take {takes})")

    def values(
        self,
        field: str,
        declared: list[T] | None,
        union: frozenset[T] | None,
        order: Sequence[T] | None,
        fallback: T,
    ) -> list[T]:
        if declared is not None:
            extra = [v for v in declared if union is not None and v not in union]
            if extra and union is not None:
                self.refuse(field, _show(extra), _show(_ordered(union, order)) or "none")
            return declared
        if union is None:
            return [fallback]
        return _ordered(union, order)

    def flag(self, field: str, declared: bool | None, union: bool) -> bool:
        if declared is None:
            return union if self.union is not None else field == "text_to_video"
        if declared and self.union is not None and not union:
            self.refuse(field, "true", "none")
        return declared

    def most(self, field: str, declared: int | None, union: int | None, fallback: int) -> int:
        if declared is None:
            return union if union is not None else fallback
        if union is not None and declared > union:
            self.refuse(field, str(declared), f"at most {union}")
        return declared


def _ordered(values: frozenset[T], order: Sequence[T] | None) -> list[T]:
    if order is None:
        return sorted(values)
    known = [v for v in order if v in values]
    return known + sorted(v for v in values if v not in order)


_RATIO_ORDER = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21")


def _durations(limits: _Limits, declared: DurationRule | None) -> dict[str, Any]:
    union = limits.union.durations if limits.union is not None else None
    if declared is not None:
        if union is not None:
            extra = sorted(_seconds(declared) - union)
            if extra:
                limits.refuse("durations", _describe_seconds(extra), _describe_union(union))
        return declared.model_dump(exclude_none=True)
    if union is None:
        return {"allowed": [FALLBACK_SECONDS]}
    return _rule(union)


def _rule(seconds: frozenset[int]) -> dict[str, Any]:
    """Three or more seconds in a row read better as a range: 2-10, not 2, 3, ..., 10."""
    low, high = min(seconds), max(seconds)
    if len(seconds) == high - low + 1 and high - low >= 2:
        return {"min": low, "max": high}
    return {"allowed": sorted(seconds)}


def _total(limits: _Limits, declared: int | None) -> int | None:
    union = limits.union.max_total_seconds if limits.union is not None else None
    if declared is not None and union is not None and declared > union:
        limits.refuse("max_total_seconds", str(declared), f"at most {union}")
    return declared if declared is not None else union


def _describe_seconds(values: list[int]) -> str:
    return ", ".join(str(v) for v in values[:12]) + (", ..." if len(values) > 12 else "") + " s"


def _describe_union(values: frozenset[int]) -> str:
    return DurationRule.model_validate(_rule(values)).describe() + " s"


def _default(declared: T | None, allowed: Sequence[T], preferred: T) -> T:
    if declared is not None:
        return declared
    return preferred if preferred in allowed else allowed[0]


def _default_seconds(declared: int | None, rule: Mapping[str, Any]) -> int:
    if declared is not None:
        return declared
    if "allowed" in rule:
        allowed: list[int] = rule["allowed"]
        return min(allowed, key=lambda s: (abs(s - FALLBACK_SECONDS), s))
    low, high = int(rule["min"]), int(rule["max"])
    return min(max(FALLBACK_SECONDS, low), high)


def derive(
    data: Mapping[str, Any], table: CapabilityTable, named: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``data`` (one card's YAML) with every limit and default filled in from its
    deployments' capabilities (``named``: the operator's deployments, name -> adapter);
    ValueError for a card that claims more than they take. A ValidationError for a
    malformed declared limit is the caller's to word."""
    declared = DeclaredLimits.model_validate(data)
    union = deployments_union(declared.deployments, table, named)
    limits = _Limits(union)
    u = union  # short: read below once per limit
    durations = _durations(limits, declared.durations)
    resolutions = limits.values(
        "resolutions",
        declared.resolutions,
        u.resolutions if u else None,
        list(RESOLUTION_SHORT_SIDES),
        FALLBACK_RESOLUTION,
    )
    ratios = limits.values(
        "aspect_ratios",
        declared.aspect_ratios,
        u.aspect_ratios if u else None,
        _RATIO_ORDER,
        FALLBACK_ASPECT_RATIO,
    )
    fps = limits.values("fps", declared.fps, u.fps if u else None, None, FALLBACK_FPS)
    derived: dict[str, Any] = {
        "durations": durations,
        "resolutions": resolutions,
        "aspect_ratios": ratios,
        "fps": fps,
        "max_n": limits.most("max_n", declared.max_n, u.max_n if u else None, 1),
        "max_prompt_chars": limits.most(
            "max_prompt_chars",
            declared.max_prompt_chars,
            u.max_prompt_chars if u else None,
            FALLBACK_PROMPT_CHARS,
        ),
        "text_to_video": limits.flag(
            "text_to_video", declared.text_to_video, bool(u and u.text_to_video)
        ),
        "image_to_video": limits.flag(
            "image_to_video", declared.image_to_video, bool(u and u.image_to_video)
        ),
        "last_frame": limits.flag("last_frame", declared.last_frame, bool(u and u.last_frame)),
        "max_reference_images": limits.most(
            "max_reference_images",
            declared.max_reference_images,
            u.max_reference_images if u else None,
            0,
        ),
        "max_total_seconds": _total(limits, declared.max_total_seconds),
        "remix": limits.flag("remix", declared.remix, bool(u and u.remix)),
        "extend": limits.flag("extend", declared.extend, bool(u and u.extend)),
        "default_seconds": _default_seconds(declared.default_seconds, durations),
        "default_resolution": _default(
            declared.default_resolution, resolutions, FALLBACK_RESOLUTION
        ),
        "default_aspect_ratio": _default(
            declared.default_aspect_ratio, ratios, FALLBACK_ASPECT_RATIO
        ),
        "default_fps": _default(declared.default_fps, fps, FALLBACK_FPS),
    }
    if limits.refusals:
        raise ValueError(
            "it claims more than its deployments' upstream models take: "
            + "; ".join(limits.refusals)
            + ". Narrow the card, leave the key out (null in an override) to take its "
            "deployments' limits, or say what the upstream takes under 'upstreams:'"
        )
    if "owned_by" not in data:
        # A card of the operator's says whose model it is, or names where it runs.
        derived["owned_by"] = (
            declared.deployments[0].provider if declared.deployments else "vidgate"
        )
    return {**data, **derived}
