"""``GET /v1/videos/{id}`` and ``.../content``: the edge answers them before routing
(api/fast_lane.py); the FastAPI route answers the same request when it carries a query
string the edge does not take. Both must say exactly the same thing, errors included."""

from __future__ import annotations

import time
from typing import Any

import httpx
from tests.conftest import ServerProcess


def _both(server: ServerProcess, video_id: str, headers: dict[str, str]) -> list[httpx.Response]:
    url = f"{server.base_url}/v1/videos/{video_id}"
    # Any query string makes the edge pass the request on to FastAPI's route.
    return [httpx.get(url, headers=headers), httpx.get(f"{url}?via=route", headers=headers)]


def _same(responses: list[httpx.Response]) -> dict[str, Any]:
    fast, routed = responses
    assert fast.status_code == routed.status_code
    assert fast.json() == routed.json()
    for name in ("content-type", "openai-poll-after-ms"):
        assert fast.headers.get(name) == routed.headers.get(name), name
    body: dict[str, Any] = fast.json()
    return body


def test_the_fast_lane_and_the_route_answer_alike(
    server: ServerProcess, key_a: str, key_b: str
) -> None:
    owner = {"Authorization": f"Bearer {key_a}"}
    created = httpx.post(
        f"{server.base_url}/v1/videos",
        headers=owner,
        json={
            "model": "sandbox",
            "prompt": "status",
            "seconds": 1,
            "size": "320x240",
            # Long enough that both reads below see it running: while it is stored,
            # the poll-after header says 250.
            "metadata": {"sandbox_latency_ms": "1500"},
        },
    ).json()
    video_id = created["id"]

    running = _same(_both(server, video_id, owner))
    assert running["id"] == video_id and running["status"] in ("queued", "in_progress")
    assert _both(server, video_id, owner)[0].headers["openai-poll-after-ms"] == "1000"

    deadline = time.monotonic() + 30
    while httpx.get(f"{server.base_url}/v1/videos/{video_id}", headers=owner).json()[
        "status"
    ] not in ("completed", "failed"):
        assert time.monotonic() < deadline, "the video did not finish"
        time.sleep(0.1)
    done = _same(_both(server, video_id, owner))
    assert done["status"] == "completed" and done["progress"] == 100
    assert "openai-poll-after-ms" not in _both(server, video_id, owner)[0].headers

    # Errors, in the OpenAI shape, the same both ways.
    other_tenant = _same(_both(server, video_id, {"Authorization": f"Bearer {key_b}"}))
    assert other_tenant["error"]["code"] == "video_not_found"
    for headers, code in (
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer vg_test_wrong"}, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "invalid_api_key"),
    ):
        responses = _both(server, video_id, headers)
        assert responses[0].status_code == 401
        assert _same(responses)["error"]["code"] == code
    unknown = _same(_both(server, "video_01nothinghere0000000000000", owner))
    assert unknown["error"]["code"] == "video_not_found"
    _downloads_alike(server, video_id, owner, {"Authorization": f"Bearer {key_b}"})


def _downloads_alike(
    server: ServerProcess, video_id: str, owner: dict[str, str], other: dict[str, str]
) -> None:
    """``/content`` from the edge (a query it reads as the route would) and from the
    route (an extra parameter sends it there): the same answers, bytes and errors."""
    url = f"{server.base_url}/v1/videos/{video_id}/content"
    task = httpx.get(f"{server.base_url}/v1/videos/generations/{video_id}", headers=owner).json()
    signed = task["data"][0]["url"]
    query = signed.split("?", 1)[1]
    cases: list[tuple[str, dict[str, str]]] = [
        ("", owner),
        ("?variant=thumbnail&index=0", owner),
        ("?variant=spritesheet", owner),
        (f"?{query}", {}),  # the signed link, no key
        (f"?{query}", other),
        ("", other),  # another tenant's key
        ("", {}),
        ("?index=1", owner),  # out of range for one output
        (f"?{query.replace('signature=', 'signature=x')}", {}),  # a bad signature
    ]
    for suffix, headers in cases:
        for extra in ({}, {"Range": "bytes=10-19"}):
            fast = httpx.get(url + suffix, headers={**headers, **extra})
            routed = httpx.get(f"{url}{suffix or '?'}&via=route", headers={**headers, **extra})
            assert fast.status_code == routed.status_code, (suffix, extra)
            assert fast.content == routed.content, (suffix, extra)
            varying = ("date", "x-request-id")
            assert {k: v for k, v in fast.headers.items() if k not in varying} == {
                k: v for k, v in routed.headers.items() if k not in varying
            }, (suffix, extra)
    assert httpx.get(url, headers=owner).headers["content-type"] == "video/mp4"
    assert httpx.get(url, headers=other).json()["error"]["code"] == "video_not_found"


def test_other_paths_under_videos_are_not_taken_for_ids(server: ServerProcess, key_a: str) -> None:
    owner = {"Authorization": f"Bearer {key_a}"}
    # Not of vidgate's id shape: the route answers (a 404 of its own), as before.
    response = httpx.get(f"{server.base_url}/v1/videos/not-an-id", headers=owner)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "video_not_found"
    # Deeper paths stay with their routes.
    response = httpx.get(f"{server.base_url}/v1/videos/video_x/content", headers=owner)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "video_not_found"
    assert httpx.get(f"{server.base_url}/v1/videos", headers=owner).status_code == 200
