"""``GET /v1/me``: who the calling key is (any valid key, any role), so a client such
as the web console can show and allow what the key's role and project allow."""

from __future__ import annotations

from fastapi import APIRouter

from vidgate.api.console_schemas import KeySelf
from vidgate.api.deps import Caller
from vidgate.api.responses import FastJSONResponse

router = APIRouter(prefix="/v1/me", tags=["keys"])


@router.get("", response_model=KeySelf)
async def who_am_i(caller: Caller) -> FastJSONResponse:
    key = await caller.state.keys.own_key(caller.principal)
    return FastJSONResponse(KeySelf.of(key).model_dump(mode="json"))
