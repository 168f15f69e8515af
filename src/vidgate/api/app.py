"""The FastAPI application: routers, error mapping, the edge middleware (body cap and
access log), and the lifespan that opens the runtime (and, by default, runs the worker
in the same event loop)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from vidgate.api import openapi
from vidgate.api.deps import ApiState
from vidgate.api.edge import EdgeMiddleware
from vidgate.api.errors import install_error_handlers
from vidgate.api.responses import FastJSONResponse
from vidgate.api.routes import callbacks, generations, health, inputs, models, videos, webhooks
from vidgate.config import Settings
from vidgate.engine.app import run_worker
from vidgate.heap import freeze_startup_heap
from vidgate.runtime import open_runtime

log = structlog.get_logger("vidgate.api")


def _report_worker_end(task: asyncio.Task[None]) -> None:
    """The worker runs until shutdown; an end before that must not go unnoticed."""
    if not task.cancelled() and task.exception() is not None:
        log.error("worker.died", exc_info=task.exception())


def create_app(
    settings: Settings,
    database_url: str,
    *,
    with_worker: bool = True,
    freeze_heap: bool = False,
    supervise_database: bool = False,
) -> FastAPI:
    """``freeze_heap``: freeze the startup heap once the runtime is open (vidgate.heap);
    for the process that serves, not for tests that build many apps in one process.
    ``supervise_database``: restart the embedded PostgreSQL if it dies (``serve``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings, database_url, supervise_database=supervise_database
        ) as runtime:
            app.state.api = ApiState(runtime, runtime.signer)
            worker = (
                asyncio.create_task(run_worker(runtime.engine), name="vidgate-worker")
                if with_worker
                else None
            )
            if worker is not None:
                worker.add_done_callback(_report_worker_end)
            if freeze_heap:
                freeze_startup_heap()
            log.info("vidgate.ready", worker=with_worker)
            try:
                yield
            finally:
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker

    app = FastAPI(
        title="vidgate",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    install_error_handlers(app)
    # Routes are matched in order, router by router: the video routes (every status
    # poll) come first. No other router has a path under /v1/videos, so this order
    # changes no match; generations stays ahead of videos as before
    # (/v1/videos/generations/content would also match /{video_id}/content).
    app.include_router(generations.router)
    app.include_router(videos.router)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(webhooks.router)
    app.include_router(inputs.router)
    app.include_router(callbacks.router)
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    app.openapi = lambda: openapi.build(app)  # type: ignore[method-assign]
    return app
