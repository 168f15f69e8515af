"""Deployments: a configured upstream (provider adapter + base URL + credentials).

A model in the catalogue lists the deployments that can serve it (``provider:`` in its
``deployments``: an adapter name, meaning every deployment of that adapter, or one
deployment's name; ``vidgate.core.deployment_refs``). Deployments come from two places:

1. Well-known environment variables, one default deployment per provider, named after
   it: ``LUMAAI_API_KEY`` configures ``luma``, ``FAL_KEY`` configures ``fal``, ..., and
   a base-URL variable (``LUMAAI_BASE_URL``, ...) points it elsewhere. Which variables a
   provider reads is declared with its adapter, in the registry
   (``vidgate.providers.registry.ADAPTERS``), and handed in here as ``EnvDefaults``.
2. The operator's YAML (``VIDGATE_MODELS_FILE``), under ``deployments:``; a string value
   may reference the environment as ``${NAME}``. A YAML entry with the name of a default
   deployment replaces it.

A deployment whose credentials reference an unset variable is left out (and logged),
never half-configured. Secrets are ``SecretStr``: they print as ``**********``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from vidgate.core.config_file import ConfigError, ConfigErrors, Lines, located_errors, read_located

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # The adapter: a key of vidgate.providers.registry.ADAPTERS.
    provider: str = Field(min_length=1)
    base_url: str | None = None
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    # Provider-specific settings that are not secret (project, location, api_version...).
    options: dict[str, Any] = Field(default_factory=dict)
    # Jobs this deployment may have upstream at once; more wait inside vidgate.
    max_concurrency: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=30.0, gt=0)

    def secret(self, key: str) -> str:
        value = self.credentials.get(key)
        if value is None:
            raise KeyError(f"deployment {self.name!r} has no credential {key!r}")
        return value.get_secret_value()


@dataclass(frozen=True)
class EnvDefaults:
    """The environment variables of a provider's default deployment: every credential
    variable must be set for it to exist; options are read where set. ``base_url`` names
    the variable that replaces the adapter's default base URL; a value without a scheme
    is a host, reached over https (fal's SDK variable names a host). With
    ``base_url_required`` there is no deployment without it: the provider's own service
    is gone, and its credential variable alone would route jobs to nowhere."""

    credentials: Mapping[str, str]
    options: Mapping[str, str] = field(default_factory=dict)
    base_url: str | None = None
    base_url_required: bool = False


def _base_url(value: str) -> str:
    return value if "://" in value else f"https://{value}"


def _expand(value: Any, env: Mapping[str, str], missing: set[str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                missing.add(name)
                return ""
            return env[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, missing) for v in value]
    return value


def env_deployments(
    env: Mapping[str, str], defaults: Mapping[str, EnvDefaults]
) -> dict[str, DeploymentConfig]:
    """The default deployment of each provider (``defaults``: provider -> variables)
    whose credential variables (and required base-URL variable) are all set."""
    found: dict[str, DeploymentConfig] = {}
    for provider, wanted in defaults.items():
        if not all(env.get(var) for var in wanted.credentials.values()):
            continue
        base_url = env.get(wanted.base_url) if wanted.base_url else None
        if wanted.base_url_required and not base_url:
            continue
        found[provider] = DeploymentConfig(
            name=provider,
            provider=provider,
            base_url=_base_url(base_url) if base_url else None,
            credentials={k: SecretStr(env[v]) for k, v in wanted.credentials.items()},
            options={k: env[v] for k, v in wanted.options.items() if env.get(v)},
        )
    return found


def load_deployments(
    models_file: Path | None,
    defaults: Mapping[str, EnvDefaults],
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, DeploymentConfig], dict[str, list[str]]]:
    """``(deployments by name, {skipped name: missing env vars})``; ``ConfigErrors``
    naming each invalid deployment at its line of the file."""
    deployments, skipped, errors = read_deployments(models_file, defaults, env)
    if errors:
        raise ConfigErrors(errors)
    return deployments, skipped


def read_deployments(
    models_file: Path | None,
    defaults: Mapping[str, EnvDefaults],
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, DeploymentConfig], dict[str, list[str]], list[ConfigError]]:
    """What ``load_deployments`` answers, with the mistakes found instead of raised: the
    valid deployments are there beside them (``vidgate check`` reports all at once)."""
    env = os.environ if env is None else env
    deployments = env_deployments(env, defaults)
    skipped: dict[str, list[str]] = {}
    if models_file is None:
        return deployments, skipped, []
    try:
        document, lines = read_models_file(models_file)
    except ConfigError as exc:
        return deployments, skipped, [exc]
    section = document.get("deployments") if isinstance(document, dict) else None
    if section is None:
        return deployments, skipped, []
    if not isinstance(section, dict):
        where = lines.where(("deployments",))
        return deployments, skipped, [ConfigError(where, "must map a name to its settings")]
    errors: list[ConfigError] = []
    for name, raw in section.items():
        if not isinstance(raw, dict):
            where = lines.where(("deployments", name))
            errors.append(ConfigError(where, f"deployment {name!r} must be a mapping"))
            continue
        missing: set[str] = set()
        expanded = _expand(raw, env, missing)
        if missing:
            skipped[str(name)] = sorted(missing)
            deployments.pop(str(name), None)
            continue
        try:
            deployments[str(name)] = DeploymentConfig.model_validate({**expanded, "name": name})
        except ValidationError as exc:
            # Never echo the values: they may hold secrets.
            errors += located_errors(
                exc, lines, ("deployments", str(name)), DeploymentConfig, leave_out=["name"]
            )
    return deployments, skipped, errors


def read_models_file(models_file: Path) -> tuple[Any, Lines]:
    """The operator's models file, parsed, with the line of every key in it."""
    source = str(models_file)
    try:
        text = models_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, f"cannot read the models file: {exc.strerror or exc}") from None
    return read_located(text, source)
