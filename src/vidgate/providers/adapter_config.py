"""What an adapter reads from its deployment, declared as data and read in one way.

Each adapter declares its ``options`` and ``credentials`` as pydantic models
(``extra="forbid"``) and the path prefix of its API; its ``create`` calls
``read_config``, so an unknown or mistyped key is an ``AdapterConfigError`` naming the
keys that are accepted (``vidgate check`` and ``vidgate serve`` report it at the line of
the models file), never a setting silently ignored. ``api_base_url`` takes a configured
``base_url`` with or without that prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from vidgate.core.config_file import ConfigError, Lines, located_errors
from vidgate.core.deployments import DeploymentConfig
from vidgate.providers.base import ProviderError

Opts = TypeVar("Opts", bound=BaseModel)
C = TypeVar("C", bound=BaseModel)


class AdapterSettings(BaseModel):
    """Base of an adapter's options and credentials: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(AdapterSettings):
    """An adapter without options."""


class ApiKey(AdapterSettings):
    """The one credential most providers take."""

    api_key: SecretStr


@dataclass(frozen=True)
class AdapterSpec(Generic[Opts, C]):
    """What a deployment of an adapter may set: its options, its credentials, and the
    path its API lives under on the host (``/v1``, ``/dream-machine/v1``, ``""``)."""

    options: type[Opts]
    credentials: type[C]
    api_prefix: str
    default_base_url: str = ""


class AdapterConfigError(ValueError):
    """Options or credentials the adapter refuses; ``located`` places each mistake."""

    def __init__(
        self, deployment: str, failures: Sequence[tuple[str, ValidationError, type[BaseModel]]]
    ) -> None:
        self.deployment = deployment
        self.failures = list(failures)
        super().__init__("; ".join(str(e) for e in self.located(None)))

    def located(self, lines: Lines | None) -> list[ConfigError]:
        """Each mistake at its line of ``lines`` (the models file), or named by the
        deployment where it came from the environment."""
        where = lines or Lines(f"deployment {self.deployment!r}")
        errors: list[ConfigError] = []
        for section, exc, model in self.failures:
            errors += located_errors(
                exc,
                where,
                ("deployments", self.deployment, section) if lines else (section,),
                model,
                what=section.removesuffix("s"),
            )
        return errors


def read_config(config: DeploymentConfig, spec: AdapterSpec[Opts, C]) -> tuple[Opts, C]:
    """The deployment's options and credentials as the adapter declares them."""
    failures: list[tuple[str, ValidationError, type[BaseModel]]] = []
    options: Opts | None = None
    credentials: C | None = None
    try:
        options = spec.options.model_validate(config.options)
    except ValidationError as exc:
        failures.append(("options", exc, spec.options))
    try:
        credentials = spec.credentials.model_validate(dict(config.credentials))
    except ValidationError as exc:
        failures.append(("credentials", exc, spec.credentials))
    if failures or options is None or credentials is None:
        raise AdapterConfigError(config.name, failures)
    return options, credentials


def api_base_url(base_url: str | None, spec: AdapterSpec[Opts, C]) -> str:
    """The URL the adapter's paths are relative to: ``base_url`` (or the default) with
    the API's path prefix, whether or not the operator wrote it. Never a trailing ``/``."""
    url = (base_url or spec.default_base_url).rstrip("/")
    prefix = spec.api_prefix.rstrip("/")
    if not prefix or urlsplit(url).path.rstrip("/").endswith(prefix):
        return url
    return url + prefix


async def probe_missing(read: Callable[[], Awaitable[object]]) -> None:
    """A probe by a status read of a task that does not exist: the provider's 404 (it
    knew the key and found no such task) is the answer wanted; any other failure is
    the probe's."""
    try:
        await read()
    except ProviderError as error:
        if error.code != "upstream_not_found":
            raise


# The id a probe asks for: no provider hands out ids of this shape.
PROBE_ID = "vidgate-probe-0000"
