"""``/healthz``: 200 once the server can take jobs (its database answers)."""

from __future__ import annotations

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
    if not await state.health.check():
        return FastJSONResponse({"status": "unavailable"}, status_code=503)
    return FastJSONResponse({"status": "ok"})
