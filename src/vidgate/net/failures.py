"""What a failed outbound HTTP call means, in words a client or an operator can act on.

Both clients of the gateway (``providers/http.py`` for upstream providers,
``net/public_http.py`` for client-chosen URLs) send on aiohttp, and both report a
request that got no whole answer through this one translation: the words go into an
error message, the exception's class name only into the log (naming it helps a
scanner and tells a person nothing).
"""

from __future__ import annotations

import socket
import ssl

import aiohttp


def in_words(exc: BaseException, *, deadline_s: float, read_s: float | None = None) -> str:
    """Why a request failed. ``deadline_s`` is its total deadline, ``read_s`` the
    per-read timeout when there is one worth naming."""
    # Most specific first: aiohttp's timeouts are TimeoutErrors too, and a DNS or TLS
    # failure is a connector error.
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        why = getattr(exc.certificate_error, "verify_message", None) or "not trusted"
        return f"the TLS certificate was refused ({why})"
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "could not connect (timed out)"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        pause = f" for {read_s:g} s" if read_s is not None else ""
        return f"the host stopped sending{pause} (timed out)"
    if isinstance(exc, TimeoutError):
        return f"timed out after {deadline_s:g} s without a complete answer"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "could not connect"
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientConnectionResetError
        | aiohttp.ClientPayloadError,
    ):
        return "the connection closed before a complete answer"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.InvalidURL):
        return "the URL is not valid"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "the answer was not valid HTTP"
    return "the request failed before an answer came"
