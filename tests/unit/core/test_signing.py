"""Download links expire on a rounded step; callback URLs are signed per job, with no
expiry, and never usable as another link."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from vidgate.core.signing import CALLBACK_VARIANT, INPUT_VARIANT, UrlSigner

KEY = b"k" * 32


def _signature(url: str) -> str:
    return parse_qs(urlsplit(url).query)["signature"][0]


def test_callback_url_shape_and_round_trip() -> None:
    signer = UrlSigner(KEY, ttl_s=60)
    url = signer.sign_callback("https://gw.example.com/", "video_abc")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https", "gw.example.com", "/v1/callbacks/video_abc",
    )  # fmt: skip
    assert set(parse_qs(parts.query)) == {"signature"}  # no expiry
    assert signer.verify_callback("video_abc", _signature(url))
    # Deterministic: a re-run submit hands the upstream the same URL.
    assert signer.sign_callback("https://gw.example.com", "video_abc") == url


def test_callback_signature_does_not_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = UrlSigner(KEY, ttl_s=1)
    signature = _signature(signer.sign_callback("http://h", "video_abc"))
    later = time.time() + 30 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert signer.verify_callback("video_abc", signature)


def test_callback_signature_is_bound_to_the_job_and_the_key() -> None:
    signer = UrlSigner(KEY, ttl_s=60)
    signature = _signature(signer.sign_callback("http://h", "video_abc"))
    assert not signer.verify_callback("video_abd", signature)
    assert not signer.verify_callback("video_abc", signature[:-1])
    assert not signer.verify_callback("video_abc", "")
    assert not signer.verify_callback("video_abc", "é" * len(signature))  # non-ASCII: no error
    assert not UrlSigner(b"x" * 32, ttl_s=60).verify_callback("video_abc", signature)


def test_callback_and_download_signatures_do_not_cross() -> None:
    signer = UrlSigner(KEY, ttl_s=60)
    # An input link's signature (its "job id" being the sha256) is no callback signature.
    input_url = signer.sign_input("http://h", "video_abc")
    assert not signer.verify_callback("video_abc", _signature(input_url))
    # A callback signature opens no download: its expiry would be 0, long past.
    callback = _signature(signer.sign_callback("http://h", "video_abc"))
    for variant in (CALLBACK_VARIANT, INPUT_VARIANT, "video"):
        assert not signer.verify("video_abc", variant, 0, 0, callback)
        assert not signer.verify("video_abc", variant, 0, int(time.time()) + 60, callback)
    # A non-ASCII signature is refused, not an error.
    assert not signer.verify("video_abc", "video", 0, int(time.time()) + 60, "é")


def test_signatures_are_scrubbed_from_log_lines() -> None:
    from vidgate.logging import scrub_secrets

    signer = UrlSigner(KEY, ttl_s=60)
    callback = signer.sign_callback("http://gw", "video_abc")
    signature = _signature(callback)
    # As httpx logs an upstream request that carries the callback URL (fal_webhook).
    line = f"HTTP Request: POST http://fal/app?fal_webhook={quote(callback, safe='')} 200"
    download, _ = signer.sign("http://gw", "video_abc", "video", 0)
    event = scrub_secrets(None, "info", {"event": line, "url": download})
    assert signature not in str(event) and _signature(download) not in str(event)
    assert "video_abc" in event["event"] and "signature%3D***" in event["event"]


def test_links_made_within_a_step_are_the_same_url(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = UrlSigner(KEY, ttl_s=3600)  # a step of 300 s
    now = [1_800_000_000.0]  # a multiple of 300
    monkeypatch.setattr(time, "time", lambda: now[0])
    first, expires = signer.sign("http://h", "video_abc", "thumbnail", 0)
    assert expires == 1_800_003_600
    now[0] += 1
    second, later = signer.sign("http://h", "video_abc", "thumbnail", 0)
    # Rounded up: never shorter than the TTL, at most one step longer.
    assert later == 1_800_003_900 and second != first
    now[0] += 298
    assert signer.sign("http://h", "video_abc", "thumbnail", 0) == (second, later)
    assert signer.verify("video_abc", "thumbnail", 0, later, _signature(second))


def test_a_short_ttl_is_not_stretched(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = UrlSigner(KEY, ttl_s=5)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.4)
    assert signer.sign("http://h", "video_abc", "video", 0)[1] == 1_800_000_005
