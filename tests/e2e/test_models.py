"""``GET /v1/models``: the catalogue with limits and prices; operator overrides."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.conftest import ServerProcess, fast_env, make_database


def test_catalogue_lists_limits_and_prices(server: ServerProcess, key_a: str) -> None:
    response = httpx.get(
        f"{server.base_url}/v1/models", headers={"Authorization": f"Bearer {key_a}"}
    )
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    assert {"sandbox", "sora-2", "veo-3", "kling-2.0", "luma-ray-2"} <= set(models)
    sora = models["sora-2"]["capabilities"]
    assert sora["durations"]["max"] == 60
    assert sora["resolutions"] == ["480p", "720p", "1080p"]
    assert sora["aspect_ratios"] == ["16:9", "9:16", "1:1"]
    assert sora["fps"] == [24, 30]
    assert (
        sora["remix"] is True and sora["image_to_video"] is True and sora["text_to_video"] is True
    )
    assert models["veo-3"]["capabilities"]["resolutions"] == ["720p", "1080p", "4K"]
    assert models["kling-2.0"]["capabilities"]["durations"]["allowed"] == [5, 10]
    assert models["luma-ray-2"]["capabilities"]["aspect_ratios"] == [
        "16:9",
        "9:16",
        "1:1",
        "4:3",
        "3:4",
        "21:9",
        "9:21",
    ]
    prices = models["sora-2"]["pricing"]["points"]
    assert prices["1080p"] == [[5, 0.3], [10, 0.5], [30, 1.2], [60, 2.0]]
    one = httpx.get(
        f"{server.base_url}/v1/models/kling-2.0", headers={"Authorization": f"Bearer {key_a}"}
    )
    assert one.status_code == 200 and one.json()["id"] == "kling-2.0"


def test_operator_yaml_overrides_the_catalogue(pg_server: str, tmp_path: Path) -> None:
    overrides = tmp_path / "models.yaml"
    overrides.write_text(
        """
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
