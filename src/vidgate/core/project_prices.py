"""The models file's ``projects:`` section: what each project pays per model.

::

    projects:
      acme:                        # a project's name (the --tenant of `vidgate keys create`)
        prices:
          sora-2: {multiplier: 0.8}          # 80 % of the list price
          kling-2.0:                         # a table of its own (core/pricing.py)
            pricing: {per_second: {"720p": 0.05}, default_per_second: 0.08}

A model is named by its id or an alias; an override is kept under the card's id, so
that it applies whichever name a request uses. A table of its own must price every
resolution the model takes. A project named here need not exist yet: it is matched by
name when its jobs are priced. The admin API (``/v1/admin/price_overrides``) sets
overrides in the database; one there wins over the file's for the same project and
model (``vidgate.engine.prices``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vidgate.core.catalog import Catalog
from vidgate.core.config_file import ConfigError, ConfigErrors, Lines, located_errors
from vidgate.core.deployments import read_models_file
from vidgate.core.errors import ModelNotFound
from vidgate.core.pricing import PriceOverride, check_override


class _Project(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Each checked on its own (below), so that every mistake is found in one pass.
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class ProjectPrices:
    """Each project's overrides from the models file: project name -> card id ->
    override."""

    by_project: Mapping[str, Mapping[str, PriceOverride]] = field(default_factory=dict)

    def get(self, project: str, model_id: str) -> PriceOverride | None:
        return self.by_project.get(project, {}).get(model_id)

    def of(self, project: str) -> Mapping[str, PriceOverride]:
        return self.by_project.get(project, {})

    def __bool__(self) -> bool:
        return any(self.by_project.values())


def load_project_prices(models_file: Path | None, catalog: Catalog) -> ProjectPrices:
    """The file's overrides; ``ConfigErrors`` naming each mistake at its line."""
    prices, errors = read_project_prices(models_file, catalog)
    if errors:
        raise ConfigErrors(errors)
    return prices


def read_project_prices(
    models_file: Path | None, catalog: Catalog
) -> tuple[ProjectPrices, list[ConfigError]]:
    """What ``load_project_prices`` answers, with the mistakes found instead of raised
    (``vidgate check`` reports all at once)."""
    if models_file is None:
        return ProjectPrices(), []
    try:
        document, lines = read_models_file(models_file)
    except ConfigError as exc:
        return ProjectPrices(), [exc]
    section = document.get("projects") if isinstance(document, dict) else None
    return project_prices(section, lines, catalog)


def project_prices(
    section: Any, lines: Lines, catalog: Catalog
) -> tuple[ProjectPrices, list[ConfigError]]:
    """The ``projects:`` section (``section``, None when absent) read and checked
    against ``catalog``."""
    if section is None:
        return ProjectPrices(), []
    if not isinstance(section, dict):
        where = lines.where(("projects",))
        return ProjectPrices(), [ConfigError(where, "projects: must map a project name to it")]
    errors: list[ConfigError] = []
    by_project: dict[str, dict[str, PriceOverride]] = {}
    for name, raw in section.items():
        path = ("projects", name)
        if not isinstance(name, str) or not name:
            errors.append(ConfigError(lines.where(path), f"project name {name!r} must be text"))
            continue
        try:
            project = _Project.model_validate(raw or {})
        except ValidationError as exc:
            errors += located_errors(exc, lines, path, _Project)
            continue
        overrides: dict[str, PriceOverride] = {}
        for model, data in project.prices.items():
            where = lines.where((*path, "prices", model))
            try:
                override = PriceOverride.model_validate(data)
            except ValidationError as exc:
                errors += located_errors(exc, lines, (*path, "prices", model), PriceOverride)
                continue
            try:
                card = catalog.get(model)
                check_override(card, override)
            except ModelNotFound as exc:
                errors.append(ConfigError(where, f"projects.{name}.prices: {exc.message}"))
                continue
            except ValueError as exc:
                errors.append(ConfigError(where, f"projects.{name}.prices.{model}: {exc}"))
                continue
            if card.id in overrides:
                errors.append(
                    ConfigError(
                        where,
                        f"projects.{name}.prices.{model}: model {card.id!r} is priced twice"
                        " (by its id and an alias)",
                    )
                )
                continue
            overrides[card.id] = override
        by_project[name] = overrides
    return ProjectPrices(by_project), errors


@dataclass(frozen=True, slots=True)
class PriceOverrideRecord:
    """One project's override of one model, as the admin API lists it: from the
    database (``source="api"``) or the models file (``"file"``)."""

    project_id: str
    model: str
    override: PriceOverride
    source: Literal["api", "file"]
    updated_at: dt.datetime | None = None
