"""``vidgate check``, ``vidgate serve`` and ``vidgate models`` on a configuration, run as
real subprocesses against fake providers on loopback: a wrong credential is reported
before any job is sent, a misconfigured models file stops the gateway at its line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.conftest import cli
from tests.fakes import luma, seedance
from tests.fakes.harness import FakeServer

pytestmark = pytest.mark.slow

# No provider variable of the machine running the tests may leak into the gateway's.
CLEAN = {
    var: ""
    for var in (
        "LUMAAI_API_KEY",
        "ARK_API_KEY",
        "GEMINI_API_KEY",
        "RUNWAYML_API_SECRET",
        "KLING_ACCESS_KEY",
        "KLING_SECRET_KEY",
        "REPLICATE_API_TOKEN",
        "FAL_KEY",
        "MINIMAX_API_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "OPENAI_API_KEY",
    )
}


@pytest.fixture
def fake_luma() -> Iterator[FakeServer]:
    with FakeServer(luma.FakeLuma()) as server:
        yield server


def _env(tmp_path: Path, document: object, **extra: str) -> dict[str, str]:
    path = tmp_path / "models.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return {
        **CLEAN,
        "VIDGATE_MODELS_FILE": str(path),
        "VIDGATE_DATA_DIR": str(tmp_path / "d"),
        **extra,
    }


def test_check_probes_each_deployment_and_names_the_bad_credential(
    fake_luma: FakeServer, tmp_path: Path
) -> None:
    base = {"provider": "luma", "base_url": fake_luma.url}  # the API's prefix is added
    env = _env(
        tmp_path,
        {
            "deployments": {
                "luma-good": {**base, "credentials": {"api_key": luma.API_KEY}},
                "luma-bad": {**base, "credentials": {"api_key": "not-the-key"}},
            }
        },
    )
    result = cli("check", env=env, check=False)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    good = next(line for line in lines if line.startswith("luma-good"))
    bad = next(line for line in lines if line.startswith("luma-bad"))
    assert "ok: reachable, credentials accepted" in good
    assert "AUTH FAILED" in bad and "Invalid API key" in bad
    assert "not-the-key" not in result.stdout + result.stderr
    # Nothing was sent but the probes, and no database was started.
    assert fake_luma.fake.create_calls == 0
    assert not (tmp_path / "d" / "pg").exists()

    env_ok = _env(
        tmp_path, {"deployments": {"luma-good": {**base, "credentials": {"api_key": luma.API_KEY}}}}
    )
    fine = cli("check", env=env_ok, check=False)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "0 configuration error(s), 1 deployment(s), 0 not working" in fine.stdout


def test_a_misconfigured_models_file_stops_check_and_serve_at_its_line(tmp_path: Path) -> None:
    text = """deployments:
  ark:
    provider: seedance
    credentials: {api_key: "${ARK_KEY_FOR_TEST}"}
    options:
      watermrk: true
      execution_expires_after: soon
"""
    env = _env(tmp_path, text, ARK_KEY_FOR_TEST=seedance.API_KEY)
    models_file = env["VIDGATE_MODELS_FILE"]
    checked = cli("check", env=env, check=False)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert (
        f"{models_file}:6: deployments.ark.options.watermrk: unknown option; accepted: watermark,"
        in checked.stdout
    )
    assert f"{models_file}:7: deployments.ark.options.execution_expires_after:" in checked.stdout

    served = cli("serve", "--port", "1", env=env, check=False, timeout=30)
    assert served.returncode == 2, served.stdout + served.stderr
    assert f"{models_file}:6: deployments.ark.options.watermrk: unknown option" in served.stderr
    assert "vidgate listening" not in served.stdout
    assert not (tmp_path / "d" / "pg").exists()


def test_a_deployment_the_environment_makes_badly_is_reported_not_fatal(tmp_path: Path) -> None:
    """A stray GOOGLE_APPLICATION_CREDENTIALS leaves the vertex deployment out: check
    says so (exit 1), and ``vidgate models`` shows it as the API does, not configured."""
    card = {
        "owned_by": "us",
        "durations": {"allowed": [8]},
        "resolutions": ["720p"],
        "aspect_ratios": ["16:9"],
        "fps": [24],
        "default_seconds": 8,
        "default_resolution": "720p",
        "default_aspect_ratio": "16:9",
        "default_fps": 24,
        "pricing": {"default_per_second": 0.1},
        "deployments": [{"provider": "vertex", "upstream_model": "veo-3.1-generate-001"}],
    }
    env = _env(
        tmp_path,
        {"models": {"house-veo": card}},
        GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "missing-key.json"),
        GOOGLE_CLOUD_PROJECT="p",
    )
    checked = cli("check", env=env, check=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "vertex  vertex  INVALID: left out:" in checked.stdout
    listed = cli("models", env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "vertex (not configured)" in listed.stdout.replace("\n", " "), listed.stdout
