"""``providers/check.py``: the configuration as ``serve`` loads it, each mistake at its
place, each deployment's probe, and the exit status ``vidgate check`` answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakes import kling, runway
from tests.fakes.harness import FakeServer
from vidgate.config import Settings
from vidgate.providers.check import check_configuration


@pytest.fixture
def fake_runway() -> Iterator[FakeServer]:
    with FakeServer(runway.FakeRunway()) as server:
        yield server


def _settings(tmp_path: Path, document: object) -> Settings:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(document))
    return Settings(data_dir=tmp_path / "data", models_file=path)


async def test_unknown_provider_and_credential_are_named_with_what_is_accepted(
    tmp_path: Path,
) -> None:
    settings = _settings(
        tmp_path,
        {
            "deployments": {
                "k": {"provider": "klingg", "credentials": {"api_key": "x"}},
                "k2": {"provider": "kling", "credentials": {"api_key": "x"}},
            }
        },
    )
    report = await check_configuration(settings, probe=True, env={})
    text = "\n".join(map(str, report.errors))
    assert f"{settings.models_file}:5: deployments.k.provider: unknown provider; accepted:" in text
    assert "fal, gemini, kling" in text
    assert f"{settings.models_file}:8: deployments.k2.credentials.api_key: unknown credential" in (
        text
    )
    assert "accepted: access_key, secret_key" in text
    assert f"{settings.models_file}:7: deployments.k2.credentials.access_key: is required" in text
    assert report.exit_status == 2


async def test_probes_sort_answers_and_unset_variables_are_reported(
    fake_runway: FakeServer, tmp_path: Path
) -> None:
    base = {"provider": "runway", "base_url": fake_runway.url + "/v1"}
    settings = _settings(
        tmp_path,
        {
            "deployments": {
                "good": {**base, "credentials": {"api_key": runway.API_KEY}},
                "refused": {**base, "credentials": {"api_key": "nope"}},
                "down": {**base, "base_url": "http://127.0.0.1:9", "credentials": {"api_key": "x"}},
                "later": {**base, "credentials": {"api_key": "${RUNWAY_LATER_KEY}"}},
            }
        },
    )
    report = await check_configuration(settings, probe=True, env={})
    states = {d.name: d.state for d in report.deployments}
    assert states == {
        "good": "ok",
        "refused": "auth_failed",
        "down": "unreachable",
        "later": "skipped",
    }
    later = next(d for d in report.deployments if d.name == "later")
    assert later.detail == "not configured: set RUNWAY_LATER_KEY"
    assert report.errors == [] and report.exit_status == 1
    # Without probes (serve's start-up), a valid configuration is all ok but the unset one.
    quiet = await check_configuration(settings, probe=False, env={})
    assert {d.name: d.state for d in quiet.deployments}["refused"] == "ok"


async def test_an_environment_deployment_its_adapter_refuses_is_left_out(tmp_path: Path) -> None:
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "none.json")}
    report = await check_configuration(Settings(data_dir=tmp_path), probe=True, env=env)
    (vertex,) = report.deployments
    assert (vertex.name, vertex.state) == ("vertex", "invalid")
    assert "options.project: is required (set GOOGLE_CLOUD_PROJECT)" in vertex.detail
    assert report.errors == [] and report.exit_status == 1


async def test_all_well_is_exit_status_zero(tmp_path: Path) -> None:
    with FakeServer(kling.FakeKling()) as server:
        settings = _settings(
            tmp_path,
            {
                "deployments": {
                    "kl": {
                        "provider": "kling",
                        "base_url": server.url,
                        "credentials": {
                            "access_key": kling.ACCESS_KEY,
                            "secret_key": kling.SECRET_KEY,
                        },
                    }
                }
            },
        )
        report = await check_configuration(settings, probe=True, env={})
    assert [(d.name, d.state) for d in report.deployments] == [("kl", "ok")]
    assert report.exit_status == 0
