"""``GET /v1/models``: the catalogue with limits and prices; operator overrides."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from tests.conftest import ServerProcess, fast_env, make_database
from tests.fakes.fal import FAL_KEY, FakeFal
from tests.fakes.harness import FakeServer


def test_catalogue_lists_limits_and_prices(server: ServerProcess, key_a: str) -> None:
    response = httpx.get(
        f"{server.base_url}/v1/models", headers={"Authorization": f"Bearer {key_a}"}
    )
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    assert {"sandbox", "sora-2", "veo-3.1", "kling-2.0", "luma-ray-2", "hailuo-2.3"} <= set(models)
    sora = models["sora-2"]["capabilities"]
    # What OpenAI's API took, not 1-60 s up to 1080p.
    assert sora["durations"] == {"allowed": [4, 8, 12]}
    assert sora["resolutions"] == ["720p"]
    assert sora["aspect_ratios"] == ["16:9", "9:16"]
    assert sora["fps"] == [24]
    assert (
        sora["remix"] is True and sora["image_to_video"] is True and sora["text_to_video"] is True
    )
    assert models["veo-3.1"]["capabilities"]["resolutions"] == ["720p", "1080p", "4K"]
    assert models["veo-3.1"]["capabilities"]["durations"] == {"allowed": [4, 6, 8]}
    assert models["kling-2.0"]["capabilities"]["durations"]["allowed"] == [5, 10]
    assert models["kling-2.0"]["capabilities"]["extend"] is True
    assert models["luma-ray-2"]["capabilities"]["aspect_ratios"] == [
        "16:9",
        "9:16",
        "1:1",
        "4:3",
        "3:4",
        "21:9",
        "9:21",
    ]
    assert models["sora-2"]["pricing"]["per_second"] == {"720p": 0.1}
    # A model without a list price says so.
    assert models["kling-2.6"]["pricing"] is None
    one = httpx.get(
        f"{server.base_url}/v1/models/kling-2.0", headers={"Authorization": f"Bearer {key_a}"}
    )
    assert one.status_code == 200 and one.json()["id"] == "kling-2.0"


def test_an_alias_is_listed_and_echoed(server: ServerProcess, key_a: str) -> None:
    """veo-3 (retired by Google) reaches veo-3.1; clients see it in the list, and a job
    made through it reports the name they sent."""
    headers = {"Authorization": f"Bearer {key_a}"}
    listed = httpx.get(f"{server.base_url}/v1/models", headers=headers).json()["data"]
    ids = [m["id"] for m in listed]
    assert ids.index("veo-3") == ids.index("veo-3.1") + 1
    alias = listed[ids.index("veo-3")]
    card = listed[ids.index("veo-3.1")]
    assert alias["alias_of"] == "veo-3.1" and card["aliases"] == ["veo-3"]
    assert alias["capabilities"] == card["capabilities"] and alias["pricing"] == card["pricing"]
    one = httpx.get(f"{server.base_url}/v1/models/veo-3", headers=headers).json()
    assert (one["id"], one["alias_of"]) == ("veo-3", "veo-3.1")

    client = OpenAI(base_url=f"{server.base_url}/v1", api_key=key_a)
    video = client.videos.create(model="veo-3", prompt="a fox", seconds="4")  # type: ignore[arg-type]
    assert video.model == "veo-3"
    assert client.videos.retrieve(video.id).model == "veo-3"
    # The alias's limits are the card's: Veo takes 4, 6 or 8 s.
    refused = httpx.post(
        f"{server.base_url}/v1/videos",
        headers=headers,
        json={"model": "veo-3", "prompt": "a fox", "seconds": 5},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "seconds"
    assert "4, 6, 8" in refused.json()["error"]["message"]


def test_operator_yaml_overrides_the_catalogue(pg_server: str, tmp_path: Path) -> None:
    overrides = tmp_path / "models.yaml"
    overrides.write_text(
        """
upstreams:
  # A card may not offer more than its deployments take: say the upstream takes 15 s.
  kling:
    "kling-v2-master": {kinds: [generate, extend], durations: {allowed: [5, 10, 15]}}
models:
  kling-2.0:
    durations: {allowed: [5, 10, 15]}
  house-model:
    owned_by: us
    durations: {min: 1, max: 8}
    resolutions: ["720p"]
    aspect_ratios: ["16:9"]
    fps: [24]
    default_seconds: 4
    default_resolution: "720p"
    default_aspect_ratio: "16:9"
    default_fps: 24
    pricing: {default_per_second: 0.01}
remove: [luma-ray-2]
"""
    )
    srv = ServerProcess(
        data_dir=tmp_path / "data",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server), VIDGATE_MODELS_FILE=str(overrides)
        ),
    )
    srv.start()
    try:
        key = srv.create_key("ops")
        headers = {"Authorization": f"Bearer {key}"}
        ids = {
            m["id"] for m in httpx.get(f"{srv.base_url}/v1/models", headers=headers).json()["data"]
        }
        assert "house-model" in ids and "luma-ray-2" not in ids
        created = httpx.post(
            f"{srv.base_url}/v1/videos/generations",
            headers=headers,
            json={"model": "kling-2.0", "prompt": "longer", "duration": 15},
        )
        assert created.status_code == 200, created.text
        # One listed point (720p, 5 s, 0.05): the price is proportional past it.
        assert created.json()["estimated_cost"] == pytest.approx(0.15)
        house = httpx.post(
            f"{srv.base_url}/v1/videos/generations",
            headers=headers,
            json={"model": "house-model", "prompt": "x", "duration": 8},
        )
        assert house.status_code == 200 and house.json()["estimated_cost"] == pytest.approx(0.08)
    finally:
        srv.stop()


def test_a_two_line_card_runs_on_fal(pg_server: str, tmp_path: Path) -> None:
    """An operator's card needs only its deployment: its limits come from the fal
    endpoint's data, it has no list price (null estimate), and a live key's job runs
    end to end against the fake fal queue."""
    with FakeServer(FakeFal()) as fal:
        models = tmp_path / "models.yaml"
        models.write_text(
            f"""
deployments:
  fal: {{provider: fal, base_url: "{fal.url}", credentials: {{api_key: "{FAL_KEY}"}},
        options: {{poll_s: 0.05}}}}
models:
  my-kling:
    deployments: [{{provider: fal, upstream_model: fal-ai/kling-video/v2.1/master/text-to-video}}]
"""
        )
        srv = ServerProcess(
            data_dir=tmp_path / "data",
            env=fast_env(
                VIDGATE_DATABASE_URL=make_database(pg_server), VIDGATE_MODELS_FILE=str(models)
            ),
        )
        srv.start()
        try:
            key = srv.create_key("ops", "--live")
            headers = {"Authorization": f"Bearer {key}"}
            card = httpx.get(f"{srv.base_url}/v1/models/my-kling", headers=headers).json()
            assert card["capabilities"]["durations"] == {"allowed": [5, 10]}
            # Through its /image-to-video sibling, which the fal adapter swaps in.
            assert card["capabilities"]["image_to_video"] is True
            assert card["pricing"] is None
            refused = httpx.post(
                f"{srv.base_url}/v1/videos/generations",
                headers=headers,
                json={"model": "my-kling", "prompt": "x", "duration": 7},
            )
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "seconds"
            created = httpx.post(
                f"{srv.base_url}/v1/videos/generations",
                headers=headers,
                json={"model": "my-kling", "prompt": "a fox", "duration": 10},
            )
            assert created.status_code == 200, created.text
            assert created.json()["estimated_cost"] is None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = httpx.get(
                    f"{srv.base_url}/v1/videos/generations/{created.json()['id']}",
                    headers=headers,
                ).json()
                if done["status"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            assert done["status"] == "completed", (done, srv.log()[-3000:])
            assert done["estimated_cost"] is None and done["cost"] is None
            assert httpx.get(done["data"][0]["url"]).status_code == 200
            assert fal.fake.submissions == 1
        finally:
            srv.stop()
