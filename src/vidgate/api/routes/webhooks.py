"""``/v1/webhooks/secret``: the tenant's Standard Webhooks signing secret."""

from __future__ import annotations

from fastapi import APIRouter

from vidgate.api.deps import Caller
from vidgate.api.responses import FastJSONResponse

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.get("/secret")
async def webhook_secret(caller: Caller) -> FastJSONResponse:
    secret = await caller.state.keys.webhook_secret(caller.principal)
    return FastJSONResponse({"object": "webhook_secret", "secret": secret})
