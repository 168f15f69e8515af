"""``/healthz``: 200 once the server can take jobs (its database answers)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from vidgate.api.deps import State
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import HealthStatus

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "The database does not answer."}},
)
async def healthz(state: State) -> FastJSONResponse:
    unavailable = FastJSONResponse({"status": "unavailable"}, status_code=503)
    health = state.runtime.health
    if not health.available:  # known down: the probe (db/health.py) says when it is back
        return unavailable
    try:
        async with state.runtime.db.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        health.report(exc)
        return unavailable
    return FastJSONResponse({"status": "ok"})
