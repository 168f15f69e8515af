"""``/v1/webhook_endpoints``: a project's webhook endpoints and their deliveries.

Operator and admin keys only (``Admin``): an admin key manages its own project's
endpoints, an operator key any project's (``project=`` to create or list another's).
The signing secret is answered once, by the create and by a rotation.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from vidgate.api.deps import Admin, client_address
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import ErrorResponse, Text
from vidgate.core.webhook_endpoints import (
    AttemptRecord,
    DeliveryRecord,
    EndpointEvent,
    EndpointRecord,
    NewSecret,
)

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhook endpoints"])

# Answers every route here may give besides those of every route (api/openapi.py).
_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorResponse,
        "description": "The key is not an operator or admin key (admin_required).",
    },
}


class CreateWebhookEndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[Text, Field(min_length=1, max_length=2048)]
    events: Annotated[list[EndpointEvent], Field(min_length=1, max_length=16)]


class WebhookEndpointObject(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    project_id: str
    url: str
    events: list[str]
    status: Literal["enabled", "disabled"]
    disabled_at: int | None
    disabled_reason: str | None
    failing_since: int | None
    created_at: int
    # Until then, the secret a rotation replaced signs too.
    previous_secret_expires_at: int | None


class WebhookEndpointWithSecret(WebhookEndpointObject):
    secret: str


class WebhookEndpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookEndpointObject]
    has_more: bool


class WebhookEndpointDeleted(BaseModel):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool


class DeliveryAttemptObject(BaseModel):
    attempt: int
    attempted_at: float
    status_code: int | None
    error: str | None
    latency_ms: int
    response_snippet: str | None


class WebhookDeliveryObject(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint_id: str
    event_id: str
    event_type: str
    video_id: str
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    next_attempt_at: int | None
    created_at: int
    attempts: list[DeliveryAttemptObject]


class WebhookDeliveryList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookDeliveryObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


def _ts(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def endpoint_json(endpoint: EndpointRecord) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "project_id": endpoint.tenant_id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "status": "disabled" if endpoint.disabled_at is not None else "enabled",
        "disabled_at": _ts(endpoint.disabled_at),
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": _ts(endpoint.failing_since),
        "created_at": _ts(endpoint.created_at),
        "previous_secret_expires_at": _ts(endpoint.previous_secret_expires_at),
    }


def _with_secret(made: NewSecret) -> dict[str, Any]:
    return {**endpoint_json(made.endpoint), "secret": made.secret}


def _attempt_json(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "attempted_at": round(attempt.attempted_at.timestamp(), 3),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
        "response_snippet": attempt.response_snippet,
    }


def delivery_json(delivery: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "object": "webhook_delivery",
        "endpoint_id": delivery.endpoint_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "video_id": delivery.job_id,
        "status": delivery.status,
        "attempt_count": delivery.attempts,
        "next_attempt_at": _ts(delivery.next_attempt_at),
        "created_at": _ts(delivery.created_at),
        "attempts": [_attempt_json(a) for a in delivery.attempt_log],
    }


Project = Annotated[str | None, Query(max_length=128)]


@router.post("", response_model=WebhookEndpointWithSecret, responses=_RESPONSES)
async def create_endpoint(
    body: CreateWebhookEndpointBody, request: Request, caller: Admin, project: Project = None
) -> FastJSONResponse:
    made = await caller.state.webhook_endpoints.create(
        caller.principal,
        url=body.url,
        events=body.events,
        project=project,
        remote_addr=client_address(request),
    )
    return FastJSONResponse(_with_secret(made))


@router.get("", response_model=WebhookEndpointList, responses=_RESPONSES)
async def list_endpoints(caller: Admin, project: Project = None) -> FastJSONResponse:
    found = await caller.state.webhook_endpoints.list_endpoints(caller.principal, project=project)
    return FastJSONResponse(
        {"object": "list", "data": [endpoint_json(e) for e in found], "has_more": False}
    )


@router.get("/{endpoint_id}", response_model=WebhookEndpointObject, responses=_RESPONSES)
async def get_endpoint(endpoint_id: str, caller: Admin) -> FastJSONResponse:
    endpoint = await caller.state.webhook_endpoints.get(caller.principal, endpoint_id)
    return FastJSONResponse(endpoint_json(endpoint))


@router.delete("/{endpoint_id}", response_model=WebhookEndpointDeleted, responses=_RESPONSES)
async def delete_endpoint(endpoint_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    gone = await caller.state.webhook_endpoints.delete(
        caller.principal, endpoint_id, remote_addr=client_address(request)
    )
    return FastJSONResponse({"id": gone.id, "object": "webhook_endpoint.deleted", "deleted": True})


@router.post(
    "/{endpoint_id}/rotate_secret", response_model=WebhookEndpointWithSecret, responses=_RESPONSES
)
async def rotate_secret(endpoint_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    made = await caller.state.webhook_endpoints.rotate_secret(
        caller.principal, endpoint_id, remote_addr=client_address(request)
    )
    return FastJSONResponse(_with_secret(made))


@router.post("/{endpoint_id}/enable", response_model=WebhookEndpointObject, responses=_RESPONSES)
async def enable_endpoint(endpoint_id: str, request: Request, caller: Admin) -> FastJSONResponse:
    endpoint = await caller.state.webhook_endpoints.enable(
        caller.principal, endpoint_id, remote_addr=client_address(request)
    )
    return FastJSONResponse(endpoint_json(endpoint))


@router.get("/{endpoint_id}/deliveries", response_model=WebhookDeliveryList, responses=_RESPONSES)
async def list_deliveries(
    endpoint_id: str,
    caller: Admin,
    after: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FastJSONResponse:
    rows, has_more = await caller.state.webhook_endpoints.deliveries(
        caller.principal, endpoint_id, after=after, limit=limit
    )
    return FastJSONResponse(
        {
            "object": "list",
            "data": [delivery_json(d) for d in rows],
            "first_id": rows[0].id if rows else None,
            "last_id": rows[-1].id if rows else None,
            "has_more": has_more,
        }
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/resend",
    response_model=WebhookDeliveryObject,
    responses={
        **_RESPONSES,
        409: {
            "model": ErrorResponse,
            "description": "The endpoint is disabled (endpoint_disabled).",
        },
    },
)
async def resend_delivery(
    endpoint_id: str, delivery_id: str, request: Request, caller: Admin
) -> FastJSONResponse:
    delivery = await caller.state.webhook_endpoints.resend(
        caller.principal, endpoint_id, delivery_id, remote_addr=client_address(request)
    )
    return FastJSONResponse(delivery_json(delivery))
