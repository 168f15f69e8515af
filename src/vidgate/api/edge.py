"""The one pure-ASGI layer in front of the app: the request id, the HTTP metrics, the
body-size cap, the access log, and the status read and the plain download of a video
(``fast_lane.py``).

One layer rather than several because each costs a coroutine and a ``send`` wrapper
per request: here one ``_Meter`` sees every response (the fast lane's too), counts it
by route template and echoes the request id, and a body whose declared length is within
the cap needs no counting at all (the HTTP parser reads exactly that many bytes).
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.api.errors import database_unavailable, error_response
from vidgate.api.fast_lane import ROUTE_KEY, try_fast_lane
from vidgate.core.errors import PayloadTooLarge
from vidgate.metrics import UNMATCHED, HttpRecorder

log = structlog.get_logger("vidgate.api")
# The stdlib logger under ``log``: its level decides whether the access log is on.
_access_logger = logging.getLogger("vidgate.api")


# An incoming X-Request-Id is kept when it is this (what proxies and tracers send:
# UUIDs, hex, base64url); anything else is replaced, so a log line never carries
# client text of any length or shape.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
REQUEST_ID_HEADER = b"x-request-id"
_PROCESS_ID = os.urandom(8).hex().encode()
_SEQUENCE = itertools.count(1)
# The request id as structlog's contextvars processor sees it (it merges every context
# variable named ``structlog_*``): one variable set and reset per request, instead of
# ``bind_contextvars``'s dict of tokens.
_REQUEST_ID_VAR: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "structlog_request_id", default=Ellipsis
)


class _TooLarge(Exception):
    pass


class _Meter:
    """The ``send`` the app is given: notes the status and the body bytes, and adds
    the request id to the response's headers."""

    __slots__ = ("request_id", "send", "sent", "status")

    def __init__(self, send: Send, request_id: bytes) -> None:
        self.send = send
        self.request_id = request_id
        self.status = 500  # what the client gets if the app fails before answering
        self.sent = 0

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.sent += len(message.get("body", b""))
        elif kind == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, self.request_id)]
        await self.send(message)


def request_id_of(scope: Scope) -> bytes:
    """The client's ``X-Request-Id`` if it is a plausible id, else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _REQUEST_ID.fullmatch(value):
                return bytes(value)
            break
    # This process's random prefix and a counter: unique across processes, and no
    # system call per request (os.urandom was a tenth of the edge's cost).
    return b"req_%s%x" % (_PROCESS_ID, next(_SEQUENCE))


def route_of(scope: Scope) -> str:
    """The route template the request matched (FastAPI leaves the route in the scope;
    the fast lane names its own), never the path: ids would make a series each."""
    fixed: str | None = scope.get(ROUTE_KEY)
    if fixed is not None:
        return fixed
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, metrics: HttpRecorder | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        meter = _Meter(send, request_id)
        # Every line logged while this request is handled carries its id.
        token = _REQUEST_ID_VAR.set(request_id.decode())
        try:
            await self._capped(scope, receive, meter)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(
                    route_of(scope), scope["method"], meter.status, elapsed, meter.sent
                )
            if _access_logger.isEnabledFor(logging.DEBUG):
                # Method, path (never the query, which may hold a signature), status, time.
                log.debug(
                    "http.request",
                    method=scope["method"],
                    path=scope["path"],
                    status=meter.status,
                    ms=round(elapsed * 1000, 2),
                )
            _REQUEST_ID_VAR.reset(token)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than the limit of {self.max_bytes} bytes")

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with a body over ``max_bytes`` answered 413 before it is parsed."""
        state = getattr(scope["app"].state, "api", None)
        if state is not None and not state.health.available and scope["path"].startswith("/v1/"):
            # The database is known to be down: answer now rather than wait on a pool.
            await error_response(database_unavailable())(scope, receive, send)
            return
        if scope["method"] == "GET" and await try_fast_lane(scope, receive, send):
            return
        # A body without Content-Length (chunked) is counted as it arrives; so is one
        # whose Content-Length does not parse, should the server let it through.
        counted = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    counted = True
                    continue
                if declared > self.max_bytes:
                    await error_response(self._error())(scope, receive, send)
                    return
            elif name == b"transfer-encoding":
                counted = True
        if not counted:
            await self.app(scope, receive, send)
            return

        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await error_response(self._error())(scope, receive, send)
