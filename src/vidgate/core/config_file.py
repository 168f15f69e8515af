"""The operator's YAML read with line numbers, so that an error names the place.

``read_located(text, source)`` answers the document (plain dicts and lists, as
``yaml.safe_load`` gives) and a ``Lines`` map from each key's path to the line it is on;
``ConfigError`` is a mistake at such a place (``file:line: what; accepted: ...``), and
``located_errors`` turns a pydantic ``ValidationError`` of a part of the document into
those, unknown keys listing the keys that are accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Lines:
    """Where each key (or list item) of a document is: its path -> 1-based line."""

    source: str
    by_path: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, path: Iterable[str | int]) -> int | None:
        """The line of ``path``, or of the deepest part of it that is in the file (a
        missing key is reported where its mapping is)."""
        parts = tuple(str(p) for p in path)
        for end in range(len(parts), 0, -1):
            found = self.by_path.get(parts[:end])
            if found is not None:
                return found
        return None

    def where(self, path: Iterable[str | int]) -> str:
        line = self.line(path)
        return self.source if line is None else f"{self.source}:{line}"

    def __str__(self) -> str:
        return self.source


class ConfigError(ValueError):
    """One mistake in the configuration: where, what, and what would be accepted."""

    def __init__(self, where: str, message: str, accepted: Sequence[str] = ()) -> None:
        self.where = where
        self.message = message
        self.accepted = list(accepted)
        text = f"{where}: {message}" if where else message
        if self.accepted:
            text += f"; accepted: {', '.join(self.accepted)}"
        super().__init__(text)


class ConfigErrors(ValueError):
    """Every mistake found in one pass (at least one)."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def read_located(text: str, source: str) -> tuple[Any, Lines]:
    """``text`` parsed as ``yaml.safe_load`` does, and the line of every key in it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        document = loader.construct_document(node) if node is not None else None
        lines = Lines(source)
        if node is not None:
            _walk(loader, node, (), lines.by_path)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_where(source, exc), f"the file is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return document, lines


def _yaml_where(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"{source}:{mark.line + 1}" if mark is not None else source


def _walk(
    loader: yaml.SafeLoader, node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]
) -> None:
    # construct_document has flattened merge keys (<<) into node.value already.
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            here = (*path, str(key))
            out.setdefault(here, key_node.start_mark.line + 1)
            _walk(loader, value_node, here, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*path, str(index))
            out.setdefault(here, item.start_mark.line + 1)
            _walk(loader, item, here, out)


def accepted_keys(model: type[BaseModel], *, leave_out: Iterable[str] = ()) -> list[str]:
    """The keys a model takes, as an operator writes them."""
    hidden = set(leave_out)
    return [field.alias or name for name, field in model.model_fields.items() if name not in hidden]


def described_errors(
    exc: ValidationError, model: type[BaseModel] | None = None, *, leave_out: Iterable[str] = ()
) -> list[tuple[str, str, list[str]]]:
    """``(location, message, accepted keys)`` of each error of ``exc``, raised validating
    with ``model``: an unknown key is named as such with the keys accepted where it is
    (``leave_out``: top-level fields the operator does not write). Values are never
    echoed: they may be secrets."""
    described: list[tuple[str, str, list[str]]] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        location = ".".join(str(p) for p in loc)
        if error["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1]) if model is not None else None
            accepted: list[str] = []
            if owner is not None:
                top = leave_out if len(loc) == 1 else ()
                accepted = accepted_keys(owner, leave_out=top) or ["none"]
            described.append((location, "unknown key", accepted))
        elif error["type"] == "missing":
            described.append((location, "is required", []))
        else:
            described.append((location, error["msg"].removeprefix("Value error, "), []))
    return described


def located_errors(
    exc: ValidationError,
    lines: Lines,
    prefix: Path_,
    model: type[BaseModel] | None = None,
    *,
    what: str = "",
    leave_out: Iterable[str] = (),
) -> list[ConfigError]:
    """Each error of ``exc`` (raised validating the part of the document at ``prefix``
    with ``model``) at its line, named by its whole path (``what``: what a key is
    called there, "option" say)."""
    errors: list[ConfigError] = []
    for (location, message, accepted), error in zip(
        described_errors(exc, model, leave_out=leave_out), exc.errors(), strict=True
    ):
        path = (*prefix, *error["loc"])
        name = ".".join(str(p) for p in (*prefix,)) + (f".{location}" if location else "")
        if message == "unknown key" and what:
            message = f"unknown {what}"
        text = f"{name}: {message}" if name else message
        errors.append(ConfigError(lines.where(path), text, accepted))
    return errors


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` inside ``model`` (for the
    keys an unknown key could have been); None where that is not a model."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _model_of(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
