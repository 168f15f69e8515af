"""``/v1/admin/keys``: list, create (the secret is in that answer only), read and revoke
the keys of a project. An admin key manages its own project's; an operator key any
project's (``project``). Operator keys are made only from the command line."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from vidgate.api.admin_schemas import CreatedKeyObject, CreateKeyBody, KeyList, KeyObject
from vidgate.api.deps import Admin, actor
from vidgate.api.responses import FastJSONResponse
from vidgate.services.accounts import KeyRequest

router = APIRouter(prefix="/v1/admin/keys", tags=["admin"])


@router.get("", response_model=KeyList)
async def list_keys(
    caller: Admin,
    project: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FastJSONResponse:
    rows, has_more = await caller.state.accounts.keys(
        caller.principal, project=project, after=after, limit=limit
    )
    data = [KeyObject.of(k) for k in rows]
    page = KeyList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )
    return FastJSONResponse(page.model_dump(mode="json"))


@router.post("", response_model=CreatedKeyObject)
async def create_key(body: CreateKeyBody, caller: Admin, request: Request) -> FastJSONResponse:
    req = KeyRequest(
        name=body.name,
        mode=body.mode,
        role=body.role,
        models=body.models,
        expires_in=body.expires_in,
        project=body.project,
    )
    new = await caller.state.accounts.create_key(caller.principal, req, actor(request, caller))
    assert new.record is not None
    created = CreatedKeyObject(**KeyObject.fields_of(new.record), secret=new.secret)
    return FastJSONResponse(created.model_dump(mode="json"))


@router.get("/{key_id}", response_model=KeyObject)
async def get_key(key_id: str, caller: Admin) -> FastJSONResponse:
    found = await caller.state.accounts.key(caller.principal, key_id)
    return FastJSONResponse(KeyObject.of(found).model_dump(mode="json"))


@router.delete("/{key_id}", response_model=KeyObject)
async def revoke_key(key_id: str, caller: Admin, request: Request) -> FastJSONResponse:
    """Revoke the key: every process refuses it within a second. The key stays listed,
    with ``revoked_at``; revoking it again changes nothing."""
    revoked = await caller.state.accounts.revoke_key(
        caller.principal, key_id, actor(request, caller)
    )
    return FastJSONResponse(KeyObject.of(revoked).model_dump(mode="json"))
