"""``/healthz``: 200 once the server can take jobs (its database answers)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from vidgate.api.deps import State
from vidgate.api.responses import FastJSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(state: State) -> FastJSONResponse:
    try:
        async with state.runtime.db.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:
        return FastJSONResponse({"status": "unavailable"}, status_code=503)
    return FastJSONResponse({"status": "ok"})
