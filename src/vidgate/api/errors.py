"""Every error leaves the API in the OpenAI shape, with the right status."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vidgate.api.responses import FastJSONResponse
from vidgate.core.errors import (
    InvalidRequest,
    NotFound,
    VidgateError,
)

log = structlog.get_logger("vidgate.api")


def error_response(error: VidgateError) -> FastJSONResponse:
    return FastJSONResponse(error.to_body(), status_code=error.status_code)


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
