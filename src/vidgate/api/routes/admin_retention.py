"""``/v1/admin/projects/{project_id}/retention``: how long a project keeps its videos'
media after they complete, read and changed by operator and admin keys (an admin key:
its own project's only; another project's ids read as missing). Each change is audited
(``projects.retention``); videos past it answer 404 ``video_expired`` for their content,
and the worker deletes their media (engine/media_gc.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from vidgate.api.deps import Admin, client_address
from vidgate.api.inputs import parse_model, read_body
from vidgate.api.openapi import request_body
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import ErrorResponse
from vidgate.services.retention import MAX_RETENTION_DAYS, Retention

router = APIRouter(prefix="/v1/admin", tags=["admin: retention"])

_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The key is not an operator or admin key."}
}


class RetentionBody(BaseModel):
    """The project's retention: days after completion, or null to keep media forever."""

    model_config = ConfigDict(extra="forbid")

    days: Annotated[StrictInt, Field(ge=1, le=MAX_RETENTION_DAYS)] | None = Field(
        description="Days a completed video's media is kept; null: forever."
    )


class RetentionObject(BaseModel):
    object: Literal["project.retention"] = "project.retention"
    project_id: str
    days: int | None


def _view(retention: Retention) -> FastJSONResponse:
    return FastJSONResponse(
        RetentionObject(project_id=retention.project_id, days=retention.days).model_dump(
            mode="json"
        )
    )


@router.get(
    "/projects/{project_id}/retention", response_model=RetentionObject, responses=_FORBIDDEN
)
async def get_retention(project_id: str, caller: Admin) -> FastJSONResponse:
    return _view(await caller.state.retention.get(caller.principal, project_id))


@router.put(
    "/projects/{project_id}/retention",
    response_model=RetentionObject,
    responses=_FORBIDDEN,
    openapi_extra=request_body(RetentionBody),
)
async def set_retention(project_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    fields, _ = await read_body(request, max_files=0)
    body = parse_model(RetentionBody, fields)
    retention = await caller.state.retention.set(
        caller.principal, project_id, body.days, remote_addr=client_address(request)
    )
    return _view(retention)
