"""``/v1/admin/projects/{project_id}/limits`` and ``/v1/admin/keys/{key_id}/limits``:
rate limits, read and changed by operator and admin keys (an admin key: its own
project's only; another project's ids read as missing)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from vidgate.api.deps import Admin, client_address
from vidgate.api.inputs import parse_model, read_body
from vidgate.api.limit_schemas import LimitsBody, LimitsObject
from vidgate.api.openapi import request_body
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import ErrorResponse
from vidgate.services.limits import OwnedLimits

router = APIRouter(prefix="/v1/admin", tags=["admin: rate limits"])

_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The key is not an operator or admin key."}
}


def _view(owned: OwnedLimits) -> FastJSONResponse:
    return FastJSONResponse(
        LimitsObject(
            object="project.limits" if owned.key_id is None else "key.limits",
            project_id=owned.project_id,
            key_id=owned.key_id,
            rpm=owned.limits.rpm,
            max_concurrent=owned.limits.max_concurrent,
        ).model_dump(mode="json")
    )


async def _changes(request: Request) -> dict[str, int | None]:
    fields, _ = await read_body(request, max_files=0)
    body = parse_model(LimitsBody, fields)
    return body.model_dump(include=body.model_fields_set)


@router.get("/projects/{project_id}/limits", response_model=LimitsObject, responses=_FORBIDDEN)
async def get_project_limits(project_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    return _view(await caller.state.limits.project(caller.principal, project_id))


@router.patch(
    "/projects/{project_id}/limits",
    response_model=LimitsObject,
    responses=_FORBIDDEN,
    openapi_extra=request_body(LimitsBody),
)
async def set_project_limits(project_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    changes = await _changes(request)
    remote = client_address(request)
    owned = await caller.state.limits.set_project(
        caller.principal, project_id, changes, remote_addr=remote
    )
    return _view(owned)


@router.get("/keys/{key_id}/limits", response_model=LimitsObject, responses=_FORBIDDEN)
async def get_key_limits(key_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    return _view(await caller.state.limits.key(caller.principal, key_id))


@router.patch(
    "/keys/{key_id}/limits",
    response_model=LimitsObject,
    responses=_FORBIDDEN,
    openapi_extra=request_body(LimitsBody),
)
async def set_key_limits(key_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    changes = await _changes(request)
    remote = client_address(request)
    owned = await caller.state.limits.set_key(caller.principal, key_id, changes, remote_addr=remote)
    return _view(owned)
