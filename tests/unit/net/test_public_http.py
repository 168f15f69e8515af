"""The client for client-chosen URLs, against real peers on loopback.

Loopback is not public, so most peers here are reached with ``allow_private=True`` (the
``VIDGATE_ALLOW_INSECURE_URLS`` mode); the refusals are checked with it off. The
rebinding attack itself is in tests/e2e/test_ssrf_rebinding.py, inside a network
namespace where a public address can be served.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.certs import CertAuthority
from tests.peers import Handler, Peer, answer, trickle

from vidgate.core.urls import OutboundURL, check_outbound_url
from vidgate.net import public_http
from vidgate.net.public_http import AddressRefused, OutboundError


def _url(text: str, *, insecure: bool = True) -> OutboundURL:
    return check_outbound_url(text, allow_insecure=insecure, param="image")


async def _fetch(url: OutboundURL, *, allow_private: bool = True, **kw: Any) -> bytes:
    options: dict[str, Any] = {"max_bytes": 1000, "deadline_s": 5.0, **kw}
    return await public_http.fetch_capped(url, allow_private=allow_private, **options)


def _no_library_words(reason: str) -> None:
    for leak in ("Error", "Exception", "aiohttp", "Client", "Timeout"):
        assert leak not in reason, reason


async def test_fetch_returns_the_body_of_a_200() -> None:
    async with Peer(answer("200 OK", b"png-bytes")) as peer:
        body = await _fetch(_url(f"http://127.0.0.1:{peer.port}/a.png?x=%2F"))
    assert body == b"png-bytes"
    request_line = peer.requests[0].split(b"\r\n")[0]
    assert request_line == b"GET /a.png?x=%2F HTTP/1.1"
    assert b"accept-encoding: identity" in peer.requests[0].lower()


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (answer("404 Not Found", b"no"), "answered HTTP 404"),
        (answer("302 Found", b"", "location: http://10.0.0.1/"), "redirects are not followed"),
        (answer("200 OK", b"x" * 1001), "larger than 1000 bytes"),
        (answer("200 OK", b"x", "content-encoding: gzip"), "compressed"),
    ],
)
async def test_answers_that_are_refused_say_why(handler: Handler, words: str) -> None:
    async with Peer(handler) as peer:
        with pytest.raises(OutboundError) as info:
            await _fetch(_url(f"http://127.0.0.1:{peer.port}/"))
    assert words in info.value.reason
    assert not info.value.final


async def test_an_undeclared_body_is_cut_at_the_cap() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(10_000):
            if writer.is_closing():
                return
            writer.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
            await writer.drain()

    async with Peer(endless) as peer:
        with pytest.raises(OutboundError, match="larger than 100000 bytes"):
            await _fetch(_url(f"http://127.0.0.1:{peer.port}/"), max_bytes=100_000)


async def test_a_trickling_peer_is_cut_off_at_the_total_deadline() -> None:
    """Headers, then a byte every 0.2 s: no single read times out, the deadline does."""

    async with Peer(trickle()) as peer:
        started = time.monotonic()
        with pytest.raises(OutboundError) as info:
            await _fetch(_url(f"http://127.0.0.1:{peer.port}/"), deadline_s=1.0)
    # The peer would take 40 s; a generous bound for a loaded machine.
    assert time.monotonic() - started < 15
    assert "timed out after 1 s" in info.value.reason
    _no_library_words(info.value.reason)


async def test_a_closed_port_is_could_not_connect_in_words() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OutboundError) as info:
        await _fetch(_url(f"http://127.0.0.1:{port}/"))
    assert info.value.reason == "could not connect"
    assert info.value.detail != info.value.reason  # the exception's type, for the log


async def test_loopback_names_and_addresses_are_refused_before_connecting() -> None:
    async with Peer(answer("200 OK", b"secret")) as peer:
        by_name = _url(f"https://localhost:{peer.port}/", insecure=False)
        with pytest.raises(AddressRefused) as info:
            await _fetch(by_name, allow_private=False)
        assert "resolves to a non-public address (loopback)" in info.value.reason
        assert info.value.final
        # The operator's log gets the address; the client's message does not.
        assert "127.0.0.1" in info.value.detail or "::1" in info.value.detail
        assert "127.0.0.1" not in info.value.reason

        literal = _url(f"http://127.0.0.1:{peer.port}/")  # parsed as the insecure mode would
        with pytest.raises(AddressRefused, match=r"non-public address \(127.0.0.1 is loopback"):
            await _fetch(literal, allow_private=False)
        with pytest.raises(AddressRefused):
            await public_http.post(
                literal, body=b"{}", headers={}, deadline_s=5, allow_private=False
            )
    assert peer.connections == 0


async def test_a_name_with_any_non_public_answer_is_refused_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One public and one private address: either could be connected to, so neither is."""
    calls: list[str] = []

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(host)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", int(port))),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", int(port))),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(AddressRefused, match=r"non-public address \(private\)"):
        await _fetch(_url("https://mixed.example/", insecure=False), allow_private=False)
    assert calls == ["mixed.example"]  # resolved once


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CertAuthority:
    authority = CertAuthority.create(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.cert_path))
    return authority


async def test_tls_is_verified_against_the_url_host_with_ssl_cert_file(
    ca: CertAuthority, tmp_path: Path
) -> None:
    names: list[str | None] = []
    good = ca.server_context(tmp_path, ["localhost"])
    good.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    async with Peer(answer("200 OK", b"tls"), ssl_context=good) as peer:
        assert await _fetch(_url(f"https://localhost:{peer.port}/")) == b"tls"
    assert names and set(names) == {"localhost"}

    wrong = ca.server_context(tmp_path, ["other.example"])
    async with Peer(answer("200 OK", b"tls"), ssl_context=wrong) as peer:
        with pytest.raises(OutboundError) as info:
            await _fetch(_url(f"https://localhost:{peer.port}/"))
    assert info.value.reason.startswith("the TLS certificate was refused")
    assert "localhost" in info.value.reason  # OpenSSL's words: a host name mismatch
    _no_library_words(info.value.reason)


async def test_an_untrusted_certificate_is_refused(
    ca: CertAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = CertAuthority.create(tmp_path / "..")
    context = other.server_context(tmp_path, ["localhost"])
    async with Peer(answer("200 OK", b"tls"), ssl_context=context) as peer:
        with pytest.raises(OutboundError, match="the TLS certificate was refused"):
            await _fetch(_url(f"https://localhost:{peer.port}/"))


async def test_post_returns_the_status_and_sends_the_body() -> None:
    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.requests.append(await reader.readexactly(7))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async with Peer(record) as peer:
        status = await public_http.post(
            _url(f"http://127.0.0.1:{peer.port}/hook"),
            body=b'{"a":1}',
            headers={"content-type": "application/json"},
            deadline_s=5,
            allow_private=True,
        )
    assert status == 204
    assert peer.requests[0].startswith(b"POST /hook HTTP/1.1")
    assert peer.requests[1] == b'{"a":1}'


async def test_a_post_without_an_answer_times_out_at_its_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    async with Peer(silent) as peer:
        started = time.monotonic()
        with pytest.raises(OutboundError, match="timed out"):
            await public_http.post(
                _url(f"http://127.0.0.1:{peer.port}/"),
                body=b"{}",
                headers={},
                deadline_s=0.5,
                allow_private=True,
            )
    assert time.monotonic() - started < 15


async def test_a_name_server_that_never_answers_costs_the_deadline_and_no_shared_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lookups count in the deadline, and run on threads of their own: slow names held
    the shared pool's threads (the default executor, libuv's under uvloop) that every
    provider call's lookup needs too."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".slow.example"):
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "timed out")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    slow = [_url(f"https://n{i}.slow.example/", insecure=False) for i in range(40)]
    try:
        started = time.monotonic()
        fetches = [
            asyncio.ensure_future(_fetch(url, allow_private=False, deadline_s=1.0)) for url in slow
        ]
        await asyncio.sleep(0.2)
        # The loop's own resolver still answers while 40 lookups hang.
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.getaddrinfo("localhost", 80), 5)
        outcomes = await asyncio.gather(*fetches, return_exceptions=True)
        assert time.monotonic() - started < 15
        assert all(isinstance(o, OutboundError) and "timed out" in o.reason for o in outcomes), (
            outcomes
        )
    finally:
        release.set()
