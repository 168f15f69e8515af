"""The HTTP/1.1 protocol ``vidgate serve`` runs: uvicorn's httptools protocol with the
connection limits a server facing untrusted clients needs.

uvicorn bounds none of these by itself: a client may take as long as it likes to send
its headers or its body (a ``Content-Length: 100`` request that sends 10 bytes held a
connection open indefinitely), send a header section of any size or count (a 1 MB
header and 5,000 headers were accepted), and open connections without limit. Its own
error answers are plain text. Here each limit ends the connection with an answer in
the OpenAI error shape:

- more than ``max_connections`` open at once: 503 to the newcomer;
- headers not complete within ``header_timeout_s`` of the request's start: 408;
- a header section over ``max_header_bytes`` or ``max_header_count``: 431;
- a body not complete within ``body_timeout_s`` of the headers: 408;
- a request that is not valid HTTP/1.1: 400.

The limits live at this depth, not in an ASGI middleware, because the first three act
before the application sees a request, and the parser must stop buffering a header
section that is too large rather than hand it over.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from vidgate.core.errors import VidgateError

log = structlog.get_logger("vidgate.api")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


# How long a refused connection is kept to drain the client's input (see _send_and_close).
_LINGER_S = 1.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_header_bytes: int = 64 * 1024
    max_header_count: int = 100


class _LimitExceeded(Exception):
    """Raised from a parser callback to stop parsing; httptools re-raises it wrapped."""


def _error(status: int, code: str, message: str) -> bytes:
    """A complete response that closes the connection, with an OpenAI-shaped body."""
    error = VidgateError(message, code=code)
    error.type = "invalid_request_error" if status < 500 else "service_unavailable"
    body = orjson.dumps(error.to_body())
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, _REASONS[status], len(body))
    )
    return head + body


def protocol_class(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class to hand to ``uvicorn.Config(http=...)``."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


# What a connection is waiting for, for the deadline that applies to it.
_IDLE, _HEADERS, _BODY = 0, 1, 2


class _Watchdog:
    """One timer per server that checks every connection's deadline a few times per
    timeout, so a request itself only notes when its headers and body began: a timer
    armed and cancelled per request cost ~8 % of a status read's CPU (bench B1)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], tick_s: float):
        self._loop = loop
        self._connections = connections
        self._tick_s = tick_s
        self._handle: asyncio.TimerHandle | None = None

    def ensure_running(self) -> None:
        if self._handle is None:
            self._handle = self._loop.call_later(self._tick_s, self._sweep)

    def _sweep(self) -> None:
        now = self._loop.time()
        for connection in list(self._connections):
            if isinstance(connection, LimitedHttpToolsProtocol):
                connection.check_deadline(now)
        # Asleep while the server has no connections; the next one wakes it.
        self._handle = (
            self._loop.call_later(self._tick_s, self._sweep) if self._connections else None
        )


_watchdogs: weakref.WeakKeyDictionary[Any, _Watchdog] = weakref.WeakKeyDictionary()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = _HEADERS
        self._since = 0.0
        self._header_bytes = 0
        self._refusal: bytes | None = None
        self._draining = False

    # --- connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("http.too_many_connections", limit=self.limits.max_connections)
            self._refuse(
                503,
                "server_busy",
                "the server has too many open connections; retry shortly",
            )
            return
        self._since = self.loop.time()
        watchdog = _watchdogs.get(self.server_state)
        if watchdog is None:
            shortest = min(self.limits.header_timeout_s, self.limits.body_timeout_s)
            watchdog = _Watchdog(self.loop, self.connections, max(0.05, min(1.0, shortest / 4)))
            _watchdogs[self.server_state] = watchdog
        watchdog.ensure_running()

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # refused: read and drop until the client stops or the linger ends
        self._unset_keepalive_if_required()
        if self._waiting != _BODY:  # a header section, or the start of the next one
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._send_and_close(self._refusal)
            else:
                self.send_400_response("the request is not valid HTTP/1.1")
            return
        if self._waiting == _HEADERS and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, "headers_too_large", self._too_large_message())

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own 400 (a request its parser refuses) is plain text.
        self._send_and_close(_error(400, "invalid_http", msg))

    # --- parser callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._waiting != _HEADERS:  # the next request on a kept-alive connection
            self._waiting = _HEADERS
            self._since = self.loop.time()

    def on_headers_complete(self) -> None:
        if len(self.headers) > self.limits.max_header_count:
            self._refusal = _error(
                431,
                "headers_too_large",
                f"the request has more than {self.limits.max_header_count} header fields",
            )
            raise _LimitExceeded
        # data_received counts what arrived while the headers did: within the limit, the
        # header section is too. Over it, that count may include body bytes that came in
        # the same read, so only then is the section itself measured.
        if self._header_bytes > self.limits.max_header_bytes:
            size = len(self.url) + sum(len(k) + len(v) for k, v in self.headers)
            if size > self.limits.max_header_bytes:
                self._refusal = _error(431, "headers_too_large", self._too_large_message())
                raise _LimitExceeded
        super().on_headers_complete()
        # Until on_message_complete, which for a request without a body follows at once.
        self._waiting = _BODY
        self._since = self.loop.time()

    def on_message_complete(self) -> None:
        # What arrives next is the next request's header section.
        self._waiting = _IDLE
        self._header_bytes = 0
        super().on_message_complete()

    # --- limits -------------------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """Called by the watchdog: answer 408 to a request past its deadline."""
        if self._draining or self.transport is None or self.transport.is_closing():
            return
        if self._waiting == _HEADERS and now - self._since > self.limits.header_timeout_s:
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a pipelined request: not while the one before it is answered
            self._headers_too_slow()
        elif self._waiting == _BODY and now - self._since > self.limits.body_timeout_s:
            self._body_too_slow()

    def _too_large_message(self) -> str:
        return f"the request's header section is larger than {self.limits.max_header_bytes} bytes"

    def _headers_too_slow(self) -> None:
        if self._header_bytes == 0:
            # Nothing sent since the connection opened: close it quietly, as uvicorn's
            # keep-alive timeout does between requests.
            self.transport.close()
            return
        self._refuse(
            408,
            "request_timeout",
            f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s",
        )

    def _body_too_slow(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.more_body:
            return
        log.info("http.body_timeout", path=self.scope.get("path"))
        if cycle.response_started:
            self.transport.close()
        else:
            self._refuse(
                408,
                "request_timeout",
                f"the request body did not arrive within {self.limits.body_timeout_s:g} s",
            )
        # The application, if it is still reading, sees the client gone.
        cycle.disconnected = True
        cycle.message_event.set()

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._send_and_close(_error(status, code, message))

    def _send_and_close(self, response: bytes) -> None:
        """Answer, then close once the client has stopped sending (at most
        ``_LINGER_S`` later): closing a socket with unread input resets the connection,
        and the client would lose the answer while it is still sending (a header
        section too large, say)."""
        if self.transport is None or self.transport.is_closing() or self._draining:
            return
        self._draining = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_S, self.transport.close)
