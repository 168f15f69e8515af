"""The task shape (``/v1/videos/generations``) over plain HTTP, and both shapes on one job."""

from __future__ import annotations

import base64
import functools
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import openai
import pytest
from tests.conftest import ServerProcess, png_bytes, probe


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait(base: str, key: str, gen_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{base}/v1/videos/generations/{gen_id}", headers=_auth(key)
        ).json()
        assert body["status"] in ("queued", "processing", "completed", "failed")
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{gen_id} did not finish")


def test_generation_with_n_outputs_downloads_without_auth(
    server: ServerProcess, key_a: str, tmp_path: Path
) -> None:
    created = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={
            "model": "sandbox",
            "prompt": "two takes",
            "duration": 1,
            "resolution": "360p",
            "aspect_ratio": "9:16",
            "n": 2,
            "fps": 12,
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert (
        body["status"] == "queued"
        and body["progress"] == 0
        and body["error"] is None
        and body["data"] == []
    )
    done = _wait(server.base_url, key_a, body["id"])
    assert done["status"] == "completed" and done["progress"] == 100 and done["error"] is None
    assert [d["index"] for d in done["data"]] == [0, 1]
    for i, item in enumerate(done["data"]):
        response = httpx.get(item["url"])  # no Authorization header
        assert response.status_code == 200
        assert response.headers["content-type"] == "video/mp4"
        assert (
            int(response.headers["content-length"]) == len(response.content) == item["size_bytes"]
        )
        info = probe(response.content, tmp_path, f"{i}.mp4")
        assert (info.width, info.height) == (360, 640)
        assert round(info.fps) == 12 and info.duration == pytest.approx(1.0, abs=0.05)
        assert httpx.get(item["thumbnail_url"]).headers["content-type"] == "image/webp"
    # The two outputs are different clips (each labelled with its index).
    assert done["data"][0]["url"] != done["data"][1]["url"]


def test_range_requests_on_signed_urls(server: ServerProcess, key_a: str) -> None:
    body = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={"model": "sandbox", "prompt": "ranges", "duration": 1, "size": "320x240"},
    ).json()
    url = _wait(server.base_url, key_a, body["id"])["data"][0]["url"]
    full = httpx.get(url).content
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(full)}"
    assert part.headers["content-length"] == "100"
    assert part.content == full[100:200]
    tail = httpx.get(url, headers={"Range": f"bytes={len(full) - 10}-"})
    assert tail.status_code == 206 and tail.content == full[-10:]
    assert httpx.get(url, headers={"Range": f"bytes={len(full) + 5}-"}).status_code == 416
    # The same Range support with an API key on the OpenAI route.
    keyed = httpx.get(
        f"{server.base_url}/v1/videos/{body['id']}/content",
        headers={**_auth(key_a), "Range": "bytes=0-9"},
    )
    assert keyed.status_code == 206 and keyed.content == full[:10]


def test_tampered_or_expired_links_are_404(server: ServerProcess, key_a: str) -> None:
    body = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={"model": "sandbox", "prompt": "links", "duration": 1, "size": "320x240", "n": 2},
    ).json()
    done = _wait(server.base_url, key_a, body["id"])
    url = done["data"][0]["url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"

    def get(**changes: str) -> int:
        return httpx.get(f"{base}?{urlencode({**query, **changes})}").status_code

    assert get() == 200
    assert get(index="1") == 404  # the signature covers the index
    assert get(variant="thumbnail") == 404  # and the variant
    assert get(expires=str(int(query["expires"]) + 60)) == 404  # and the expiry
    assert get(expires=str(int(time.time()) - 10)) == 404
    assert get(signature=query["signature"][:-2] + "AA") == 404
    other = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={"model": "sandbox", "prompt": "other", "duration": 1, "size": "320x240"},
    ).json()
    # A valid signature for one video opens no other video.
    assert (
        httpx.get(
            f"{server.base_url}/v1/videos/{other['id']}/content?{urlencode(query)}"
        ).status_code
        == 404
    )


def test_image_to_video_with_a_data_url(server: ServerProcess, key_a: str) -> None:
    image = "data:image/png;base64," + base64.b64encode(png_bytes(80, 60, (0, 0, 255))).decode()
    body = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={
            "model": "kling-2.0",
            "prompt": "blue",
            "duration": 5,
            "resolution": "720p",
            "aspect_ratio": "1:1",
            "image": image,
        },
    )
    assert body.status_code == 200, body.text
    done = _wait(server.base_url, key_a, body.json()["id"])
    assert done["status"] == "completed"
    assert done["size"] == "720x720" and done["duration"] == 5
    assert done["estimated_cost"] == pytest.approx(0.05)


def test_image_from_an_http_url(server: ServerProcess, key_a: str, tmp_path: Path) -> None:
    import http.server
    import threading

    (tmp_path / "img.png").write_bytes(png_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/img.png"
        ok = httpx.post(
            f"{server.base_url}/v1/videos/generations",
            headers=_auth(key_a),
            json={
                "model": "sandbox",
                "prompt": "fetched",
                "duration": 1,
                "size": "320x240",
                "image": url,
            },
        )
        assert ok.status_code == 200, ok.text
        missing = httpx.post(
            f"{server.base_url}/v1/videos/generations",
            headers=_auth(key_a),
            json={
                "model": "sandbox",
                "prompt": "fetched",
                "duration": 1,
                "size": "320x240",
                "image": url + ".nope",
            },
        )
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "image"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_one_job_two_shapes(server: ServerProcess, key_a: str) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key_a, max_retries=0)
    via_sdk = client.videos.create_and_poll(
        model="sandbox", prompt="sdk made", seconds="1", size="320x240", poll_interval_ms=200
    )
    as_task = httpx.get(
        f"{server.base_url}/v1/videos/generations/{via_sdk.id}", headers=_auth(key_a)
    ).json()
    assert (
        as_task["status"] == "completed"
        and as_task["duration"] == 1
        and as_task["size"] == "320x240"
    )
    assert (
        httpx.get(as_task["data"][0]["url"]).content
        == client.videos.download_content(via_sdk.id).read()
    )

    task = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={
            "model": "sora-2",
            "prompt": "task made",
            "duration": 8,
            "resolution": "720p",
            "aspect_ratio": "16:9",
        },
    ).json()
    assert task["estimated_cost"] == pytest.approx(0.80)  # $0.10 per second
    video = client.videos.retrieve(task["id"])
    assert video.model == "sora-2" and video.seconds == "8" and video.size == "1280x720"
    assert video.status in ("queued", "in_progress", "completed")


def test_first_last_and_reference_frames_reach_the_job(
    server: ServerProcess, key_a: str, session_db: str
) -> None:
    import psycopg

    first = "data:image/png;base64," + base64.b64encode(png_bytes(64, 48, (255, 0, 0))).decode()
    last = "data:image/png;base64," + base64.b64encode(png_bytes(64, 48, (0, 0, 255))).decode()
    ref = "data:image/png;base64," + base64.b64encode(png_bytes(32, 32, (0, 255, 0))).decode()
    body = httpx.post(
        f"{server.base_url}/v1/videos/generations",
        headers=_auth(key_a),
        json={
            "model": "sandbox",
            "prompt": "frames",
            "duration": 1,
            "size": "320x240",
            "image": first,
            "last_frame": last,
            "reference_images": [ref, ref],
        },
    )
    assert body.status_code == 200, body.text
    done = _wait(server.base_url, key_a, body.json()["id"])
    assert done["status"] == "completed"
    with psycopg.connect(session_db) as conn:
        row = conn.execute("SELECT spec FROM jobs WHERE id = %s", (done["id"],)).fetchone()
    assert row is not None
    spec = row[0]
    assert spec["image"]["sha256"] != spec["last_frame"]["sha256"]
    assert [r["width"] for r in spec["reference_images"]] == [32, 32]
