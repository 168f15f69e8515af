"""``UpstreamClient`` against a real server on loopback: what goes out (URL, headers,
bodies) and how every kind of answer, or its absence, comes back."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.harness import FakeServer, free_port
from tests.peers import Peer, trickle
from vidgate.providers.base import ProviderError
from vidgate.providers.http import UpstreamClient, UpstreamLimits


class Echo:
    base_url = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/echo", self.echo, methods=["GET", "POST", "DELETE"]),
                Route("/v1/gzip", self.gzipped),
                Route("/v1/status/{code:int}", self.status),
                Route("/v1/slow", self.slow),
                Route("/v1/big", self.big),
                Route("/v1/big-chunked", self.big_chunked),
                Route("/v1/bomb", self.bomb),
                Route("/files/{name}", self.file),
                Route("/moved", lambda _: RedirectResponse("/files/a.mp4", status_code=302)),
            ]
        )

    async def echo(self, request: Request) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        form: dict[str, Any] = {}
        if content_type.startswith("multipart/"):
            async with request.form() as parts:
                for name, value in parts.multi_items():
                    form[name] = (
                        value if isinstance(value, str) else [value.filename, await value.read()]
                    )
                    if not isinstance(value, str):
                        form[name][1] = form[name][1].decode()
        body = (await request.body()).decode() if not form else ""
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.scope["query_string"].decode(),
                "authorization": request.headers.get("authorization"),
                "extra": request.headers.get("x-extra"),
                "content_type": content_type.split(";")[0],
                "body": body,
                "form": form,
            }
        )

    async def gzipped(self, request: Request) -> Response:
        return Response(
            gzip.compress(b'{"status": "in_progress"}'),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    async def status(self, request: Request) -> Response:
        code = request.path_params["code"]
        return JSONResponse(
            {"error": {"message": f"answered {code}"}},
            status_code=code,
            headers={"retry-after": "7"},
        )

    async def slow(self, request: Request) -> Response:
        await asyncio.sleep(2)
        return JSONResponse({})

    async def big(self, request: Request) -> Response:
        return Response(b"[" + b"0," * 2048 + b"0]", media_type="application/json")

    async def big_chunked(self, request: Request) -> Response:
        # No Content-Length: the cap must hold while reading.
        async def parts() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"0" * 1024

        return StreamingResponse(parts(), media_type="application/json")

    async def bomb(self, request: Request) -> Response:
        # ~1 KB on the wire, 1 MiB once decoded.
        return Response(
            gzip.compress(b" " * (1 << 20)),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )

    async def file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name == "expired.mp4":
            return Response(b"AccessDenied", status_code=403)
        if name == "broken.mp4":
            return JSONResponse({"error": {"message": "disk on fire"}}, status_code=500)
        query = request.scope["query_string"].decode()
        return Response(f"video bytes {query}".encode(), media_type="video/mp4")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with FakeServer(Echo()) as running:  # type: ignore[arg-type]
        yield running


def _client(server: FakeServer, **kwargs: Any) -> UpstreamClient:
    return UpstreamClient(
        provider="echo",
        base_url=f"{server.url}/v1/",
        headers=lambda: {"Authorization": "Bearer secret"},
        **kwargs,
    )


async def test_requests_carry_the_base_path_auth_params_and_bodies(server: FakeServer) -> None:
    client = _client(server)
    try:
        sent = await client.json(
            "POST",
            "/echo",
            json={"prompt": "a fox"},
            params={"api-version": "1"},
            headers={"X-Extra": "yes"},
        )
        assert sent["method"] == "POST" and sent["path"] == "/v1/echo"
        assert sent["query"] == "api-version=1"
        assert (sent["authorization"], sent["extra"]) == ("Bearer secret", "yes")
        assert sent["content_type"] == "application/json"
        assert json.loads(sent["body"]) == {"prompt": "a fox"}
        # A relative path without the leading slash lands in the same place.
        assert (await client.json("DELETE", "echo"))["path"] == "/v1/echo"
        form = await client.json("POST", "/echo", data={"grant_type": "jwt", "assertion": "x"})
        assert form["content_type"] == "application/x-www-form-urlencoded"
        assert form["body"] == "grant_type=jwt&assertion=x"
    finally:
        await client.aclose()


async def test_files_go_as_multipart_even_with_no_file_part(server: FakeServer) -> None:
    client = _client(server)
    try:
        fields = [("model", (None, "sora-2", None)), ("seconds", (None, "4", None))]
        plain = await client.json("POST", "/echo", files=fields)
        # The OpenAI Videos API refuses a create that is not multipart/form-data.
        assert plain["content_type"] == "multipart/form-data"
        assert plain["form"] == {"model": "sora-2", "seconds": "4"}
        with_file = await client.json(
            "POST",
            "/echo",
            files=[("prompt", (None, "p", None)), ("input_reference", ("in", b"PNG", "image/png"))],
        )
        assert with_file["form"] == {"prompt": "p", "input_reference": ["in", "PNG"]}
    finally:
        await client.aclose()


async def test_a_compressed_answer_is_decoded_once(server: FakeServer) -> None:
    client = _client(server)
    try:
        assert await client.json("GET", "/gzip") == {"status": "in_progress"}
    finally:
        await client.aclose()


async def test_error_answers_are_translated_with_the_providers_message(server: FakeServer) -> None:
    client = _client(server)
    try:
        with pytest.raises(ProviderError) as limited:
            await client.request("GET", "/status/429")
        assert limited.value.code == "upstream_rate_limited" and limited.value.retryable
        assert limited.value.retry_after_s == 7 and "answered 429" in limited.value.message
        with pytest.raises(ProviderError) as refused:
            await client.request("GET", "/status/401")
        assert refused.value.code == "upstream_auth_failed" and refused.value.unhealthy
        with pytest.raises(ProviderError) as rejected:
            await client.request("GET", "/status/422")
        assert (rejected.value.code, rejected.value.retryable) == ("upstream_rejected", False)
    finally:
        await client.aclose()


async def test_no_answer_is_retryable_and_says_which(server: FakeServer) -> None:
    nobody = UpstreamClient(provider="echo", base_url=f"http://127.0.0.1:{free_port()}")
    slow = _client(server, timeout_s=0.3)
    try:
        with pytest.raises(ProviderError) as unreachable:
            await nobody.request("GET", "/anything")
        assert (unreachable.value.code, unreachable.value.retryable) == (
            "upstream_unreachable",
            True,
        )
        with pytest.raises(ProviderError) as timed_out:
            await slow.request("GET", "/slow")
        assert (timed_out.value.code, timed_out.value.retryable) == ("upstream_timeout", True)
        # The secret never reaches the message.
        assert "secret" not in timed_out.value.message
    finally:
        await nobody.aclose()
        await slow.aclose()


async def test_downloads_send_a_presigned_url_as_given(server: FakeServer, tmp_path: Path) -> None:
    client = _client(server)
    try:
        # A signature's escapes must reach the storage server unchanged.
        signed = f"{server.url}/files/a.mp4?X-Sig=ab%2Bc%2F%3D&X-Exp=60"
        out = await client.download(signed, tmp_path / "a.mp4")
        assert out.read_bytes() == b"video bytes X-Sig=ab%2Bc%2F%3D&X-Exp=60"
        # Redirects are followed; the size bound holds.
        moved = await client.download(f"{server.url}/moved", tmp_path / "b.mp4")
        assert moved.read_bytes() == b"video bytes "
        with pytest.raises(ProviderError) as large:
            await client.download(signed, tmp_path / "c.mp4", max_bytes=4)
        assert large.value.code == "result_too_large"
        with pytest.raises(ProviderError) as expired:
            await client.download(f"{server.url}/files/expired.mp4", tmp_path / "d.mp4")
        assert expired.value.code == "result_expired" and expired.value.expired
        with pytest.raises(ProviderError) as broken:
            await client.download(f"{server.url}/files/broken.mp4", tmp_path / "e.mp4")
        assert broken.value.code == "upstream_error" and "disk on fire" in broken.value.message
        # Nothing half-written is left behind.
        assert sorted(os.listdir(tmp_path)) == ["a.mp4", "b.mp4"]
    finally:
        await client.aclose()


@pytest.fixture
async def slow_peer() -> AsyncIterator[str]:
    """Headers at once, then a body byte every 2 s, for longer than any test runs:
    the per-read timeout (3 s) never fires."""
    async with Peer(trickle(interval_s=2.0, count=1000)) as peer:
        yield f"http://127.0.0.1:{peer.port}"


def _short(base_url: str) -> UpstreamClient:
    # Totals of a few seconds; a per-read timeout that a byte every 2 s keeps resetting.
    return UpstreamClient(
        provider="slow",
        base_url=base_url,
        timeout_s=3.0,
        limits=UpstreamLimits(request_s=3.5, download_s=1.5),
    )


async def test_a_trickling_api_answer_ends_at_the_total_deadline(slow_peer: str) -> None:
    client = _short(slow_peer)
    try:
        started = time.monotonic()
        with pytest.raises(ProviderError) as timed_out:
            # The bound only keeps a regression from hanging the suite.
            await asyncio.wait_for(client.json("GET", "/status"), 20)
        assert time.monotonic() - started < 10
        assert (timed_out.value.code, timed_out.value.retryable) == ("upstream_timeout", True)
        # In words, not an exception's class name.
        assert timed_out.value.message == "slow: timed out after 3.5 s without a complete answer"
    finally:
        await client.aclose()


async def test_a_trickling_result_download_ends_at_its_deadline(
    slow_peer: str, tmp_path: Path
) -> None:
    client = _short(slow_peer)
    try:
        started = time.monotonic()
        with pytest.raises(ProviderError) as timed_out:
            await asyncio.wait_for(client.download(f"{slow_peer}/a.mp4", tmp_path / "a"), 20)
        assert time.monotonic() - started < 10
        assert (timed_out.value.code, timed_out.value.retryable) == ("download_timeout", True)
        assert "1.5 s" in timed_out.value.message
        assert os.listdir(tmp_path) == []  # the partial file is gone
    finally:
        await client.aclose()


async def test_an_api_answer_over_the_size_cap_is_refused(server: FakeServer) -> None:
    client = _client(server, limits=UpstreamLimits(max_response_bytes=4096))
    try:
        assert len(await client.json("GET", "/echo")) > 0  # small answers pass
        for path in ("/big", "/big-chunked", "/bomb"):
            with pytest.raises(ProviderError) as large:
                await client.request("GET", path)
            assert (large.value.code, large.value.retryable) == ("upstream_too_large", True)
            assert "larger than 4096 bytes" in large.value.message
    finally:
        await client.aclose()


async def test_an_unreachable_peer_is_said_in_words() -> None:
    nobody = UpstreamClient(provider="echo", base_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderError) as unreachable:
            await nobody.request("GET", "/anything")
        assert unreachable.value.message == "echo: could not connect"
    finally:
        await nobody.aclose()
