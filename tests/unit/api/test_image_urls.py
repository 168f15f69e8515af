"""Fetching an input image by URL at create: the total deadline and errors in words."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from tests.peers import Peer, answer, trickle

from vidgate.api.inputs import load_image_url
from vidgate.config import Settings
from vidgate.core.errors import InvalidImage


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path, allow_insecure_urls=True, **extra)  # type: ignore[arg-type]


async def _refusal(url: str, settings: Settings) -> str:
    with pytest.raises(InvalidImage) as info:
        await load_image_url(url, settings, param="image")
    assert info.value.param == "image" and info.value.status_code == 400
    message = info.value.message
    for leak in ("Error", "Exception", "aiohttp", "httpx"):
        assert leak not in message, message
    return message


async def test_the_fetch_has_a_total_deadline(tmp_path: Path) -> None:
    """A peer that trickles its body used to hold the create open for as long as it liked."""
    settings = _settings(tmp_path, image_fetch_timeout_s=1.0)
    async with Peer(trickle()) as peer:
        started = time.monotonic()
        message = await _refusal(f"http://127.0.0.1:{peer.port}/a.png", settings)
    assert time.monotonic() - started < 15  # the peer would take 40 s
    assert message == (
        "could not fetch the image URL: timed out after 1 s without a complete answer"
    )


async def test_failures_are_told_in_words(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_image_bytes=100)
    async with Peer(answer("404 Not Found", b"")) as peer:
        message = await _refusal(f"http://127.0.0.1:{peer.port}/a.png", settings)
    assert message == "could not fetch the image URL: it answered HTTP 404"
    async with Peer(answer("200 OK", b"x" * 101)) as peer:
        message = await _refusal(f"http://127.0.0.1:{peer.port}/a.png", settings)
    assert message == "could not fetch the image URL: it is larger than 100 bytes"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    message = await _refusal(f"http://127.0.0.1:{closed}/a.png", settings)
    assert message == "could not fetch the image URL: could not connect"


async def test_a_malformed_url_is_an_invalid_image_naming_the_field(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    message = await _refusal("https://[::1/a.png", settings)
    assert message.startswith("image is not a usable URL")
    assert "port" in await _refusal("https://example.com:abc/a.png", settings)


async def test_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    strict = Settings(data_dir=tmp_path)
    async with Peer(answer("200 OK", b"png")) as peer:
        message = await _refusal(f"https://localhost:{peer.port}/a.png", strict)
        assert message == (
            "could not fetch the image URL: its host name resolves to a non-public"
            " address (loopback)"
        )
        assert "127.0.0.1 is loopback" in await _refusal(
            f"https://127.0.0.1:{peer.port}/a.png", strict
        )
        assert (
            await load_image_url(
                f"http://127.0.0.1:{peer.port}/a.png", _settings(tmp_path), param="image"
            )
            == b"png"
        )
    assert peer.connections == 1
