"""``/v1/admin/budgets``: the caps on what a project, or one of its keys, may spend per
UTC day, per UTC month or in all. Operator and admin keys only; an admin key sees and
sets its own project's, an operator key any project's (``project=``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from vidgate.api.deps import Admin, client_address
from vidgate.api.inputs import parse_model, read_body
from vidgate.api.openapi import request_body
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import (
    BudgetDeleted,
    BudgetList,
    BudgetObject,
    ErrorResponse,
    SetBudgetBody,
)
from vidgate.core.budgets import BudgetStatus

router = APIRouter(
    prefix="/v1/admin/budgets",
    tags=["admin: budgets"],
    responses={403: {"model": ErrorResponse, "description": "The key is not an admin key."}},
)

Project = Annotated[str | None, Query(max_length=64, description="An operator's project id.")]


def budget_json(status: BudgetStatus) -> dict[str, object]:
    budget, window = status.budget, status.window
    return BudgetObject(
        id=budget.id,
        project=budget.tenant_id,
        project_name=budget.tenant_name,
        key_id=budget.api_key_id,
        period=budget.period,
        usd=float(budget.usd),
        spent=float(status.spent),
        remaining=float(status.remaining),
        period_start=int(window.start.timestamp()) if window.start else None,
        period_end=int(window.end.timestamp()) if window.end else None,
        created_at=int(budget.created_at.timestamp()),
        updated_at=int(budget.updated_at.timestamp()),
    ).model_dump()


@router.get("", response_model=BudgetList)
async def list_budgets(caller: Admin, project: Project = None) -> FastJSONResponse:
    budgets = caller.state.budgets
    tenant_id = await budgets.project_of(caller.principal, project)
    found = await budgets.list(tenant_id)
    return FastJSONResponse({"object": "list", "data": [budget_json(s) for s in found]})


@router.post("", response_model=BudgetObject, openapi_extra=request_body(SetBudgetBody))
async def set_budget(request: Request, caller: Admin) -> FastJSONResponse:
    fields, _ = await read_body(request, max_files=0)
    body = parse_model(SetBudgetBody, fields)
    budgets = caller.state.budgets
    tenant_id = await budgets.project_of(caller.principal, body.project)
    status, _ = await budgets.set(
        tenant_id,
        usd=body.usd,
        period=body.period,
        key_id=body.key_id,
        actor=caller.principal.key_id,
        remote_addr=client_address(request),
    )
    return FastJSONResponse(budget_json(status))


@router.get("/{budget_id}", response_model=BudgetObject)
async def get_budget(budget_id: str, caller: Admin) -> FastJSONResponse:
    budgets = caller.state.budgets
    status = await budgets.get(budget_id, budgets.visible_to(caller.principal))
    return FastJSONResponse(budget_json(status))


@router.delete("/{budget_id}", response_model=BudgetDeleted)
async def delete_budget(budget_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    budgets = caller.state.budgets
    gone = await budgets.delete(
        budget_id,
        budgets.visible_to(caller.principal),
        actor=caller.principal.key_id,
        remote_addr=client_address(request),
    )
    return FastJSONResponse({"id": gone.id, "object": "budget.deleted", "deleted": True})
