"""One tenant never sees another's videos, on any route."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from tests.conftest import ServerProcess


def test_another_tenants_video_is_404_everywhere(
    server: ServerProcess, key_a: str, key_b: str
) -> None:
    a = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key_a, max_retries=0)
    b = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key_b, max_retries=0)
    video = a.videos.create_and_poll(
        model="sandbox", prompt="private", seconds="1", size="320x240", poll_interval_ms=200
    )
    assert video.status == "completed"

    with pytest.raises(openai.NotFoundError):
        b.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        b.videos.download_content(video.id)
    with pytest.raises(openai.NotFoundError):
        b.videos.download_content(video.id, variant="thumbnail")
    with pytest.raises(openai.NotFoundError):
        b.videos.remix(video.id, prompt="steal")
    with pytest.raises(openai.NotFoundError):
        b.videos.delete(video.id)
    assert video.id not in [v.id for v in b.videos.list(limit=100)]
    headers_b = {"Authorization": f"Bearer {key_b}"}
    assert (
        httpx.get(
            f"{server.base_url}/v1/videos/generations/{video.id}", headers=headers_b
        ).status_code
        == 404
    )
    ext = httpx.post(
        f"{server.base_url}/v1/videos/extensions",
        headers=headers_b,
        json={"prompt": "x", "seconds": 1, "video": {"id": video.id}},
    )
    assert ext.status_code == 404
    # Idempotency keys are per tenant too: B's request with A's key string makes B's own job.
    body = {"model": "sandbox", "prompt": "idem", "seconds": 1, "size": "320x240"}
    ja = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {key_a}", "Idempotency-Key": "shared"},
        json=body,
    ).json()
    jb = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={**headers_b, "Idempotency-Key": "shared"},
        json=body,
    ).json()
    assert ja["id"] != jb["id"]

    # A still has it, untouched by B's attempts.
    time.sleep(0.1)
    assert a.videos.retrieve(video.id).status == "completed"
    assert len(a.videos.download_content(video.id).read()) > 1000
