"""The one pure-ASGI layer in front of the app: the body-size cap, the access log, and
the status read of a video (``fast_lane.py``).

One layer rather than two because each costs a coroutine and a ``send`` wrapper per
request, and most requests need neither: a body whose declared length is within the
cap cannot exceed it (the HTTP parser reads exactly that many bytes), and the access
log is off unless the level is DEBUG.
"""

from __future__ import annotations

import logging
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidgate.api.errors import database_unavailable, error_response
from vidgate.api.fast_lane import try_fast_lane
from vidgate.core.errors import PayloadTooLarge

log = structlog.get_logger("vidgate.api")
# The stdlib logger under ``log``: its level decides whether the access log is on.
_access_logger = logging.getLogger("vidgate.api")


class _TooLarge(Exception):
    pass


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not _access_logger.isEnabledFor(logging.DEBUG):
            await self._capped(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._capped(scope, receive, capture)
        finally:
            # Method, path (never the query, which may hold a signature), status, time.
            log.debug(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )

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
