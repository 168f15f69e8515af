"""Which provider serves which deployment: an explicit name -> adapter map."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.config import Settings
from vidgate.media.storage import BlobStore
from vidgate.providers.base import Provider
from vidgate.providers.sandbox import SandboxProvider

SANDBOX = "sandbox"


def build_providers(
    settings: Settings, engine: AsyncEngine, blobs: BlobStore
) -> dict[str, Provider]:
    return {
        SANDBOX: SandboxProvider(engine, blobs, latency_s=settings.sandbox_latency_s),
    }
