"""HTTP to client-chosen URLs that reaches public addresses only (input images, webhooks).

The name in a URL is resolved once, by the connector's resolver; every address it
answers is checked with ``core.urls.address_refusal`` and the whole name is refused if
any one is not public; the connection then goes to one of exactly those addresses.
There is no second lookup for a name server to answer differently (DNS rebinding), and
TLS still sends the URL's host name (SNI) and verifies the certificate against it.

aiohttp does this with a resolver of our own (``_Resolver``: the system's getaddrinfo,
on threads of its own): the connector connects to the addresses a resolver returns and
keeps the URL's host for TLS. It skips
the resolver for a host that is an address, so those are checked here before the
request (``check_outbound_url`` has already refused malformed and non-canonical ones).

Every call gets its own session and connector, so no connection outlives the request
and nothing is reused across URLs; redirects are not followed; proxies in the
environment are ignored (a proxy would make the address check meaningless); each call
has a total deadline besides the connect and per-read timeouts. Failures come back as
``OutboundError``, whose ``reason`` says in words what went wrong and never names a
library's exception type.

Certificates are checked against ``SSL_CERT_FILE`` when it is set (a private CA, tests),
else against certifi's bundle.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import aiohttp
import certifi
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from vidgate.core.urls import OutboundURL, address_refusal
from vidgate.net.failures import in_words

_CHUNK = 64 * 1024
# Per socket operation, as before the total deadline existed; the deadline is shorter
# unless an operator raises it.
_READ_TIMEOUT_S = 10.0


class OutboundError(Exception):
    """A request that could not be made, or got no usable answer.

    ``reason`` completes "could not fetch the image URL: ..." and may be shown to the
    client; ``detail`` is for the operator's log. ``final`` means trying again cannot help.
    """

    final = False

    def __init__(self, reason: str, *, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


class AddressRefused(OutboundError):
    """The URL's host is, or resolves to, an address that is not public."""

    final = True


class _RefusedName(OSError):
    """Raised by the resolver; an OSError so that aiohttp passes it on as a DNS failure."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address} is {reason}")
        self.address = address
        self.reason = reason


# Lookups of client-chosen names run on threads of their own: a name whose name server
# never answers holds a thread for the resolver's whole timeout (seconds per try), and
# on the shared pool (uvloop's is libuv's, 4 threads) a few such names would stall the
# lookups of every provider call too.
_DNS_THREADS = 16
_dns_pool: ThreadPoolExecutor | None = None


def _dns_executor() -> ThreadPoolExecutor:
    global _dns_pool
    if _dns_pool is None:
        _dns_pool = ThreadPoolExecutor(_DNS_THREADS, thread_name_prefix="vidgate-dns")
    return _dns_pool


class _Resolver(AbstractResolver):
    """The system resolver (getaddrinfo), on vidgate's own threads.

    With ``public_only``, a name is refused if ANY of its addresses is not public: one
    that answers a public and a private address could otherwise be connected to either.
    """

    def __init__(self, *, public_only: bool) -> None:
        self._public_only = public_only

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        lookup = functools.partial(
            socket.getaddrinfo, host, port, family, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG
        )
        infos = await asyncio.get_running_loop().run_in_executor(_dns_executor(), lookup)
        answers: list[ResolveResult] = []
        for info_family, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if self._public_only:
                reason = address_refusal(address)
                if reason is not None:
                    raise _RefusedName(address, reason)
            elif len(sockaddr) == 4 and sockaddr[3]:
                address = f"{address}%{sockaddr[3]}"  # a link-local address's interface
            answers.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=info_family,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        return answers

    async def close(self) -> None:
        pass


@functools.cache
def _tls_context(cafile: str) -> ssl.SSLContext:
    # Loading a CA bundle costs milliseconds of CPU, so one context per file and process.
    return ssl.create_default_context(cafile=cafile)


def tls_context() -> ssl.SSLContext:
    """Certificate verification against ``SSL_CERT_FILE`` if set, else certifi's bundle."""
    return _tls_context(os.environ.get("SSL_CERT_FILE") or certifi.where())


def _refused_literal(target: OutboundURL) -> AddressRefused | None:
    if target.ip is None:
        return None
    reason = address_refusal(target.ip)
    if reason is None:
        return None
    return AddressRefused(
        f"its host is a non-public address ({target.host} is {reason})",
        detail=f"{target.host} is {reason}",
    )


@asynccontextmanager
async def _session(allow_private: bool, deadline_s: float) -> AsyncIterator[aiohttp.ClientSession]:
    per_op = min(deadline_s, _READ_TIMEOUT_S)
    connector = aiohttp.TCPConnector(
        resolver=_Resolver(public_only=not allow_private),
        ssl=tls_context(),
        limit=1,
        force_close=True,
    )
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=per_op, sock_read=per_op),
        # Bodies are counted as they arrive on the wire: no decompression to outgrow a cap.
        auto_decompress=False,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        yield session


def _refusal_in(exc: BaseException) -> _RefusedName | None:
    seen: BaseException | None = exc
    for _ in range(8):  # the chain is short; the bound only guards against a cycle
        if seen is None:
            return None
        if isinstance(seen, _RefusedName):
            return seen
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(
            seen.os_error, _RefusedName
        ):
            return seen.os_error
        seen = seen.__cause__ or seen.__context__
    return None


def _translate(exc: BaseException, deadline_s: float) -> OutboundError:
    """What went wrong, in words; the exception's type goes to the log only."""
    detail = type(exc).__name__
    refused = _refusal_in(exc)
    if refused is not None:
        return AddressRefused(
            f"its host name resolves to a non-public address ({refused.reason})",
            detail=f"resolves to {refused.address} ({refused.reason})",
        )
    return OutboundError(in_words(exc, deadline_s=deadline_s), detail=detail)


# What a call may raise besides OutboundError: everything aiohttp and the socket layer
# raise for a peer that misbehaves, and ValueError for what aiohttp refuses in a URL.
_FAILURES = (aiohttp.ClientError, OSError, TimeoutError, ValueError)


@asynccontextmanager
async def _exchange(
    method: str,
    target: OutboundURL,
    deadline_s: float,
    allow_private: bool,
    *,
    headers: Mapping[str, str],
    data: bytes | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """One request to ``target``, its answer open for the caller's block: refused
    before any lookup for a non-public literal address; ``deadline_s`` counts from the
    first lookup to the end of the block; every failure said in words."""
    if not allow_private and (refused := _refused_literal(target)) is not None:
        raise refused
    try:
        async with (
            asyncio.timeout(deadline_s),
            _session(allow_private, deadline_s) as session,
            session.request(
                method,
                yarl.URL(target.request_url, encoded=True),
                data=data,
                headers=headers,
                allow_redirects=False,
            ) as response,
        ):
            yield response
    except _FAILURES as exc:
        raise _translate(exc, deadline_s) from exc


async def fetch_capped(
    target: OutboundURL,
    *,
    max_bytes: int,
    deadline_s: float,
    allow_private: bool,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The body of a 200 answer to GET ``target``, at most ``max_bytes`` of it.

    Raises ``OutboundError`` for anything else, including any other status, a body over
    ``max_bytes`` (stopped as soon as it is known), a compressed body, and running past
    ``deadline_s`` from the first lookup to the last byte.
    """
    headers = {"accept-encoding": "identity", **(headers or {})}
    async with _exchange("GET", target, deadline_s, allow_private, headers=headers) as response:
        if response.status != 200:
            redirect = " (redirects are not followed)" if 300 <= response.status < 400 else ""
            raise OutboundError(f"it answered HTTP {response.status}{redirect}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise OutboundError(f"it sent a compressed body ({encoding[:32]})")
        declared = response.content_length
        if declared is not None and declared > max_bytes:
            raise OutboundError(f"it is larger than {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise OutboundError(f"it is larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


async def post(
    target: OutboundURL,
    *,
    body: bytes,
    headers: Mapping[str, str],
    deadline_s: float,
    allow_private: bool,
) -> int:
    """POST ``body`` to ``target`` and return the answer's status (its body is not read).

    Raises ``OutboundError`` (``AddressRefused`` for a non-public address) when there is
    no answer within ``deadline_s``.
    """
    async with _exchange(
        "POST", target, deadline_s, allow_private, headers=headers, data=body
    ) as response:
        return response.status


# How long the start of an answer's body may take once its status is in: a receiver
# that stalls its body still counts as having answered.
_SNIPPET_WAIT_S = 1.0


async def post_reading(
    target: OutboundURL,
    *,
    body: bytes,
    headers: Mapping[str, str],
    deadline_s: float,
    allow_private: bool,
    max_bytes: int,
) -> tuple[int, bytes]:
    """``post``, also returning up to ``max_bytes`` of the answer's body, as much as
    arrives within a moment of the status (never past ``deadline_s``), for the record
    of the attempt."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _exchange(
        "POST", target, deadline_s, allow_private, headers=headers, data=body
    ) as response:
        wait = min(_SNIPPET_WAIT_S, deadline_s - (loop.time() - started) - 0.05)
        snippet = b""
        if wait > 0:
            try:
                async with asyncio.timeout(wait):
                    while len(snippet) < max_bytes:
                        chunk = await response.content.read(max_bytes - len(snippet))
                        if not chunk:
                            break
                        snippet += chunk
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
        return response.status, snippet
