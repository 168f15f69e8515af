"""``/healthz``: 200 while the process runs (liveness: restart it when this fails).
``/readyz``: 200 when it can serve (its database answers at this code's migration, its
blob store takes writes), else 503 naming what failed (readiness: send it no traffic)."""

from __future__ import annotations

from fastapi import APIRouter

from vidgate.api.deps import State
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import HealthStatus
from vidgate.services.health import Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthStatus)
async def healthz() -> FastJSONResponse:
    return FastJSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Something it needs failed."}},
)
async def readyz(state: State) -> FastJSONResponse:
    ready = await state.health.ready()
    return FastJSONResponse(ready.model_dump(), status_code=200 if not ready.failed else 503)
