"""Every error leaves the API in the OpenAI shape, with the right status."""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from vidgate.api.responses import FastJSONResponse
from vidgate.core.errors import (
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    VidgateError,
)
from vidgate.services.health import HealthService

# What the database's state (not the request) makes fail: a 503 the client may retry.
DATABASE_ERRORS = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)

log = structlog.get_logger("vidgate.api")


def error_response(error: VidgateError) -> FastJSONResponse:
    return FastJSONResponse(
        error.to_body(), status_code=error.status_code, headers=error.headers or None
    )


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "the database is unavailable; retry in a few seconds", code="service_unavailable"
    )


def database_error_response(health: HealthService | None, exc: Exception) -> FastJSONResponse:
    """A 503 for an error the database's state caused; a lost connection is reported
    to ``health``, which then refuses requests at once until the database answers."""
    if health is None or not health.report(exc):
        log.warning("api.database_error", error=str(exc).splitlines()[0][:300])
    response = error_response(database_unavailable())
    response.headers["retry-after"] = "1"
    return response


def validation_error(errors: list[Any]) -> InvalidRequest:
    """Pydantic's first complaint, in words and with the parameter it is about."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "extra_forbidden":
        return InvalidRequest(f"unknown parameter: {param}", param=param, code="unknown_parameter")
    if first.get("type") == "missing":
        return InvalidRequest(
            f"missing required parameter: {param}", param=param, code="missing_parameter"
        )
    return InvalidRequest(f"invalid {param}: {message}" if param else message, param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VidgateError)
    async def _vidgate(_: Request, exc: VidgateError) -> FastJSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        return error_response(validation_error(list(exc.errors())))

    async def _database(request: Request, exc: Exception) -> FastJSONResponse:
        api = getattr(request.app.state, "api", None)
        return database_error_response(api.health if api else None, exc)

    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, _database)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> FastJSONResponse:
        # The client left (or was cut off by the body timeout) before its body was
        # read: nobody is there to answer, and nothing went wrong on our side.
        log.info("http.client_gone", path=request.url.path)
        return error_response(InvalidRequest("the request body was not received"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        if exc.status_code == 404:
            return error_response(NotFound("no such route", code="not_found"))
        error = VidgateError(str(exc.detail), code=f"http_{exc.status_code}")
        error.status_code = exc.status_code
        error.type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        log.exception("api.unhandled_error", path=request.url.path)
        return error_response(VidgateError("internal server error", code="internal_error"))
