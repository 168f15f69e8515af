"""Which adapter serves which deployment: an explicit provider -> factory map.

Adding a provider is one module with a ``create(config, deps)`` factory and one line in
``ADAPTERS``; nothing else in vidgate names providers.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.deployments import DeploymentConfig
from vidgate.providers.base import Provider, ProviderDeps
from vidgate.providers.sandbox import SandboxProvider

SANDBOX = "sandbox"

Factory = Callable[[DeploymentConfig, ProviderDeps], Provider]

ADAPTERS: dict[str, Factory] = {}


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
        factory = ADAPTERS.get(config.provider)
        if factory is None:
            known = ", ".join(sorted(ADAPTERS)) or "none yet"
            raise ValueError(
                f"deployment {name!r}: unknown provider {config.provider!r} (known: {known})"
            )
        providers[name] = factory(config, deps)
    return providers
