"""Which adapter serves which deployment: an explicit provider -> module map.

Adding a provider is one module with a ``create(config, deps)`` factory and one line in
``ADAPTERS``; nothing else in vidgate names providers. Modules are imported when a
deployment needs them, so a gateway with two providers configured loads two adapters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.deployments import DeploymentConfig
from vidgate.providers.base import Provider, ProviderDeps
from vidgate.providers.sandbox import SandboxProvider

SANDBOX = "sandbox"

log = structlog.get_logger("vidgate.providers")

Factory = Callable[[DeploymentConfig, ProviderDeps], Provider]

ADAPTERS: dict[str, str] = {
    "openai_videos": "vidgate.providers.openai_videos",
    "task_api": "vidgate.providers.task_api",
    "vertex": "vidgate.providers.vertex",
    "gemini": "vidgate.providers.gemini",
    "luma": "vidgate.providers.luma",
    "runway": "vidgate.providers.runway",
    "kling": "vidgate.providers.kling",
    "replicate": "vidgate.providers.replicate",
    "fal": "vidgate.providers.fal",
    "minimax": "vidgate.providers.minimax",
    "seedance": "vidgate.providers.seedance",
}


def factory_for(provider: str) -> Factory | None:
    module_name = ADAPTERS.get(provider)
    if module_name is None:
        return None
    factory: Factory = importlib.import_module(module_name).create
    return factory


def build_providers(
    deployments: dict[str, DeploymentConfig], db: AsyncEngine, deps: ProviderDeps
) -> dict[str, Provider]:
    """One provider instance per deployment name, plus the sandbox."""
    providers: dict[str, Provider] = {
        SANDBOX: SandboxProvider(db, deps.blobs, latency_s=deps.settings.sandbox_latency_s)
    }
    for name, config in deployments.items():
        if name == SANDBOX:
            raise ValueError("'sandbox' is reserved for the built-in sandbox provider")
        factory = factory_for(config.provider)
        if factory is None:
            known = ", ".join(sorted(ADAPTERS)) or "none yet"
            raise ValueError(
                f"deployment {name!r}: unknown provider {config.provider!r} (known: {known})"
            )
        try:
            providers[name] = factory(config, deps)
        except ValueError as exc:
            # A broken credential file (say GOOGLE_APPLICATION_CREDENTIALS pointing at a
            # gcloud user login) takes out that deployment, not the whole gateway.
            log.warning("deployment.invalid", deployment=name, reason=str(exc))
    return providers
