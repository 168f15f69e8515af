"""The model catalogue: which video models the gateway offers and what each one accepts.

The built-in catalogue ships as ``catalog.yaml`` next to this module. An operator can lay
their own YAML file over it (``load_catalog(override=...)``) in the same shape::

    models:
      sora-2:                 # known id: deep-merged, operator keys win
        pricing:
          points: {"720p": [[5, 0.25], [10, 0.40]]}
      my-model: {...}         # new id: a card (its deployments may be all it needs)
    remove: [luma-ray-2]      # ids to drop

A card's limits are tied to what its deployments' upstream models take when the
catalogue loads (``vidgate.core.card_limits``): a card may leave them out, and may not
claim more. A card's ``aliases`` are other names that reach it (``veo-3`` for
``veo-3.1``); an override naming an alias changes (or, in ``remove``, drops) that alias.

Within a merged model, mappings merge key by key, lists and scalars are replaced, and a
``null`` value deletes the key (so ``points: {"720p": null}`` drops a point list that
a ``per_second`` rate should replace). ``durations`` is always replaced whole because
its two forms (``allowed`` versus ``min``/``max``) cannot be mixed.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vidgate.core.capabilities import Capabilities, CapabilityTable, DurationRule, ModelEntry
from vidgate.core.card_limits import DeploymentRef, derive
from vidgate.core.config_file import ConfigError, Lines, described_errors, read_located
from vidgate.core.errors import ModelNotFound
from vidgate.core.frames import (
    RESOLUTION_SHORT_SIDES,
    canonical_resolution,
    check_aspect_ratios,
    check_resolutions,
    parse_aspect_ratio,
    reject_sexagesimal,
)
from vidgate.core.pricing import PriceTable

# Names other modules read from here.
__all__ = [
    "RESOLUTION_SHORT_SIDES",
    "Catalog",
    "DeploymentRef",
    "DurationRule",
    "ModelCard",
    "builtin_upstreams",
    "canonical_resolution",
    "load_catalog",
    "parse_aspect_ratio",
]


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    description: str = ""
    owned_by: str = "vidgate"
    # Other names that reach this card: the names of models a provider retired.
    aliases: list[str] = Field(default_factory=list)
    durations: DurationRule
    resolutions: list[str] = Field(min_length=1)
    aspect_ratios: list[str] = Field(min_length=1)
    fps: list[int] = Field(min_length=1)
    max_n: int = Field(default=4, ge=1)
    max_prompt_chars: int = Field(default=4000, ge=1)
    default_seconds: int
    default_resolution: str
    default_aspect_ratio: str
    default_fps: int
    text_to_video: bool = True
    image_to_video: bool = False
    # A last frame to end on (with a first frame), and style/subject reference images.
    last_frame: bool = False
    max_reference_images: int = Field(default=0, ge=0)
    extend: bool = False
    # The longest an extended video may be in all; None: no limit vidgate knows of.
    max_total_seconds: int | None = Field(default=None, ge=1)
    remix: bool = False
    # None: no list price; estimates are unknown (null) for this model.
    pricing: PriceTable | None = None
    deployments: list[DeploymentRef] = Field(default_factory=list)

    @field_validator("resolutions")
    @classmethod
    def _check_resolutions(cls, value: list[str]) -> list[str]:
        return check_resolutions(value)

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
    def _check_aspect_ratios(cls, value: list[str]) -> list[str]:
        return check_aspect_ratios(value)

    @field_validator("fps")
    @classmethod
    def _check_fps(cls, value: list[int]) -> list[int]:
        if any(f < 1 for f in value):
            raise ValueError("fps values must be positive")
        _reject_duplicates(value, "fps")
        return value

    @model_validator(mode="after")
    def _check_defaults(self) -> Self:
        if not self.durations.check(self.default_seconds):
            raise ValueError(
                f"default_seconds {self.default_seconds} is outside durations "
                f"{self.durations.describe()}"
            )
        for name, default, allowed in (
            ("default_resolution", self.default_resolution, self.resolutions),
            ("default_aspect_ratio", self.default_aspect_ratio, self.aspect_ratios),
            ("default_fps", self.default_fps, self.fps),
        ):
            if default not in allowed:
                raise ValueError(
                    f"{name} {default} is not one of {', '.join(str(a) for a in allowed)}"
                )
        pricing = self.pricing
        unpriced = [r for r in self.resolutions if pricing and not pricing.covers(r)]
        if unpriced:
            raise ValueError(
                f"no price for resolution(s) {', '.join(unpriced)}; add points or per_second "
                "for each, or a default_per_second"
            )
        return self

    def estimate(self, resolution: str, seconds: int) -> Decimal | None:
        """The list price of one video; None for a model without one."""
        return None if self.pricing is None else self.pricing.estimate(resolution, seconds)

    @property
    def kinds(self) -> list[str]:
        """The job kinds this model accepts, for error messages."""
        kinds = ["generate"] if self.text_to_video or self.image_to_video else []
        if self.remix:
            kinds.append("remix")
        if self.extend:
            kinds.append("extend")
        return kinds


def _reject_duplicates(values: list[str] | list[int], field: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{field} lists a value more than once")


class Catalog:
    """The models on offer, in a stable order (built-in order, then operator additions)."""

    def __init__(
        self, cards: Iterable[ModelCard], upstreams: CapabilityTable | None = None
    ) -> None:
        # What each adapter's upstream models take (vidgate.core.capabilities).
        self.upstreams = upstreams or CapabilityTable({})
        self._cards: dict[str, ModelCard] = {}
        for card in cards:
            if card.id in self._cards:
                raise ValueError(f"model {card.id!r} is listed twice")
            self._cards[card.id] = card
        # Every name a client may send: card ids and their aliases.
        self._names: dict[str, ModelCard] = dict(self._cards)
        for card in self._cards.values():
            for alias in card.aliases:
                taken = self._names.get(alias)
                if taken is not None:
                    what = "a model" if taken.id == alias else f"an alias of {taken.id!r}"
                    raise ValueError(f"alias {alias!r} of model {card.id!r} is already {what}")
                self._names[alias] = card

    def get(self, model_id: str) -> ModelCard:
        """The card ``model_id`` names, by its id or one of its aliases."""
        card = self._names.get(model_id)
        if card is not None:
            return card
        known = list(self._cards)
        shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
        message = f"model {model_id!r} does not exist; available models: {shown or 'none'}"
        close = difflib.get_close_matches(model_id, known, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        raise ModelNotFound(message, param="model")

    def models(self) -> list[ModelCard]:
        return list(self._cards.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._names

    def __len__(self) -> int:
        return len(self._cards)


_BUILTIN_SOURCE = "built-in catalogue"
# "deployments" is read by vidgate.core.deployments, "projects" by vidgate.core.project_prices.
_OVERRIDE_KEYS = {"models", "remove", "deployments", "upstreams", "projects"}
# Top-level card keys an override replaces rather than merges; see the module docstring.
_REPLACED_KEYS = {"durations"}


def load_catalog(override: Path | None = None) -> Catalog:
    """The built-in catalogue, with the operator's ``override`` file laid over it."""
    text = resources.files("vidgate.core").joinpath("catalog.yaml").read_text(encoding="utf-8")
    builtin, builtin_lines = _parse(text, _BUILTIN_SOURCE)
    entries = _models_section(builtin, builtin_lines)
    # Where each model's settings come from, for errors naming the file and line.
    sources = dict.fromkeys(entries, builtin_lines)
    # An alias named in an override means its card (an old name in an operator's file).
    aliases = {
        alias: model_id
        for model_id, data in entries.items()
        for alias in data.get("aliases") or ()
        if isinstance(alias, str)
    }
    upstreams = CapabilityTable(_upstreams_section(builtin, builtin_lines))

    # The operator's deployments by name, so that a card naming one is tied to its adapter.
    adapters_of: dict[str, str] = {}
    if override is not None:
        try:
            override_text = override.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(
                f"cannot read catalogue override {override}: {exc.strerror or exc}"
            ) from exc
        document, source = _parse(override_text, str(override))
        unknown = sorted(map(str, set(document) - _OVERRIDE_KEYS))
        if unknown:
            raise ConfigError(
                source.where([unknown[0]]),
                f"unknown top-level key(s) {', '.join(unknown)}",
                sorted(_OVERRIDE_KEYS),
            )
        changes = _models_section(document, source)
        adapters_of = _deployment_adapters(document)
        upstreams = upstreams.merged(_upstreams_section(document, source))
        removals = _remove_section(document, source)
        for index, model_id in enumerate(removals):
            where = source.where(["remove", index])
            if model_id in changes:
                raise ValueError(f"{where}: model {model_id!r} is both in models and in remove")
            if model_id not in entries and model_id in aliases:
                owner = entries.get(aliases[model_id])
                if owner is not None:
                    kept = [a for a in owner.get("aliases") or () if a != model_id]
                    entries[aliases[model_id]] = {**owner, "aliases": kept}
                continue
            if model_id not in entries:
                raise ValueError(f"{where}: cannot remove unknown model {model_id!r}")
            del entries[model_id]
        for given, change in changes.items():
            model_id = given if given in entries else aliases.get(given, given)
            base = entries.get(model_id)
            entries[model_id] = change if base is None else _merge(base, change, top=True)
            sources[model_id] = source

    cards = []
    for model_id, data in entries.items():
        try:
            card = derive(data, upstreams, adapters_of)
            cards.append(ModelCard.model_validate({**card, "id": model_id}))
        except ValidationError as exc:
            where = sources[model_id].where(["models", model_id, *exc.errors()[0]["loc"]])
            raise ValueError(
                f"{where}: model {model_id!r} is invalid: {_describe(exc, ModelCard)}"
            ) from exc
        except ValueError as exc:
            where = sources[model_id].where(["models", model_id])
            raise ValueError(f"{where}: model {model_id!r} is invalid: {exc}") from exc
    try:
        return Catalog(cards, upstreams)
    except ValueError as exc:
        where = _BUILTIN_SOURCE if override is None else str(override)
        raise ValueError(f"{where}: {exc}") from exc


@functools.cache
def builtin_upstreams() -> CapabilityTable:
    """The built-in catalogue's ``upstreams`` (adapters built without a catalogue, as in
    their tests, check against these)."""
    return load_catalog().upstreams


def _parse(text: str, source: str) -> tuple[dict[str, Any], Lines]:
    """The document, and the line of each of its keys (``Lines``: its ``str`` is the
    source's name, which messages start with)."""
    document, lines = read_located(text, source)
    if document is None:
        return {}, lines
    if not isinstance(document, dict):
        raise ValueError(f"{source} must be a mapping with a 'models' key")
    return document, lines


def _models_section(document: Mapping[str, Any], source: Lines) -> dict[str, dict[str, Any]]:
    section = document.get("models")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ValueError(
            f"{source.where(['models'])}: 'models' must be a mapping from model id to its settings"
        )
    entries: dict[str, dict[str, Any]] = {}
    for model_id, data in section.items():
        where = source.where(["models", model_id])
        if not isinstance(model_id, str):
            raise ValueError(f"{where}: model id {model_id!r} must be a string")
        if not isinstance(data, dict):
            raise ValueError(
                f"{where}: model {model_id!r} must be a mapping of settings "
                "(to drop a model, list it under 'remove')"
            )
        if "id" in data and data["id"] != model_id:
            raise ValueError(
                f"{where}: model {model_id!r} has a different id {data['id']!r}; "
                "the key is the id, leave 'id' out"
            )
        entries[model_id] = data
    return entries


def _upstreams_section(document: Mapping[str, Any], source: Lines) -> dict[str, list[ModelEntry]]:
    """``upstreams: {adapter: {model pattern: capabilities}}``, patterns in file order."""
    section = document.get("upstreams")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ValueError(
            f"{source.where(['upstreams'])}: 'upstreams' must map an adapter name to its models"
        )
    table: dict[str, list[ModelEntry]] = {}
    for provider, models in section.items():
        if not isinstance(models, dict):
            raise ValueError(
                f"{source.where(['upstreams', provider])}: upstreams.{provider} must map a model "
                "name or pattern to what "
                "it accepts"
            )
        table[str(provider)] = []
        for pattern, data in models.items():
            try:
                caps = Capabilities.model_validate(data or {})
            except ValidationError as exc:
                where = source.where(["upstreams", provider, pattern, *exc.errors()[0]["loc"]])
                raise ValueError(
                    f"{where}: upstreams.{provider} model {pattern!r} is invalid: "
                    f"{_describe(exc, Capabilities)}"
                ) from exc
            table[str(provider)].append(ModelEntry(pattern=str(pattern), capabilities=caps))
    return table


def _deployment_adapters(document: Mapping[str, Any]) -> dict[str, str]:
    """Each deployment of the file's ``deployments:`` by name -> its adapter (the
    section is checked where deployments are loaded: vidgate.core.deployments)."""
    section = document.get("deployments")
    if not isinstance(section, dict):
        return {}
    return {
        str(name): data["provider"]
        for name, data in section.items()
        if isinstance(data, dict) and isinstance(data.get("provider"), str)
    }


def _remove_section(document: Mapping[str, Any], source: Lines) -> list[str]:
    section = document.get("remove")
    if section is None:
        return []
    if not isinstance(section, list) or not all(isinstance(i, str) for i in section):
        raise ValueError(f"{source.where(['remove'])}: 'remove' must be a list of model ids")
    return section


def _merge(base: Mapping[str, Any], change: Mapping[str, Any], *, top: bool) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        elif (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and not (top and key in _REPLACED_KEYS)
        ):
            merged[key] = _merge(merged[key], value, top=False)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """Each error with its field; an unknown key with the keys ``model`` accepts there."""
    parts = []
    for location, message, accepted in described_errors(exc, model, leave_out=["id"]):
        if accepted:
            message += f"; accepted: {', '.join(accepted)}"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)
