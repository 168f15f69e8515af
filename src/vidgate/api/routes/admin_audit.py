"""``/v1/admin/audit_log``: every admin action, newest first, a page at a time; an admin
key reads its own project's entries, an operator key every project's (or ``project``'s)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from vidgate.api.admin_schemas import AuditEntryObject, AuditLog
from vidgate.api.deps import Admin
from vidgate.api.responses import FastJSONResponse

router = APIRouter(prefix="/v1/admin/audit_log", tags=["admin"])


@router.get("", response_model=AuditLog)
async def audit_log(
    caller: Admin,
    project: Annotated[str | None, Query(max_length=64)] = None,
    after: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FastJSONResponse:
    rows, has_more = await caller.state.accounts.audit_log(
        caller.principal, project=project, after=after, limit=limit
    )
    data = [AuditEntryObject.of(e) for e in rows]
    page = AuditLog(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )
    return FastJSONResponse(page.model_dump(mode="json"))
