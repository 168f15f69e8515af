"""Providers switched on from the environment, end to end: each default deployment made
from a credential variable goes where its base-URL variable points (a fake of the
provider on loopback), and deployments serve models by provider type, whatever their
name."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
import yaml
from tests.conftest import ServerProcess, cli, fast_env, make_database
from tests.fakes import fal, kling, luma, minimax, openai_videos
from tests.fakes.harness import FakeServer, FakeUpstream

from vidgate.providers.registry import ENV_DEFAULTS


def _card(adapter: str, module: Any) -> dict[str, Any]:
    """An operator's card served by every deployment of ``adapter``."""
    return {
        # Its limits are what the upstream model takes (docs/catalogue.md).
        "owned_by": "env-tests",
        "default_seconds": module.SECONDS,
        "pricing": {"default_per_second": 0.01},
        "deployments": [{"provider": adapter, "upstream_model": module.UPSTREAM_MODEL}],
    }


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, tuple[FakeUpstream, str]]]:
    """Each fake and the URL it is served at."""
    with ExitStack() as stack:
        found: dict[str, tuple[FakeUpstream, str]] = {}
        for name, fake in (
            ("openai", openai_videos.FakeOpenAIVideos()),
            ("kling", kling.FakeKling()),
            ("luma", luma.FakeLuma()),
            ("fal", fal.FakeFal()),
            ("minimax", minimax.FakeMiniMax()),
        ):
            found[name] = (fake, stack.enter_context(FakeServer(fake)).url)
        yield found


@pytest.fixture(scope="module")
def gateway(
    fakes: dict[str, tuple[FakeUpstream, str]],
    pg_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, str]]:
    root = tmp_path_factory.mktemp("provider-env")
    # No provider variable of the surrounding environment may leak in ("" is unset).
    env = {
        var: ""
        for wanted in ENV_DEFAULTS.values()
        for var in [*wanted.credentials.values(), *wanted.options.values(), wanted.base_url]
        if var
    }
    env.update(
        {
            "OPENAI_API_KEY": openai_videos.API_KEY,
            "OPENAI_BASE_URL": fakes["openai"][1] + openai_videos.BASE_PATH,
            "LUMAAI_API_KEY": luma.API_KEY,
            "LUMAAI_BASE_URL": fakes["luma"][1] + luma.BASE_PATH,
            "FAL_KEY": fal.FAL_KEY,
            # fal-client's variable names a host; a URL with a scheme is taken as it is.
            "FAL_QUEUE_RUN_HOST": fakes["fal"][1],
            "MINIMAX_API_KEY": minimax.API_KEY,
            "MINIMAX_BASE_URL": fakes["minimax"][1],
        }
    )
    models = root / "models.yaml"
    models.write_text(
        yaml.safe_dump(
            {
                # Named as the operator likes: it serves the built-in Kling models.
                "deployments": {"house-kling": {**kling.DEPLOYMENT, "base_url": fakes["kling"][1]}},
                "models": {
                    "env-luma": _card("luma", luma),
                    "env-fal": _card("fal", fal),
                    "env-minimax": _card("minimax", minimax),
                },
            }
        )
    )
    srv = ServerProcess(
        data_dir=root / "data",
        env=fast_env(
            VIDGATE_DATABASE_URL=make_database(pg_server),
            VIDGATE_MODELS_FILE=str(models),
            **env,
        ),
    )
    srv.start()
    try:
        yield srv, srv.create_key("env", "--live", "--tenant", "env")
    finally:
        srv.stop()


def _create(gateway: tuple[ServerProcess, str], model: str) -> str:
    srv, key = gateway
    response = httpx.post(
        f"{srv.base_url}/v1/videos/generations",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "prompt": f"{model} from the environment"},
        timeout=30,
    )
    assert response.status_code == 200, f"{model}: {response.text}"
    return str(response.json()["id"])


def _wait(gateway: tuple[ServerProcess, str], jobs: dict[str, str]) -> dict[str, Any]:
    srv, key = gateway
    deadline = time.monotonic() + 60
    done: dict[str, Any] = {}
    while time.monotonic() < deadline and len(done) < len(jobs):
        for model, job_id in jobs.items():
            body = httpx.get(
                f"{srv.base_url}/v1/videos/generations/{job_id}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ).json()
            if body["status"] in ("completed", "failed"):
                done[model] = body
        time.sleep(0.25)
    assert len(done) == len(jobs), f"unfinished: {set(jobs) - set(done)}\n{srv.log()[-3000:]}"
    return done


def test_default_deployments_go_where_their_base_url_variables_point(
    fakes: dict[str, tuple[FakeUpstream, str]], gateway: tuple[ServerProcess, str]
) -> None:
    served_by = {
        "sora-2": "openai",  # OPENAI_API_KEY + OPENAI_BASE_URL
        "kling-2.0": "kling",  # the custom-named house-kling
        "env-luma": "luma",
        "env-fal": "fal",
        "env-minimax": "minimax",
    }
    jobs = {model: _create(gateway, model) for model in served_by}
    for model, body in _wait(gateway, jobs).items():
        assert body["status"] == "completed", f"{model}: {body.get('error')}"
        assert fakes[served_by[model]][0].submissions == 1, model


def test_models_list_each_deployment_of_an_adapter_by_its_name(
    gateway: tuple[ServerProcess, str],
) -> None:
    srv, key = gateway
    listed = httpx.get(
        f"{srv.base_url}/v1/models/kling-2.0", headers={"Authorization": f"Bearer {key}"}
    ).json()["deployments"]
    configured = [d["provider"] for d in listed if d["configured"]]
    # The card's `kling` entry is listed as the deployment that serves it; fal's as the
    # FAL_KEY default deployment, named after its adapter.
    assert "house-kling" in configured and "fal" in configured
    assert "kling" not in {d["provider"] for d in listed}
    sora = httpx.get(
        f"{srv.base_url}/v1/models/sora-2", headers={"Authorization": f"Bearer {key}"}
    ).json()["deployments"]
    assert [(d["provider"], d["configured"]) for d in sora] == [("openai_videos", True)]


def test_cli_models_lists_the_deployments_serving_each_model(
    gateway: tuple[ServerProcess, str],
) -> None:
    srv, _ = gateway
    result = cli("models", "--data-dir", str(srv.data_dir), env={**srv.env, "COLUMNS": "400"})
    rows = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│") and line.count("│") > 2
    }
    assert "house-kling (healthy)" in rows["kling-2.0"], result.stdout
    assert "openai_videos (healthy)" in rows["sora-2"], result.stdout
