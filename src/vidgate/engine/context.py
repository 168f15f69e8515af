"""What the engine's tasks need, built once per process and handed to the worker."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.config import Settings
from vidgate.core.catalog import Catalog
from vidgate.core.deployment_refs import DeploymentRefs
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.project_prices import ProjectPrices
from vidgate.engine.previews import PreviewMaker
from vidgate.engine.status_hold import StatusHolds
from vidgate.media.storage import BlobStore
from vidgate.providers.base import Provider
from vidgate.providers.registry import ADAPTERS


@dataclass(frozen=True)
class EngineContext:
    settings: Settings
    db: AsyncEngine
    blobs: BlobStore
    providers: dict[str, Provider]
    catalog: Catalog
    app: procrastinate.App
    deployments: dict[str, DeploymentConfig] = field(default_factory=dict)
    # For connections outside the pool: the poller's LISTEN.
    database_url: str = ""
    # Where finalize's media work runs (``Settings.media_threads`` threads); None: the
    # event loop's default executor.
    media: Executor | None = None
    # The models file's price overrides per project (the database's win over them).
    project_prices: ProjectPrices = field(default_factory=ProjectPrices)
    # Which of ``providers`` serve each model's deployment refs (built here, once).
    refs: DeploymentRefs = field(init=False)
    # The process's maker of thumbnails and spritesheets, shared by the previews step and
    # the API (one making per output at a time).
    previews: PreviewMaker = field(init=False)
    # Status reads waiting for a finishing job, woken by the finalizer's write-backs.
    holds: StatusHolds = field(init=False)

    def __post_init__(self) -> None:
        adapters = {
            name: config.provider if (config := self.deployments.get(name)) else name
            for name in self.providers
        }
        object.__setattr__(self, "refs", DeploymentRefs(adapters, ADAPTERS))
        scratch = self.settings.data_dir / "tmp"
        object.__setattr__(self, "previews", PreviewMaker(self.blobs, self.db, scratch))
        holds = StatusHolds(self.settings.status_hold_ms, self.settings.status_hold_max_reads)
        object.__setattr__(self, "holds", holds)
