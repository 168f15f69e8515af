"""``/v1/admin/projects``: an operator key lists and creates projects; an admin key
sees its own project only."""

from __future__ import annotations

from fastapi import APIRouter, Request

from vidgate.api.admin_schemas import CreateProjectBody, ProjectList, ProjectObject
from vidgate.api.deps import Admin, actor
from vidgate.api.responses import FastJSONResponse

router = APIRouter(prefix="/v1/admin/projects", tags=["admin"])


@router.get("", response_model=ProjectList)
async def list_projects(caller: Admin) -> FastJSONResponse:
    rows = await caller.state.accounts.projects(caller.principal)
    data = [ProjectObject.of(p) for p in rows]
    page = ProjectList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=False,
    )
    return FastJSONResponse(page.model_dump(mode="json"))


@router.post("", response_model=ProjectObject)
async def create_project(
    body: CreateProjectBody, caller: Admin, request: Request
) -> FastJSONResponse:
    made = await caller.state.accounts.create_project(
        caller.principal, body.name, actor(request, caller)
    )
    return FastJSONResponse(ProjectObject.of(made).model_dump(mode="json"))


@router.get("/{project_id}", response_model=ProjectObject)
async def get_project(project_id: str, caller: Admin) -> FastJSONResponse:
    found = await caller.state.accounts.project(caller.principal, project_id)
    return FastJSONResponse(ProjectObject.of(found).model_dump(mode="json"))
