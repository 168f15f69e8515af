"""What a request may ask of an upstream is decided at create, and what vidgate can
bridge it bridges: end to end through a real gateway, against the fakes of OpenAI's
Videos API, Vertex AI and the Gemini API.

- ``sora-2`` (the built-in card) takes what OpenAI's API took: a request outside it is a
  400 at create naming the parameter, in both API shapes, never a job that fails later;
- an input image of another size is fitted to the requested one before OpenAI sees it;
- Veo on Vertex reads JPEG and PNG: a GIF first frame is sent as a PNG;
- Gemini Omni takes the image types its API lists (GIF, BMP, TIFF among them).
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from tests.conftest import ServerProcess, fast_env, make_database
from tests.fakes import gemini, openai_videos, vertex
from tests.fakes.gemini import FakeGemini
from tests.fakes.harness import FakeServer
from tests.fakes.openai_videos import FakeOpenAIVideos
from tests.fakes.vertex import FakeVertex


def _card(provider: str, upstream_model: str) -> dict[str, Any]:
    """A card within what the upstream takes: 8 s at 1280x720."""
    return {
        "owned_by": "bridging-tests",
        "durations": {"allowed": [8]},
        "resolutions": ["720p"],
        "aspect_ratios": ["16:9"],
        "fps": [24],
        "max_n": 1,
        "default_seconds": 8,
        "default_resolution": "720p",
        "default_aspect_ratio": "16:9",
        "default_fps": 24,
        "image_to_video": True,
        "pricing": {"default_per_second": 0.01},
        "deployments": [{"provider": provider, "upstream_model": upstream_model}],
    }


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAIVideos, FakeVertex, FakeGemini, dict[str, str]]]:
    with ExitStack() as stack:
        oa, vx, gm = FakeOpenAIVideos(), FakeVertex(), FakeGemini()
        urls = {
            "openai": stack.enter_context(FakeServer(oa)).url + openai_videos.BASE_PATH,
            "vertex": stack.enter_context(FakeServer(vx)).url,
            "gemini": stack.enter_context(FakeServer(gm)).url,
        }
        yield oa, vx, gm, urls


@pytest.fixture(scope="module")
def gateway(
    fakes: tuple[FakeOpenAIVideos, FakeVertex, FakeGemini, dict[str, str]],
    pg_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, str]]:
    urls = fakes[3]
    document = {
        "deployments": {
            # Named as the built-in sora-2 card refers to it.
            "openai": {**openai_videos.DEPLOYMENT, "base_url": urls["openai"]},
            "vx": {**vertex.DEPLOYMENT, "base_url": urls["vertex"]},
            "gm": {**gemini.DEPLOYMENT, "base_url": urls["gemini"]},
        },
        "models": {
            "b-veo": _card("vx", vertex.UPSTREAM_MODEL),
            "b-omni": _card("gm", gemini.UPSTREAM_MODEL),
        },
    }
    root = tmp_path_factory.mktemp("bridging")
    models_file = root / "models.yaml"
    models_file.write_text(yaml.safe_dump(document))
    srv = ServerProcess(
        data_dir=root / "data",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server), VIDGATE_MODELS_FILE=str(models_file)
        ),
    )
    srv.start()
    try:
        yield srv, srv.create_key("bridging", "--live", "--tenant", "bridging")
    finally:
        srv.stop()


def _post(gateway: tuple[ServerProcess, str], path: str, **kwargs: Any) -> httpx.Response:
    srv, key = gateway
    return httpx.post(
        f"{srv.base_url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs
    )


def _wait(gateway: tuple[ServerProcess, str], job_id: str) -> dict[str, Any]:
    srv, key = gateway
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body: dict[str, Any] = httpx.get(
            f"{srv.base_url}/v1/videos/{job_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{job_id} not finished:\n{srv.log()[-3000:]}")


def _image(fmt: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buf, format=fmt)
    return buf.getvalue()


def _data_url(fmt: str, size: tuple[int, int] = (320, 180)) -> str:
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(_image(fmt, size)).decode()


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/videos", {"seconds": "5"}, "seconds"),
        ("/v1/videos", {"size": "1920x1080"}, "size"),
        ("/v1/videos", {"seed": 7}, "seed"),
        ("/v1/videos", {"negative_prompt": "blur"}, "negative_prompt"),
        ("/v1/videos", {"fps": 30}, "fps"),
        ("/v1/videos/generations", {"duration": 5}, "seconds"),
        ("/v1/videos/generations", {"resolution": "1080p"}, "resolution"),
        ("/v1/videos/generations", {"aspect_ratio": "1:1"}, "aspect_ratio"),
        ("/v1/videos/generations", {"seed": 7}, "seed"),
        ("/v1/videos/generations", {"negative_prompt": "blur"}, "negative_prompt"),
        ("/v1/videos/generations", {"fps": 30}, "fps"),
    ],
)
def test_sora_2_refuses_at_create_what_openai_refused(
    fakes: tuple[FakeOpenAIVideos, FakeVertex, FakeGemini, dict[str, str]],
    gateway: tuple[ServerProcess, str],
    path: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    submissions = fakes[0].submissions
    response = _post(gateway, path, json={"model": "sora-2", "prompt": "a fox", **fields})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.text
    assert fakes[0].submissions == submissions


def test_sora_2_fits_an_image_of_another_size_to_the_requested_one(
    fakes: tuple[FakeOpenAIVideos, FakeVertex, FakeGemini, dict[str, str]],
    gateway: tuple[ServerProcess, str],
) -> None:
    oa = fakes[0]
    response = _post(
        gateway,
        "/v1/videos",
        data={"model": "sora-2", "prompt": "a fox", "seconds": "8", "size": "720x1280"},
        files={"input_reference": ("fox.png", _image("PNG", (640, 360)), "image/png")},
    )
    assert response.status_code == 200, response.text
    body = _wait(gateway, response.json()["id"])
    assert body["status"] == "completed", body
    sent = oa.requests[-1]["input_reference"]
    assert sent["dimensions"] == "720x1280" and sent["content_type"] == "image/png"


def test_veo_gets_a_gif_first_frame_as_png(
    fakes: tuple[FakeOpenAIVideos, FakeVertex, FakeGemini, dict[str, str]],
    gateway: tuple[ServerProcess, str],
) -> None:
    vx = fakes[1]
    response = _post(
        gateway,
        "/v1/videos/generations",
        json={"model": "b-veo", "prompt": "a fox", "image": _data_url("GIF")},
    )
    assert response.status_code == 200, response.text
    assert _wait(gateway, response.json()["id"])["status"] == "completed"
    image = vx.requests[-1]["instances"][0]["image"]
    assert image["mimeType"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(image["bytesBase64Encoded"]))) as sent:
        assert sent.format == "PNG" and sent.size == (320, 180)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_omni_takes_gif_bmp_and_tiff(
    fakes: tuple[FakeOpenAIVideos, FakeVertex, FakeGemini, dict[str, str]],
    gateway: tuple[ServerProcess, str],
    fmt: str,
) -> None:
    gm = fakes[2]
    response = _post(
        gateway,
        "/v1/videos/generations",
        json={"model": "b-omni", "prompt": "a fox", "image": _data_url(fmt)},
    )
    assert response.status_code == 200, response.text
    assert _wait(gateway, response.json()["id"])["status"] == "completed"
    [step] = gm.requests[-1]["input"]
    assert step["type"] == "user_input"
    assert step["content"][1]["mime_type"] == f"image/{fmt.lower()}"
