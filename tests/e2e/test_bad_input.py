"""Bad input is a 4xx in the OpenAI error shape, never a 500, and stores nothing."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import ServerProcess, png_bytes


def _assert_error(
    response: httpx.Response, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


@pytest.fixture(scope="module")
def post(server: ServerProcess, key_a: str) -> Any:
    def send(path: str = "/v1/videos", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key_a}", **kwargs.pop("headers", {})}
        return httpx.post(f"{server.base_url}{path}", headers=headers, timeout=30, **kwargs)

    return send


def _job_count(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": "kling-2.0", "prompt": "x", "seconds": 11}, "seconds", "5, 10"),
        ({"model": "sora-2", "prompt": "x", "seconds": 5}, "seconds", "4, 8, 12"),
        ({"model": "sandbox", "prompt": "x", "seconds": "2.5"}, "seconds", None),
        ({"model": "sandbox", "prompt": "x", "seconds": 0}, "seconds", None),
        ({"model": "sora-2", "prompt": "x", "size": "1920x1920"}, "size", "1280x720"),
        ({"model": "sandbox", "prompt": "x", "size": "big"}, "size", None),
        ({"model": "veo-3", "prompt": "x", "resolution": "480p"}, "resolution", "720p, 1080p, 4K"),
        ({"model": "veo-3", "prompt": "x", "aspect_ratio": "1:1"}, "aspect_ratio", "16:9, 9:16"),
        ({"model": "sora-2", "prompt": "x", "fps": 30}, "fps", "24"),
        ({"model": "sandbox", "prompt": "x", "n": 5}, "n", None),
        ({"model": "sandbox", "prompt": "x", "n": 0}, "n", None),
        ({"model": "sandbox", "prompt": "x" * 4001}, "prompt", "4000"),
        ({"model": "sandbox", "prompt": "   "}, "prompt", None),
        ({"model": "sandbox"}, "prompt", None),
        ({"model": "sandbox", "prompt": "x", "colour": "red"}, "colour", None),
        ({"model": "sandbox", "prompt": "x", "metadata": {"k": 1}}, None, None),
    ],
)
def test_out_of_range_requests_name_the_parameter(
    post: Any, session_db: str, body: dict[str, Any], param: str | None, needle: str | None
) -> None:
    before = _job_count(session_db)
    error = _assert_error(post(json=body), 400, param=param)
    if needle:
        assert needle in error["message"]
    assert _job_count(session_db) == before


def test_unknown_model(post: Any) -> None:
    error = _assert_error(
        post(json={"model": "sora-3", "prompt": "x"}), 404, param="model", code="model_not_found"
    )
    assert "sora-2" in error["message"]


def test_booleans_are_not_numbers(post: Any) -> None:
    _assert_error(
        post(json={"model": "sandbox", "prompt": "x", "seconds": True}), 400, param="seconds"
    )
    _assert_error(
        post("/v1/videos/generations", json={"model": "sandbox", "prompt": "x", "n": True}),
        400,
        param="n",
    )


def test_task_shape_validates_the_same_way(post: Any) -> None:
    _assert_error(
        post("/v1/videos/generations", json={"model": "kling-2.0", "prompt": "x", "duration": 7}),
        400,
        param="seconds",
    )
    _assert_error(
        post("/v1/videos/generations", json={"model": "sandbox", "prompt": "x", "n": 9}),
        400,
        param="n",
    )
    _assert_error(post("/v1/videos/generations", json={"prompt": "x"}), 400, param="model")


def test_malformed_bodies(post: Any) -> None:
    _assert_error(
        post(
            content=b'{"model": "sandbox", "prompt": ', headers={"Content-Type": "application/json"}
        ),
        400,
        code="invalid_json",
    )
    _assert_error(
        post(content=b"[1, 2]", headers={"Content-Type": "application/json"}),
        400,
        code="invalid_json",
    )
    _assert_error(
        post(
            content=b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi',
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        ),
        400,
    )
    _assert_error(
        post(content=b"hello", headers={"Content-Type": "text/plain"}),
        400,
        code="unsupported_media_type",
    )


def test_bad_images(post: Any) -> None:
    not_image = post(
        data={"model": "sandbox", "prompt": "x", "seconds": "1"},
        files={"input_reference": ("a.png", b"not an image at all", "image/png")},
    )
    _assert_error(not_image, 400, param="input_reference", code="invalid_image")
    truncated = post(
        data={"model": "sandbox", "prompt": "x"},
        files={"input_reference": ("a.png", png_bytes()[:60], "image/png")},
    )
    _assert_error(truncated, 400, param="input_reference", code="invalid_image")
    # The session server caps images at 1 MiB (and bodies at 4 MiB).
    big = post(
        data={"model": "sandbox", "prompt": "x"},
        files={"input_reference": ("a.png", png_bytes() + b"\0" * (1024 * 1024 + 10), "image/png")},
    )
    error = _assert_error(big, 400, param="input_reference", code="invalid_image")
    assert "1048576" in error["message"] or "1 MiB" in error["message"] or "MB" in error["message"]
    not_base64 = post(
        "/v1/videos/generations",
        json={"model": "sandbox", "prompt": "x", "image": "data:image/png;base64,@@@not-base64@@@"},
    )
    _assert_error(not_base64, 400, param="image", code="invalid_image")
    ftp = post(
        "/v1/videos/generations",
        json={"model": "sandbox", "prompt": "x", "image": "ftp://example.com/a.png"},
    )
    _assert_error(ftp, 400, param="image")
    as_json = post(
        json={
            "model": "sandbox",
            "prompt": "x",
            "input_reference": {
                "image_url": "data:image/png;base64," + base64.b64encode(b"GIF89a nope").decode()
            },
        }
    )
    _assert_error(as_json, 400, param="input_reference")


def test_oversized_body_is_413(post: Any) -> None:
    declared = post(
        content=b"x" * (4 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"}
    )
    _assert_error(declared, 413, code="payload_too_large")

    def chunks() -> Any:
        for _ in range(5):
            yield b"y" * (1024 * 1024)

    streamed = post(content=chunks(), headers={"Content-Type": "application/json"})
    _assert_error(streamed, 413, code="payload_too_large")


def test_unknown_ids(server: ServerProcess, key_a: str) -> None:
    headers = {"Authorization": f"Bearer {key_a}"}
    base = server.base_url
    for method, path in [
        ("GET", "/v1/videos/video_doesnotexist"),
        ("DELETE", "/v1/videos/video_doesnotexist"),
        ("GET", "/v1/videos/video_doesnotexist/content"),
        ("GET", "/v1/videos/generations/video_doesnotexist"),
    ]:
        _assert_error(httpx.request(method, f"{base}{path}", headers=headers), 404)
    _assert_error(
        httpx.post(
            f"{base}/v1/videos/video_doesnotexist/remix", headers=headers, json={"prompt": "x"}
        ),
        404,
    )
    _assert_error(httpx.get(f"{base}/v1/nothing-here", headers=headers), 404)
    _assert_error(httpx.get(f"{base}/v1/videos/x/content?variant=poster", headers=headers), 404)


def test_missing_or_wrong_keys_are_401(server: ServerProcess) -> None:
    base = server.base_url
    _assert_error(httpx.get(f"{base}/v1/videos"), 401, code="missing_api_key")
    _assert_error(
        httpx.get(f"{base}/v1/videos", headers={"Authorization": "Bearer vg_test_wrong"}),
        401,
        code="invalid_api_key",
    )
    _assert_error(httpx.get(f"{base}/v1/videos", headers={"Authorization": "Basic abc"}), 401)
    _assert_error(httpx.post(f"{base}/v1/videos", json={"model": "sandbox", "prompt": "x"}), 401)
    _assert_error(httpx.get(f"{base}/v1/models"), 401)
    _assert_error(httpx.get(f"{base}/v1/videos/video_x/content"), 401)


def test_live_keys_need_a_deployment(server: ServerProcess) -> None:
    live = server.create_key("live one", "--live", "--tenant", "live-tenant")
    headers = {"Authorization": f"Bearer {live}"}
    error = _assert_error(
        httpx.post(
            f"{server.base_url}/v1/videos",
            headers=headers,
            json={"model": "kling-2.0", "prompt": "x", "seconds": 5},
        ),
        503,
        code="no_deployment",
    )
    assert "kling-2.0" in error["message"]
    ok = httpx.post(
        f"{server.base_url}/v1/videos",
        headers=headers,
        json={"model": "sandbox", "prompt": "x", "seconds": 1, "size": "320x240"},
    )
    assert ok.status_code == 200, ok.text


def test_idempotency_key(post: Any, session_db: str) -> None:
    body = {"model": "sandbox", "prompt": "once", "seconds": 1, "size": "320x240"}
    first = post(json=body, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == 200
    again = post(json=body, headers={"Idempotency-Key": "abc-123"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    before = _job_count(session_db)
    _assert_error(
        post(json={**body, "prompt": "twice"}, headers={"Idempotency-Key": "abc-123"}),
        409,
        code="idempotency_key_reused",
    )
    assert _job_count(session_db) == before
    task_shape = post(
        "/v1/videos/generations",
        json={"model": "sandbox", "prompt": "once", "duration": 1, "size": "320x240"},
        headers={"Idempotency-Key": "abc-123"},
    )
    # The same key with the same normalized request, through the other shape: the same job.
    assert task_shape.status_code == 200 and task_shape.json()["id"] == first.json()["id"]


def test_last_frame_and_reference_images_are_checked_against_the_model(post: Any) -> None:
    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    gen = "/v1/videos/generations"
    error = _assert_error(
        post(gen, json={"model": "sandbox", "prompt": "x", "last_frame": image}),
        400,
        param="last_frame",
    )
    assert "first frame" in error["message"]
    error = _assert_error(
        post(
            gen, json={"model": "runway-gen4.5", "prompt": "x", "image": image, "last_frame": image}
        ),
        400,
        param="last_frame",
    )
    assert "not supported by runway-gen4.5" in error["message"]
    error = _assert_error(
        post(gen, json={"model": "sandbox", "prompt": "x", "reference_images": [image] * 4}),
        400,
        param="reference_images",
    )
    assert "0-3" in error["message"]
    _assert_error(
        post(
            json={"model": "kling-2.0", "prompt": "x", "reference_images": [{"image_url": image}]}
        ),
        400,
        param="reference_images",
    )
