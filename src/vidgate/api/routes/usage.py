"""``GET /v1/usage``: what a project's jobs produced and cost, by mode and by the
groups asked for, as JSON or CSV (an admin or operator key; ``core/usage.py`` says
which jobs count and by which day)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response

from vidgate.api.billing_schemas import ADMIN_ONLY, UsageObject
from vidgate.api.deps import Admin
from vidgate.api.responses import FastJSONResponse
from vidgate.core.usage import csv_text, usage_json

router = APIRouter(prefix="/v1/usage", tags=["usage"], responses=ADMIN_ONLY)


@router.get(
    "",
    response_model=UsageObject,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_usage(
    caller: Admin,
    start: str | None = None,
    end: str | None = None,
    group_by: str | None = None,
    format: Literal["json", "csv"] = "json",
    project: str | None = None,
) -> Response:
    """``start`` and ``end``: UTC days (YYYY-MM-DD), both included; by default this
    month so far. ``group_by``: a comma-separated subset of model, key, day. ``project``
    (an id or a name): an operator key's choice of project; other keys may name only
    their own."""
    found = await caller.state.usage.usage(
        caller.principal, start=start, end=end, group_by=group_by, project=project
    )
    if format == "csv":
        return Response(csv_text(found.data), media_type="text/csv; charset=utf-8")
    return FastJSONResponse(usage_json(found))
