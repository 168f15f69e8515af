"""``/metrics``: Prometheus's text format, without a key (scrape it from a private
network: it names deployments and models, no tenant and no secret)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from vidgate.api.deps import State

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response:
    return Response(await state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
