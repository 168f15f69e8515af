"""The OpenAPI document as the API really behaves.

FastAPI describes what it parses itself. vidgate's create routes read their bodies by
hand (JSON, multipart or urlencoded, one validation for all: ``api/inputs.py``), and
every error leaves in the OpenAI error shape with 400, never FastAPI's 422. Left alone,
the document would show those routes without a body and with a 422 that never comes,
so a generated client or a fuzzer (``tests/e2e/test_openapi_fuzz.py``) would be told
the wrong thing. Routes declare their body with ``request_body(Model)``; ``build``
adds those schemas and the error responses, and drops the 422s.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from vidgate.api.schemas import ErrorResponse

_REF = "#/components/schemas/{model}"
_BODY_MODELS: dict[str, type[BaseModel]] = {}

# The error answers every operation may give, and those only requests with a body may.
_COMMON_ERRORS = {
    400: "The request is malformed or a parameter is out of range.",
    401: "The API key is missing, malformed, unknown, revoked or expired.",
    403: "The key's role, or the models it is limited to, do not allow this.",
    404: "No such video, model or route (another tenant's ids read as missing).",
    503: "The database is unreachable, or no deployment can serve the model.",
}
_BODY_ERRORS = {
    409: "The Idempotency-Key was used with a different request.",
    413: "The body is larger than the limit.",
    507: "The gateway's storage is full; nothing was stored.",
}
# The creates, which reserve a live job's estimate against the budgets that apply.
_CREATES = (
    "/v1/videos",
    "/v1/videos/generations",
    "/v1/videos/extensions",
    "/v1/videos/{video_id}/remix",
)
_CREATE_ERRORS = {
    402: "A budget of the project or key has no room for the estimate (budget_exceeded),"
    " or the model has no price under a budget (budget_unpriced_model); nothing was created.",
}
# Content types a request body may come in (api/inputs.py reads all three).
_BODY_TYPES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")


# A create's answer over its key's or project's rate limits (docs/api.md#rate-limits).
_RATE_LIMITED = {
    "description": "Over the key's or the project's rate limits; nothing was created.",
    "headers": {
        name: {"schema": {"type": "string"}}
        for name in (
            "Retry-After",
            "retry-after-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        )
    },
    "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}},
}


def request_body(model: type[BaseModel], *, rate_limited: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model`` from its body by hand (a
    create, ``rate_limited``, may answer 429)."""
    _BODY_MODELS[model.__name__] = model
    schema = {"$ref": _REF.format(model=model.__name__)}
    extra: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {content_type: {"schema": schema} for content_type in _BODY_TYPES},
        }
    }
    if rate_limited:
        extra["responses"] = {"429": _RATE_LIMITED}
    return extra


def build(app: FastAPI) -> dict[str, Any]:
    """The document, made once and cached on the app (FastAPI's own convention)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    models: list[type[BaseModel]] = [ErrorResponse, *_BODY_MODELS.values()]
    for model in models:
        found = model.model_json_schema(ref_template=_REF)
        schemas.update(found.pop("$defs", {}))
        schemas[model.__name__] = found
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path in ("/healthz", "/readyz"):
                continue
            errors = dict(_COMMON_ERRORS)
            if "requestBody" in operation:
                errors.update(_BODY_ERRORS)
                if path in _CREATES:
                    errors.update(_CREATE_ERRORS)
            for status, description in errors.items():
                responses.setdefault(str(status), {"description": description, "content": error})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc
