"""The FastAPI application: routers, error mapping, limits, and the lifespan that
opens the runtime (and, by default, runs the worker in the same event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.api.deps import ApiState
from vidgate.api.errors import install_error_handlers
from vidgate.api.limits import BodyLimitMiddleware
from vidgate.api.responses import FastJSONResponse
from vidgate.api.routes import callbacks, generations, health, inputs, models, videos, webhooks
from vidgate.config import Settings
from vidgate.engine.app import run_worker
from vidgate.runtime import open_runtime

log = structlog.get_logger("vidgate.api")


class AccessLogMiddleware:
    """One structured line per request: method, path (never the query, which may hold a
    signature), status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            log.debug(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


def create_app(settings: Settings, database_url: str, *, with_worker: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, database_url) as runtime:
            app.state.api = ApiState(runtime, runtime.signer)
            worker = (
                asyncio.create_task(run_worker(runtime.engine), name="vidgate-worker")
                if with_worker
                else None
            )
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
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(generations.router)
    app.include_router(videos.router)
    app.include_router(webhooks.router)
    app.include_router(inputs.router)
    app.include_router(callbacks.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    return app
