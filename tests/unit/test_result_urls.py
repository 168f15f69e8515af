"""The one memory of result URLs between a status read and its fetch."""

from __future__ import annotations

from typing import Any

from vidgate.providers.result_urls import ResultUrls

# Remembering URLs never touches the client (downloads are the adapters' tests').
CLIENT: Any = None


def test_urls_are_taken_once() -> None:
    urls = ResultUrls(CLIENT, gone="gone")
    urls.remember("t1", ["https://a/1.mp4"])
    urls.remember("t2", [])  # nothing to remember
    assert len(urls) == 1
    assert urls.take("t1") == ["https://a/1.mp4"]
    assert urls.take("t1") is None and urls.take("t2") is None


def test_old_urls_are_not_used() -> None:
    now = [100.0]
    urls = ResultUrls(CLIENT, gone="gone", ttl_s=60, clock=lambda: now[0])
    urls.remember("t1", ["https://a/1.mp4"])
    urls.remember("t2", ["https://a/2.mp4"])
    now[0] += 59
    assert urls.take("t1") == ["https://a/1.mp4"]
    now[0] += 1
    assert urls.take("t2") is None


def test_the_memory_is_bounded_least_recent_first() -> None:
    urls = ResultUrls(CLIENT, gone="gone", max_entries=2)
    urls.remember("t1", ["u1"])
    urls.remember("t2", ["u2"])
    urls.remember("t1", ["u1b"])  # seen again: now the most recent
    urls.remember("t3", ["u3"])
    assert len(urls) == 2
    assert urls.take("t2") is None
    assert urls.take("t1") == ["u1b"] and urls.take("t3") == ["u3"]


def test_forget() -> None:
    urls = ResultUrls(CLIENT, gone="gone")
    urls.remember("t1", ["u1"])
    urls.forget("t1")
    urls.forget("never-seen")
    assert urls.take("t1") is None
