"""What each upstream model accepts, as data, and the one check of a spec against it.

The catalogue's ``upstreams:`` section (``catalog.yaml``, and an operator's models file
on top) says, per adapter and upstream model, which durations, resolutions, aspect
ratios, frame rates, job kinds and input images a model takes. Models are named by
glob patterns (``kling-v3*``, ``*/kling-video/*``), tried in the order written; an
adapter without a ``"*"`` entry knows only the models listed.

``check`` holds a normalized ``JobSpec`` against one model's ``Capabilities`` and
raises the ``InvalidParameter`` a client sees. Routing runs it (through each adapter's
``validate``) at create, and the runner runs it again right before submit, so a spec
that one upstream model cannot take never reaches that adapter's request building.
What the data cannot say (a source video made on another deployment, a missing public
URL, an image too large as a data URI) stays in the adapter's ``validate``.

What an adapter bridges is not refused: one that converts input images to a type its
upstream takes passes the types it converts (``bridged_types``), and those count as
taken. An upstream whose data lists no ``image_types`` takes ``WEB_IMAGE_TYPES``, the
types every image-taking API shares; the others vidgate reads (BMP, TIFF) reach only
upstreams that list them, or adapters that convert them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vidgate.core.errors import InvalidParameter
from vidgate.core.frames import check_aspect_ratios, check_resolutions, reject_sexagesimal

if TYPE_CHECKING:
    # Only annotations: vidgate.core.spec imports the catalogue, which imports this.
    from vidgate.core.spec import ImageRef, JobSpec

Kind = Literal["generate", "remix", "extend"]
_Refuse = Callable[[str, str, str], InvalidParameter]

# The input image types assumed where an upstream's data lists none.
WEB_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")


class DurationRule(BaseModel):
    """Durations a model accepts: a list of ``allowed`` values or a ``min``-``max`` range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: list[int] | None = None
    min: int | None = None
    max: int | None = None

    @field_validator("allowed")
    @classmethod
    def _sort_allowed(cls, value: list[int] | None) -> list[int] | None:
        return None if value is None else sorted(set(value))

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if self.allowed is not None:
            if self.min is not None or self.max is not None:
                raise ValueError("durations takes either 'allowed' or 'min'/'max', not both")
            if not self.allowed or self.allowed[0] < 1:
                raise ValueError("durations.allowed must list positive whole seconds")
        elif self.min is None or self.max is None:
            raise ValueError("durations needs 'allowed', or both 'min' and 'max'")
        elif self.min < 1 or self.max < self.min:
            raise ValueError(f"durations range {self.min}-{self.max} is empty or not positive")
        return self

    @property
    def minimum(self) -> int:
        if self.allowed is not None:
            return self.allowed[0]
        assert self.min is not None
        return self.min

    @property
    def maximum(self) -> int:
        if self.allowed is not None:
            return self.allowed[-1]
        assert self.max is not None
        return self.max

    def check(self, seconds: int) -> bool:
        if self.allowed is not None:
            return seconds in self.allowed
        return self.minimum <= seconds <= self.maximum

    def describe(self, up_to: int | None = None) -> str:
        """``"5, 10"`` or ``"1-60"``; with ``up_to``, only durations <= it ("" if none)."""
        if self.allowed is not None:
            values = [s for s in self.allowed if up_to is None or s <= up_to]
            return ", ".join(str(s) for s in values)
        low = self.minimum
        high = self.maximum if up_to is None else min(self.maximum, up_to)
        if high < low:
            return ""
        return str(low) if low == high else f"{low}-{high}"


class Capabilities(BaseModel):
    """What one upstream model takes. A list left out (None) means any value: the
    upstream decides, as for a model vidgate knows nothing about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[Kind] = Field(default_factory=lambda: list[Kind](["generate"]), min_length=1)
    text_to_video: bool = True
    image_to_video: bool = True
    durations: DurationRule | None = None
    # Durations at one resolution, where they are narrower (MiniMax: 1080p only at 6 s);
    # not applied to an extend, whose frame is the source's.
    durations_at: dict[str, DurationRule] = Field(default_factory=dict)
    # What an extend may add, and how long the extended video may be in all.
    extend_durations: DurationRule | None = None
    max_total_seconds: int | None = Field(default=None, ge=1)
    resolutions: list[str] | None = None
    aspect_ratios: list[str] | None = None
    # Exact frames "WxH", where the upstream takes only these (OpenAI's ``size``).
    sizes: list[str] | None = None
    # Checked only without a first frame: models whose image-to-video output takes the
    # image's own shape.
    text_aspect_ratios: list[str] | None = None
    fps: list[int] | None = None
    max_n: int | None = Field(default=1, ge=1)
    seed: bool = True
    negative_prompt: bool = True
    max_prompt_chars: int | None = Field(default=None, ge=1)
    # A last frame, always after a first frame.
    last_frame: bool = False
    max_reference_images: int = Field(default=0, ge=0)
    # Reference images only on their own: no first or last frame, no source video.
    references_alone: bool = False
    # Limits on every input image (first frame, last frame, references).
    image_types: list[str] | None = None
    image_min_side: int | None = Field(default=None, ge=1)
    # Width / height, inclusive.
    image_aspect: tuple[float, float] | None = None

    @field_validator("aspect_ratios", "text_aspect_ratios", mode="before")
    @classmethod
    def _ratios_are_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [reject_sexagesimal(item) for item in value]
        return value

    @field_validator("aspect_ratios", "text_aspect_ratios")
    @classmethod
    def _check_ratios(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_aspect_ratios(value)

    @field_validator("sizes")
    @classmethod
    def _check_sizes(cls, value: list[str] | None) -> list[str] | None:
        for size in value or []:
            width, sep, height = size.partition("x")
            if not (sep and width.isdigit() and height.isdigit()):
                raise ValueError(f"size {size!r} is not of the form WIDTHxHEIGHT, e.g. 1280x720")
        return value

    @field_validator("resolutions")
    @classmethod
    def _check_resolutions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_resolutions(value)

    @field_validator("durations_at")
    @classmethod
    def _check_durations_at(cls, value: dict[str, DurationRule]) -> dict[str, DurationRule]:
        check_resolutions(list(value))
        return value


class ModelEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    pattern: str
    capabilities: Capabilities


class CapabilityTable:
    """Every adapter's models, by adapter name (``kling``, ``fal``, ...)."""

    def __init__(self, entries: Mapping[str, Iterable[ModelEntry]]) -> None:
        self._entries = {provider: tuple(models) for provider, models in entries.items()}

    def lookup(self, provider: str, model: str) -> Capabilities | None:
        """The first entry of ``provider`` whose pattern matches ``model``; None if none."""
        for entry in self._entries.get(provider, ()):
            if fnmatchcase(model, entry.pattern):
                return entry.capabilities
        return None

    def knows(self, provider: str) -> bool:
        """Whether there is data for ``provider``'s models at all."""
        return provider in self._entries

    def patterns(self, provider: str) -> list[str]:
        return [entry.pattern for entry in self._entries.get(provider, ())]

    def merged(self, override: Mapping[str, Iterable[ModelEntry]]) -> CapabilityTable:
        """``override``'s entries laid over these: one with a pattern already here
        replaces that entry where it stands; new patterns come first, so they win."""
        merged: dict[str, tuple[ModelEntry, ...]] = dict(self._entries)
        for provider, models in override.items():
            given = {entry.pattern: entry for entry in models}
            known = self._entries.get(provider, ())
            replaced = tuple(given.pop(e.pattern, e) for e in known)
            merged[provider] = tuple(given.values()) + replaced
        return CapabilityTable(merged)

    def check(
        self,
        spec: JobSpec,
        provider: str,
        model: str,
        who: str,
        *,
        bridged_types: Iterable[str] = (),
    ) -> None:
        """``check`` against ``model``'s entry; a refusal of an input some other model
        of ``provider`` takes names those models. ``bridged_types``: the input image
        types the adapter converts into one the upstream takes."""
        caps = self.require(provider, model, who)
        check(spec, caps, who, self._entries.get(provider, ()), bridged_types=bridged_types)

    def require(self, provider: str, model: str, who: str) -> Capabilities:
        """``lookup``, or the client's 400 naming the models this adapter knows."""
        caps = self.lookup(provider, model)
        if caps is None:
            raise InvalidParameter(
                f"{who}: upstream model {model!r} is not supported here; "
                f"allowed: {', '.join(self.patterns(provider)) or 'none'}",
                param="model",
            )
        return caps


def _allowed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def check(
    spec: JobSpec,
    caps: Capabilities,
    who: str,
    peers: Iterable[ModelEntry] = (),
    *,
    bridged_types: Iterable[str] = (),
) -> None:
    """Raise ``InvalidParameter`` for the first thing in ``spec`` that ``caps`` does not
    allow; ``who`` names the deployment and model in the message. ``peers``: the other
    models of the same adapter, named when they take an input this one refuses.
    ``bridged_types``: image types the adapter converts, taken as if native."""
    peer_list = list(peers)

    def refuse(what: str, allowed: str, param: str) -> InvalidParameter:
        takers = [
            e.pattern
            for e in peer_list
            if e.pattern != "*" and e.capabilities is not caps and _takes(e.capabilities, param)
        ]
        also = (
            f"; models that do: {', '.join(takers)}" if takers and not _takes(caps, param) else ""
        )
        return InvalidParameter(f"{who}: {what}; allowed: {allowed}{also}", param=param)

    if spec.kind not in caps.kinds:
        raise refuse(f"{spec.kind} is not supported", _allowed(caps.kinds), "video")
    if caps.max_n is not None and spec.n > caps.max_n:
        most, per = ("1", "one video") if caps.max_n == 1 else (f"1-{caps.max_n}", "videos")
        raise refuse(f"n {spec.n} is not supported: {per} per request", most, "n")
    if caps.max_prompt_chars is not None:
        for param, text in (("prompt", spec.prompt), ("negative_prompt", spec.negative_prompt)):
            if text is not None and len(text) > caps.max_prompt_chars:
                raise refuse(
                    f"{param} is {len(text)} characters, over the limit",
                    f"at most {caps.max_prompt_chars} characters",
                    param,
                )
    _check_length(spec, caps, refuse)
    # Exact frames first: the most precise refusal, naming what a client can send.
    if caps.sizes is not None and spec.size not in caps.sizes:
        raise refuse(f"size {spec.size} is not supported", _allowed(caps.sizes), "size")
    if caps.resolutions is not None and spec.resolution not in caps.resolutions:
        raise refuse(
            f"resolution {spec.resolution} is not supported",
            _allowed(caps.resolutions),
            "resolution",
        )
    at = caps.durations_at.get(spec.resolution)
    if at is not None and spec.kind != "extend" and not at.check(spec.seconds):
        raise refuse(
            f"{spec.resolution} videos cannot last {spec.seconds} s",
            at.describe(),
            "seconds",
        )
    ratios = caps.aspect_ratios
    if ratios is None and spec.image is None:
        ratios = caps.text_aspect_ratios
    if ratios is not None and spec.aspect_ratio not in ratios:
        how = " from text (a first frame sets the ratio)" if caps.aspect_ratios is None else ""
        raise refuse(
            f"aspect_ratio {spec.aspect_ratio} is not supported{how}",
            _allowed(ratios),
            "aspect_ratio",
        )
    if caps.fps is not None and spec.fps not in caps.fps:
        raise refuse(
            f"fps {spec.fps} is not supported (the frame rate is fixed)",
            _allowed(caps.fps),
            "fps",
        )
    if spec.seed is not None and not caps.seed:
        raise refuse("a seed is not supported", "none", "seed")
    if spec.negative_prompt is not None and not caps.negative_prompt:
        raise refuse("a negative prompt is not supported", "none", "negative_prompt")
    _check_images(spec, caps, refuse, bridged_types)


def _takes(caps: Capabilities, param: str) -> bool:
    """Whether ``caps`` takes the optional input ``param`` at all."""
    if param == "last_frame":
        return caps.last_frame
    if param == "reference_images":
        return caps.max_reference_images > 0
    if param in ("seed", "negative_prompt"):
        return bool(getattr(caps, param))
    return True


def _check_length(spec: JobSpec, caps: Capabilities, refuse: _Refuse) -> None:
    source = spec.source
    if spec.kind == "extend" and caps.extend_durations is not None:
        rule = caps.extend_durations
        if not rule.check(spec.seconds):
            raise refuse(f"an extension cannot add {spec.seconds} s", rule.describe(), "seconds")
    elif caps.durations is not None and not caps.durations.check(spec.seconds):
        raise refuse(
            f"duration {spec.seconds} is not supported",
            caps.durations.describe(),
            "seconds",
        )
    total = caps.max_total_seconds
    if (
        spec.kind == "extend"
        and source is not None
        and total is not None
        and source.seconds + spec.seconds > total
    ):
        raise refuse(
            f"an extended video may last at most {total} s in all and the source has"
            f" {source.seconds} s",
            f"up to {max(0, total - source.seconds)} more seconds",
            "seconds",
        )


def _check_images(
    spec: JobSpec, caps: Capabilities, refuse: _Refuse, bridged_types: Iterable[str]
) -> None:
    refs = spec.reference_images
    if spec.last_frame is not None:
        if spec.image is None:
            raise refuse("a last frame needs a first frame", "image with last_frame", "last_frame")
        if not caps.last_frame:
            raise refuse("a last frame is not supported", "a first frame only", "last_frame")
        if spec.kind != "generate":
            raise refuse(
                f"a last frame cannot be used to {spec.kind} a video",
                "last_frame when generating from an image",
                "last_frame",
            )
    if refs:
        most = caps.max_reference_images
        if not most:
            raise refuse("reference images are not supported", "none", "reference_images")
        if len(refs) > most:
            raise refuse(
                f"{len(refs)} reference images is more than it takes",
                f"0-{most}",
                "reference_images",
            )
        others = [
            name
            for name, present in (
                ("a first frame (image)", spec.image is not None),
                ("a last frame", spec.last_frame is not None),
                (f"a source video ({spec.kind})", spec.kind != "generate"),
            )
            if present
        ]
        if caps.references_alone and others:
            raise refuse(
                f"reference images cannot be combined with {' or '.join(others)}",
                "reference_images with a text prompt only",
                "reference_images",
            )
    if spec.image is not None and not caps.image_to_video:
        raise refuse(
            "an input image is not supported (text-to-video only)",
            "no image, or an image-to-video model",
            "image",
        )
    from_text = spec.kind == "generate" and spec.image is None
    if from_text and not caps.text_to_video and not (refs and caps.references_alone):
        raise refuse(
            "a first frame is needed (image-to-video only)",
            "an image" + (" or reference images" if caps.max_reference_images else ""),
            "image",
        )
    named: list[tuple[str, ImageRef | None]] = [
        ("image", spec.image),
        ("last_frame", spec.last_frame),
        *(("reference_images", ref) for ref in refs),
    ]
    present = [(param, image) for param, image in named if image is not None]
    if present:
        types = list(dict.fromkeys([*(caps.image_types or WEB_IMAGE_TYPES), *bridged_types]))
        for param, image in present:
            _check_image(image, param, caps, refuse, types)


def _check_image(
    image: ImageRef, param: str, caps: Capabilities, refuse: _Refuse, types: list[str]
) -> None:
    if image.content_type not in types:
        raise refuse(
            f"{param} of type {image.content_type} is not supported", _allowed(types), param
        )
    size = f"{image.width}x{image.height}"
    side = caps.image_min_side
    if side is not None and min(image.width, image.height) < side:
        raise refuse(f"{param} is {size}", f"at least {side} px on each side", param)
    if caps.image_aspect is not None:
        low, high = caps.image_aspect
        if not low <= image.width / image.height <= high:
            raise refuse(
                f"{param} is {size}, whose width/height is out of range",
                f"width/height {low:g}-{high:g}",
                param,
            )
