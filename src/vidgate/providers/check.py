"""``vidgate check`` and the start-up check of ``vidgate serve``: the configuration as a
gateway would load it, every mistake at its place, and each deployment's probe.

``check_configuration`` reads the catalogue and the models file, makes the deployments
(environment and file), and builds each one's adapter, so an unknown provider, option or
credential is found the way ``serve`` would meet it; it needs no database. With
``probe=True`` each built deployment makes its one cheap authenticated call
(``Provider.probe``) and the answer is sorted into ok, auth refused, unreachable or
failed.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from vidgate.config import Settings
from vidgate.core.catalog import Catalog, load_catalog
from vidgate.core.config_file import ConfigError, ConfigErrors, Lines
from vidgate.core.deployments import DeploymentConfig, read_deployments, read_models_file
from vidgate.core.project_prices import read_project_prices
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.adapter_config import AdapterConfigError
from vidgate.providers.base import Provider, ProviderDeps, ProviderError
from vidgate.providers.registry import ADAPTERS, ENV_DEFAULTS, SANDBOX, factory_for

ProbeState = Literal[
    "ok", "auth_failed", "unreachable", "upstream_error", "failed", "skipped", "invalid"
]
# Past this a probe counts as unreachable (each call has its own deadlines besides).
PROBE_TIMEOUT_S = 30.0
_UNREACHABLE = {"upstream_unreachable", "upstream_timeout"}
_PLACED = re.compile(r"(\S+:\d+): (.*)", re.DOTALL)


@dataclass(frozen=True)
class DeploymentResult:
    """One deployment as the check saw it."""

    name: str
    provider: str
    state: ProbeState
    detail: str = ""


@dataclass
class CheckReport:
    errors: list[ConfigError] = field(default_factory=list)
    deployments: list[DeploymentResult] = field(default_factory=list)
    catalog: Catalog | None = None

    @property
    def exit_status(self) -> int:
        """0: all well; 2: the models file is invalid; 1: it is valid, but a deployment
        is left out (unset variables, environment values its adapter refuses) or
        failed its probe."""
        if self.errors:
            return 2
        return 0 if all(d.state == "ok" for d in self.deployments) else 1


async def check_configuration(
    settings: Settings, *, probe: bool, env: Mapping[str, str] | None = None
) -> CheckReport:
    report = CheckReport()
    try:
        report.catalog = load_catalog(settings.models_file)
    except ConfigErrors as exc:
        report.errors += exc.errors
    except ConfigError as exc:
        report.errors.append(exc)
    except ValueError as exc:
        # The catalogue's messages start with their place ("file:line: ...").
        placed = _PLACED.match(str(exc))
        where, message = placed.groups() if placed else ("", str(exc))
        report.errors.append(ConfigError(where, message))
    if report.catalog is not None:
        report.errors += read_project_prices(settings.models_file, report.catalog)[1]
    deployments, skipped, errors = read_deployments(settings.models_file, ENV_DEFAULTS, env)
    report.errors += errors
    lines, in_file = _file_lines(settings)
    for name, missing in skipped.items():
        report.deployments.append(
            DeploymentResult(name, "", "skipped", f"not configured: set {', '.join(missing)}")
        )
    providers = _build(settings, report, deployments, lines, in_file)
    try:
        if probe:
            results = await asyncio.gather(
                *(_probe(name, deployments[name].provider, p) for name, p in providers.items())
            )
            report.deployments += results
        else:
            report.deployments += [
                DeploymentResult(name, deployments[name].provider, "ok", "configured")
                for name in providers
            ]
    finally:
        for provider in providers.values():
            await provider.aclose()
    report.errors.sort(key=_place)
    return report


def _place(error: ConfigError) -> tuple[str, int]:
    """File, then line: the errors in the order an operator reads the file."""
    source, _, line = error.where.rpartition(":")
    return (source, int(line)) if line.isdigit() else (error.where, 0)


def _file_lines(settings: Settings) -> tuple[Lines | None, set[str]]:
    """The models file's lines and the deployments it defines (read once more: a file
    that could not be read has been reported already)."""
    if settings.models_file is None:
        return None, set()
    try:
        document, lines = read_models_file(settings.models_file)
    except ConfigError:
        return None, set()
    section = document.get("deployments") if isinstance(document, dict) else None
    return lines, {str(name) for name in section} if isinstance(section, dict) else set()


def _build(
    settings: Settings,
    report: CheckReport,
    deployments: dict[str, DeploymentConfig],
    lines: Lines | None,
    in_file: set[str],
) -> dict[str, Provider]:
    """Each deployment's adapter, built as ``serve`` builds it; what refuses to build is
    a configuration error at its place."""
    deps = ProviderDeps(blobs=LocalBlobStore(settings.media_dir), settings=settings)
    if report.catalog is not None:
        deps = ProviderDeps(deps.blobs, settings, capabilities=report.catalog.upstreams)
    built: dict[str, Provider] = {}
    for name, config in deployments.items():
        here = lines if name in in_file else None
        where = here.where(("deployments", name)) if here else f"deployment {name!r}"
        if name == SANDBOX:
            report.errors.append(ConfigError(where, "'sandbox' is the built-in sandbox's name"))
            continue
        if name in ADAPTERS and config.provider != name:
            # build_providers refuses it too: a ref naming an adapter means its deployments.
            report.errors.append(
                ConfigError(
                    where,
                    f"deployment {name!r} is named after the {name!r} adapter but uses "
                    f"{config.provider!r}: give it another name",
                )
            )
            continue
        factory = factory_for(config.provider)
        if factory is None:
            place = here.where(("deployments", name, "provider")) if here else where
            report.errors.append(
                ConfigError(
                    place, f"deployments.{name}.provider: unknown provider", sorted(ADAPTERS)
                )
            )
            continue
        try:
            built[name] = factory(config, deps)
        except AdapterConfigError as exc:
            if here:
                report.errors += exc.located(here)
            else:
                report.deployments.append(_invalid(name, config, _env_words(exc, config)))
        except ValueError as exc:
            if here:
                report.errors.append(ConfigError(where, str(exc)))
            else:
                report.deployments.append(_invalid(name, config, str(exc)))
    return built


def _env_words(exc: AdapterConfigError, config: DeploymentConfig) -> str:
    """What the adapter refused of a deployment the environment made, with the variable
    that sets each value where there is one."""
    defaults = ENV_DEFAULTS.get(config.provider)
    variables = {}
    if defaults is not None:
        variables = {f"options.{k}": v for k, v in defaults.options.items()}
        variables |= {f"credentials.{k}": v for k, v in defaults.credentials.items()}
    words = []
    for error in exc.located(None):
        key = error.message.partition(":")[0]
        hint = f" (set {variables[key]})" if key in variables else ""
        words.append(f"{error.message}{hint}")
    return "; ".join(words)


def _invalid(name: str, config: DeploymentConfig, why: str) -> DeploymentResult:
    """A deployment the environment made that cannot work: left out, as ``serve``
    leaves it out (a stray GOOGLE_APPLICATION_CREDENTIALS must not stop a gateway)."""
    return DeploymentResult(name, config.provider, "invalid", f"left out: {why}")


async def _probe(name: str, provider_type: str, provider: Provider) -> DeploymentResult:
    try:
        await asyncio.wait_for(provider.probe(), PROBE_TIMEOUT_S)
    except ProviderError as error:
        return DeploymentResult(name, provider_type, _state_of(error), error.message)
    except TimeoutError:
        return DeploymentResult(
            name, provider_type, "unreachable", f"no answer within {PROBE_TIMEOUT_S:.0f} s"
        )
    except Exception as exc:  # a probe must report, never crash the check
        return DeploymentResult(name, provider_type, "failed", f"{type(exc).__name__}: {exc}")
    return DeploymentResult(name, provider_type, "ok", "reachable, credentials accepted")


def _state_of(error: ProviderError) -> ProbeState:
    if error.unhealthy:
        return "auth_failed"
    if error.code in _UNREACHABLE:
        return "unreachable"
    return "upstream_error" if error.retryable else "failed"


def run_check(settings: Settings, *, probe: bool) -> CheckReport:
    """``check_configuration`` on a loop of its own (for the CLI)."""
    return asyncio.run(check_configuration(settings, probe=probe, env=dict(os.environ)))
