"""Builds everything a vidgate process needs from ``Settings``, and tears it down.

``serve``, ``worker`` and the CLI's one-shot commands all go through here, so a
database URL is resolved (embedded or external) and migrated the same way everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.config import Settings
from vidgate.core.catalog import Catalog, load_catalog
from vidgate.core.deployments import load_deployments
from vidgate.core.project_prices import load_project_prices
from vidgate.core.signing import UrlSigner
from vidgate.db.database import create_engine
from vidgate.db.embedded import EmbeddedPostgres, supervise
from vidgate.db.health import DatabaseHealth
from vidgate.db.keys import get_or_create_secret
from vidgate.db.migrate import migrate
from vidgate.db.reads import Reads
from vidgate.engine.app import create_procrastinate_app
from vidgate.engine.context import EngineContext
from vidgate.engine.service import JobService
from vidgate.heap import pin_malloc_thresholds
from vidgate.media.budget import set_image_memory_budget
from vidgate.media.stores import open_blob_store
from vidgate.providers.base import Provider, ProviderDeps
from vidgate.providers.metered import metered
from vidgate.providers.registry import ENV_DEFAULTS, build_providers
from vidgate.services import Services
from vidgate.services.accounts import AccountService
from vidgate.services.budgets import BudgetService
from vidgate.services.health import HealthService
from vidgate.services.keys import KeyService
from vidgate.services.limits import LimitService
from vidgate.services.media import MediaService
from vidgate.services.metrics import MetricsService
from vidgate.services.models import ModelService
from vidgate.services.prices import PriceService
from vidgate.services.retention import RetentionService
from vidgate.services.usage import UsageService
from vidgate.services.video_details import VideoDetailsService
from vidgate.services.webhook_endpoints import EndpointService

log = structlog.get_logger("vidgate.runtime")


def resolve_database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one (started if it is not running).

    The embedded server is stopped by the last vidgate process using it, at exit.
    """
    if settings.database_url:
        return settings.database_url
    return EmbeddedPostgres(settings.pg_dir).start()


async def prepare_database(settings: Settings) -> str:
    url = await anyio.to_thread.run_sync(resolve_database_url, settings)
    await anyio.to_thread.run_sync(migrate, url)
    return url


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database_url: str
    db: AsyncEngine
    catalog: Catalog
    engine: EngineContext
    jobs: JobService
    signer: UrlSigner
    # The API's hot reads, on autocommit connections of their own (db/reads.py).
    reads: Reads
    # Whether the database answers, as the API last saw it (db/health.py).
    health: DatabaseHealth
    # What the API may ask (services/): the HTTP layer holds these, not the runtime.
    services: Services


async def _signer(db: AsyncEngine, settings: Settings) -> UrlSigner:
    async with db.begin() as conn:
        key = await get_or_create_secret(conn, "url_signing", secrets.token_bytes(32))
    return UrlSigner(key, settings.signed_url_ttl_s)


@asynccontextmanager
async def _embedded_supervisor(settings: Settings, enabled: bool) -> AsyncIterator[None]:
    """While the runtime is open, restart the embedded PostgreSQL if it dies."""
    if not enabled or settings.database_url:
        yield
        return
    server = EmbeddedPostgres(settings.pg_dir)
    await anyio.to_thread.run_sync(server.start)  # attaches to the running server
    task = asyncio.create_task(supervise(server), name="vidgate-embedded-postgres")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def open_runtime(
    settings: Settings, database_url: str, *, supervise_database: bool = False
) -> AsyncIterator[Runtime]:
    """``supervise_database``: restart the embedded PostgreSQL (when it is the one in
    use) if it dies while the runtime is open; for ``serve`` and ``worker``."""
    # Process-wide, like the memory they bound: the API's image checks and the
    # sandbox's renders share one budget for decoded images.
    set_image_memory_budget(settings.image_memory_bytes)
    pin_malloc_thresholds()
    catalog = load_catalog(settings.models_file)
    project_prices = load_project_prices(settings.models_file, catalog)
    deployments, skipped = load_deployments(settings.models_file, ENV_DEFAULTS)
    for name, missing in skipped.items():
        log.warning("deployment.skipped", deployment=name, missing_env=missing)
    # Steps hold a connection only for their short transactions, never across an
    # upstream call: a pool well below the step concurrency serves them.
    steps = settings.webhook_concurrency + settings.cancel_concurrency
    db = create_engine(
        database_url, pool_size=max(10, min(steps, 12) + 4), timeout_s=settings.db_timeout_s
    )
    app = create_procrastinate_app(database_url, pool_size=max(4, min(steps, 10)))
    providers: dict[str, Provider] = {}
    reads = Reads(database_url, timeout_s=settings.db_timeout_s)
    health = DatabaseHealth(database_url, connect_timeout_s=settings.db_timeout_s)
    # After an outage, pooled connections are dead: drop them before requests return.
    health.on_recover(db.dispose)
    health.on_recover(reads.check)
    media = ThreadPoolExecutor(settings.media_threads, thread_name_prefix="vidgate-media")
    exit_stack = contextlib.AsyncExitStack()
    try:
        # The S3 client (if any) closes as the runtime does, after the steps that use it.
        blobs = await exit_stack.enter_async_context(open_blob_store(settings))
        await reads.open()
        signer = await _signer(db, settings)
        base = settings.public_base_url
        deps = ProviderDeps(
            blobs=blobs,
            settings=settings,
            input_url=(lambda sha: signer.sign_input(base, sha)) if base else None,
            callback_url=(lambda job_id: signer.sign_callback(base, job_id)) if base else None,
            capabilities=catalog.upstreams,
        )
        # Each provider call timed and its failures counted, per deployment (metrics).
        providers = metered(build_providers(deployments, db, deps))
        async with app.open_async(), _embedded_supervisor(settings, supervise_database):
            ctx = EngineContext(
                settings=settings,
                db=db,
                blobs=blobs,
                providers=providers,
                catalog=catalog,
                app=app,
                deployments=deployments,
                database_url=database_url,
                media=media,
                project_prices=project_prices,
            )
            jobs = JobService(ctx, reads)
            services = Services(
                jobs=jobs,
                models=ModelService(catalog, ctx.refs, db),
                media=MediaService(blobs, signer, db, ctx.previews, links=settings.storage_links),
                keys=KeyService(reads, db),
                health=HealthService(health, db, blobs),
                usage=UsageService(db),
                prices=PriceService(db, catalog, project_prices),
                limits=LimitService(db),
                webhook_endpoints=EndpointService(db, settings),
                budgets=BudgetService(db),
                accounts=AccountService(db, catalog),
                retention=RetentionService(db),
                metrics=MetricsService(
                    db, health, deployments=providers, cache_s=settings.metrics_cache_s
                ),
                details=VideoDetailsService(db),
            )
            yield Runtime(
                settings, database_url, db, catalog, ctx, jobs, signer, reads, health, services
            )
    finally:
        await health.aclose()
        media.shutdown(wait=False, cancel_futures=True)
        await reads.close()
        for provider in providers.values():
            await provider.aclose()
        await exit_stack.aclose()
        await db.dispose()
