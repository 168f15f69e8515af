"""The FastAPI application: routers, error mapping, and the edge middleware (body cap,
access log, the status read's fast lane), over the services it is given.

The app opens nothing and starts nothing: whoever builds it (``vidgate serve``) owns
the runtime the services come from, and the worker beside it."""

from __future__ import annotations

from fastapi import FastAPI

from vidgate.api import openapi
from vidgate.api.console import install_console
from vidgate.api.deps import ApiState
from vidgate.api.edge import EdgeMiddleware
from vidgate.api.errors import install_error_handlers
from vidgate.api.responses import FastJSONResponse
from vidgate.api.routes import (
    admin_audit,
    admin_budgets,
    admin_keys,
    admin_limits,
    admin_prices,
    admin_projects,
    admin_retention,
    callbacks,
    generations,
    health,
    inputs,
    me,
    metrics,
    models,
    usage,
    videos,
    webhook_endpoints,
    webhooks,
)
from vidgate.config import Settings
from vidgate.media.stores import presigned_origins
from vidgate.metrics import HTTP
from vidgate.services import Services


def create_app(services: Services, settings: Settings) -> FastAPI:
    app = FastAPI(title="vidgate", version="0.1.0", default_response_class=FastJSONResponse)
    app.state.api = ApiState(services, settings)
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
    app.include_router(usage.router)
    app.include_router(admin_prices.router)
    app.include_router(admin_limits.router)
    app.include_router(admin_retention.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(admin_budgets.router)
    app.include_router(admin_projects.router)
    app.include_router(admin_keys.router)
    app.include_router(admin_audit.router)
    app.include_router(me.router)
    if settings.metrics:
        app.include_router(metrics.router)
    # The web console (/ui/, and / redirects there): static pages over the API above;
    # its CSP lets media load from the bucket where content links are presigned.
    install_console(app, media_origins=presigned_origins(settings))
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        metrics=HTTP if settings.metrics else None,
    )
    app.openapi = lambda: openapi.build(app)  # type: ignore[method-assign]
    return app
