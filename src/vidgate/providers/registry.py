"""Which adapter serves which deployment: an explicit provider -> adapter map.

Adding a provider is one module with a ``create(config, deps)`` factory and one line in
``ADAPTERS`` (its module, and the environment variables of its default deployment:
credentials, options, base URL);
nothing else in vidgate names providers. Modules are imported when a deployment needs
them, so a gateway with two providers configured loads two adapters: that is why the
environment variables are declared here and not in the modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.deployments import DeploymentConfig, EnvDefaults
from vidgate.providers.base import Provider, ProviderDeps
from vidgate.providers.sandbox import SandboxProvider

SANDBOX = "sandbox"

log = structlog.get_logger("vidgate.providers")

Factory = Callable[[DeploymentConfig, ProviderDeps], Provider]


@dataclass(frozen=True)
class Adapter:
    module: str
    # The default deployment, named after the provider, that these variables make;
    # None: configured in the operator's YAML only.
    env: EnvDefaults | None = None


def _key(variable: str, base_url: str | None = None) -> EnvDefaults:
    return EnvDefaults({"api_key": variable}, base_url=base_url)


# Base-URL variables: the official SDK's own where it has one (OPENAI_BASE_URL,
# LUMAAI_BASE_URL, RUNWAYML_BASE_URL, REPLICATE_BASE_URL, google-genai's
# GOOGLE_GEMINI_BASE_URL / GOOGLE_VERTEX_BASE_URL, fal-client's FAL_QUEUE_RUN_HOST),
# else <PROVIDER>_BASE_URL.
ADAPTERS: dict[str, Adapter] = {
    # OpenAI's own Videos API is shut down: without OPENAI_BASE_URL an OPENAI_API_KEY
    # (often set for other OpenAI APIs) would send every sora-2 job to a closed service.
    "openai_videos": Adapter(
        "vidgate.providers.openai_videos",
        EnvDefaults(
            {"api_key": "OPENAI_API_KEY"}, base_url="OPENAI_BASE_URL", base_url_required=True
        ),
    ),
    "task_api": Adapter("vidgate.providers.task_api"),
    "vertex": Adapter(
        "vidgate.providers.vertex",
        EnvDefaults(
            {"service_account_file": "GOOGLE_APPLICATION_CREDENTIALS"},
            {"project": "GOOGLE_CLOUD_PROJECT", "location": "GOOGLE_CLOUD_LOCATION"},
            base_url="GOOGLE_VERTEX_BASE_URL",
        ),
    ),
    "gemini": Adapter("vidgate.providers.gemini", _key("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL")),
    "luma": Adapter("vidgate.providers.luma", _key("LUMAAI_API_KEY", "LUMAAI_BASE_URL")),
    "runway": Adapter("vidgate.providers.runway", _key("RUNWAYML_API_SECRET", "RUNWAYML_BASE_URL")),
    "kling": Adapter(
        "vidgate.providers.kling",
        EnvDefaults(
            {"access_key": "KLING_ACCESS_KEY", "secret_key": "KLING_SECRET_KEY"},
            base_url="KLING_BASE_URL",
        ),
    ),
    "replicate": Adapter(
        "vidgate.providers.replicate", _key("REPLICATE_API_TOKEN", "REPLICATE_BASE_URL")
    ),
    "fal": Adapter("vidgate.providers.fal", _key("FAL_KEY", "FAL_QUEUE_RUN_HOST")),
    "minimax": Adapter("vidgate.providers.minimax", _key("MINIMAX_API_KEY", "MINIMAX_BASE_URL")),
    "seedance": Adapter("vidgate.providers.seedance", _key("ARK_API_KEY", "ARK_BASE_URL")),
    "dashscope": Adapter(
        "vidgate.providers.dashscope", _key("DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL")
    ),
}

# What core/deployments.py reads from the environment, by provider.
ENV_DEFAULTS: dict[str, EnvDefaults] = {
    name: adapter.env for name, adapter in ADAPTERS.items() if adapter.env is not None
}


def factory_for(provider: str) -> Factory | None:
    adapter = ADAPTERS.get(provider)
    if adapter is None:
        return None
    factory: Factory = importlib.import_module(adapter.module).create
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
        if name in ADAPTERS and config.provider != name:
            # A catalogue ref naming an adapter means every deployment of that adapter,
            # so this deployment could never be reached by its name.
            raise ValueError(
                f"deployment {name!r} is named after the {name!r} adapter but uses"
                f" {config.provider!r}: give it another name"
            )
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
