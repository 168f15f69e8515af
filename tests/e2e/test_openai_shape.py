"""The OpenAI Videos shape, driven by the official ``openai`` SDK over loopback HTTP."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from tests.conftest import ServerProcess, png_bytes, probe


@pytest.fixture(scope="module")
def client(server: ServerProcess, key_a: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key_a, max_retries=0)


def _wait(client: openai.OpenAI, video_id: str, timeout: float = 60) -> openai.types.Video:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video = client.videos.retrieve(video_id)
        if video.status in ("completed", "failed"):
            return video
        time.sleep(0.2)
    raise AssertionError(f"{video_id} did not finish")


def test_create_and_poll_then_download(client: openai.OpenAI, tmp_path: Path) -> None:
    video = client.videos.create_and_poll(
        model="sandbox",
        prompt="a lighthouse at dusk",
        seconds="2",
        size="320x240",
        poll_interval_ms=200,
    )
    assert video.status == "completed", video.error
    assert video.progress == 100
    assert video.seconds == "2" and video.size == "320x240"
    assert video.completed_at is not None and video.completed_at >= video.created_at
    content = client.videos.download_content(video.id)
    info = probe(content.read(), tmp_path)
    assert (info.width, info.height) == (320, 240)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and info.faststart
    assert info.fps == pytest.approx(24)
    assert info.duration == pytest.approx(2.0, abs=0.05)


def test_catalogue_model_defaults_follow_the_model(client: openai.OpenAI, tmp_path: Path) -> None:
    # The SDK sends seconds and size as strings; kling-2.0 allows 5 or 10 seconds.
    video = client.videos.create_and_poll(
        model="kling-2.0", prompt="waves", seconds="5", size="720x1280", poll_interval_ms=200
    )
    assert video.status == "completed", video.error
    info = probe(client.videos.download_content(video.id).read(), tmp_path)
    assert (info.width, info.height) == (720, 1280)
    assert info.duration == pytest.approx(5.0, abs=0.05)
    assert video.model_extra is not None
    assert video.model_extra["estimated_cost"] == pytest.approx(0.05)
    # Test keys are never billed: the estimate shows what a live key would pay.
    assert video.model_extra["cost"] == 0


def test_extra_body_fields_are_honoured(client: openai.OpenAI, tmp_path: Path) -> None:
    video = client.videos.create_and_poll(
        model="sandbox",
        prompt="a slow pan over hills",
        seconds="1",
        poll_interval_ms=200,
        extra_body={
            "resolution": "360p",
            "aspect_ratio": "1:1",
            "fps": 12,
            "seed": 7,
            "negative_prompt": "blur",
            "metadata": {"customer": "c-42"},
        },
    )
    assert video.status == "completed", video.error
    extra = video.model_extra or {}
    assert video.size == "360x360"
    assert extra["fps"] == 12 and extra["seed"] == 7
    assert extra["metadata"] == {"customer": "c-42"}
    info = probe(client.videos.download_content(video.id).read(), tmp_path)
    assert (info.width, info.height, round(info.fps)) == (360, 360, 12)


def test_input_reference_file_part_becomes_the_background(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(png_bytes(64, 48, (255, 0, 0)))
    video = client.videos.create_and_poll(
        model="sandbox",
        prompt="image to video",
        seconds="1",
        size="320x240",
        input_reference=image,
        poll_interval_ms=200,
    )
    assert video.status == "completed", video.error
    import av

    path = tmp_path / "i2v.mp4"
    path.write_bytes(client.videos.download_content(video.id).read())
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    # The band between the text panels shows the input image. The disc (a sixth of
    # the height, at a seeded place) and the counter cover a small part of it, so
    # the median colour of the band is the image's, wherever they happen to be.
    r, g, b = np.median(frame[40:200, :, :].reshape(-1, 3), axis=0)
    assert r > 180 and g < 80 and b < 80, (r, g, b)


def test_input_reference_image_url_as_json(
    server: ServerProcess, key_a: str, client: openai.OpenAI
) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    response = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {key_a}"},
        json={
            "model": "sandbox",
            "prompt": "from a data url",
            "seconds": 1,
            "size": "320x240",
            "input_reference": {"image_url": data_url},
        },
    )
    assert response.status_code == 200, response.text
    assert _wait(client, response.json()["id"]).status == "completed"


def test_seconds_may_be_a_number(server: ServerProcess, key_a: str) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {key_a}"},
        json={"model": "sandbox", "prompt": "numbers", "seconds": 3.0, "size": "320x240"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["seconds"] == "3"


def test_retrieve_sets_poll_after_header(client: openai.OpenAI) -> None:
    video = client.videos.create(
        model="sandbox",
        prompt="slow",
        seconds="1",
        size="320x240",
        extra_body={"metadata": {"sandbox_latency_ms": "3000"}},
    )
    raw = client.videos.with_raw_response.retrieve(video.id)
    assert raw.headers["openai-poll-after-ms"] == "1000"
    assert raw.parse().status in ("queued", "in_progress")


def test_list_paginates_with_after_limit_order(
    client: openai.OpenAI, server: ServerProcess
) -> None:
    key = server.create_key("pager", "--tenant", "pager")
    pager = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
    ids = [
        pager.videos.create(model="sandbox", prompt=f"p{i}", seconds="1", size="320x240").id
        for i in range(5)
    ]
    first = pager.videos.list(limit=2, order="asc")
    assert [v.id for v in first.data] == ids[:2]
    assert first.has_more is True
    second = pager.videos.list(limit=2, order="asc", after=first.data[-1].id)
    assert [v.id for v in second.data] == ids[2:4]
    newest_first = pager.videos.list(limit=10, order="desc")
    assert [v.id for v in newest_first.data] == list(reversed(ids))
    assert newest_first.has_more is False
    # The SDK's auto-pagination walks every page with `after`.
    assert [v.id for v in pager.videos.list(limit=2, order="asc")] == ids


def test_thumbnail_and_spritesheet_variants(client: openai.OpenAI) -> None:
    video = client.videos.create_and_poll(
        model="sandbox", prompt="previews", seconds="2", size="320x240", poll_interval_ms=200
    )
    assert video.status == "completed"
    thumb = client.videos.download_content(video.id, variant="thumbnail").read()
    assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"
    sprites = client.videos.download_content(video.id, variant="spritesheet").read()
    assert sprites[:3] == b"\xff\xd8\xff"


def test_remix_of_a_completed_video(client: openai.OpenAI, tmp_path: Path) -> None:
    source = client.videos.create_and_poll(
        model="sandbox", prompt="original", seconds="1", size="320x240", poll_interval_ms=200
    )
    remix = client.videos.remix(source.id, prompt="now in winter")
    assert remix.remixed_from_video_id == source.id
    done = _wait(client, remix.id)
    assert done.status == "completed", done.error
    assert done.size == "320x240" and done.seconds == "1"
    info = probe(client.videos.download_content(remix.id).read(), tmp_path)
    assert (info.width, info.height) == (320, 240)


def test_remix_of_an_unfinished_video_is_a_400(client: openai.OpenAI) -> None:
    running = client.videos.create(
        model="sandbox",
        prompt="busy",
        seconds="1",
        size="320x240",
        extra_body={"metadata": {"sandbox_latency_ms": "5000"}},
    )
    with pytest.raises(openai.BadRequestError) as exc:
        client.videos.remix(running.id, prompt="too soon")
    assert exc.value.body["code"] == "video_not_ready"  # type: ignore[index]


def test_extension_appends_to_the_source(
    server: ServerProcess, key_a: str, client: openai.OpenAI, tmp_path: Path
) -> None:
    source = client.videos.create_and_poll(
        model="sandbox", prompt="base", seconds="2", size="320x240", poll_interval_ms=200
    )
    response = httpx.post(
        f"{server.base_url}/v1/videos/extensions",
        headers={"Authorization": f"Bearer {key_a}"},
        json={"prompt": "and then", "seconds": 1, "video": {"id": source.id}},
    )
    assert response.status_code == 200, response.text
    done = _wait(client, response.json()["id"])
    assert done.status == "completed", done.error
    assert done.seconds == "3"
    info = probe(client.videos.download_content(done.id).read(), tmp_path)
    assert info.duration == pytest.approx(3.0, abs=0.1)


def test_delete_cancels_and_hides(client: openai.OpenAI) -> None:
    video = client.videos.create(
        model="sandbox",
        prompt="to delete",
        seconds="1",
        size="320x240",
        extra_body={"metadata": {"sandbox_latency_ms": "4000"}},
    )
    deleted = client.videos.delete(video.id)
    assert deleted.deleted is True and deleted.id == video.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    assert video.id not in [v.id for v in client.videos.list(limit=100)]


def test_failure_injected_upstream_is_reported(client: openai.OpenAI) -> None:
    video = client.videos.create_and_poll(
        model="sandbox",
        prompt="refused",
        seconds="1",
        size="320x240",
        poll_interval_ms=200,
        extra_body={"metadata": {"sandbox_fail": "content_policy_violation"}},
    )
    assert video.status == "failed"
    assert video.error is not None and video.error.code == "content_policy_violation"
    assert (video.model_extra or {})["cost"] == 0
