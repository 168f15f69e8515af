"""Default deployments from the environment, as the registry declares them."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidgate.core.deployments import EnvDefaults, load_deployments
from vidgate.providers.registry import ADAPTERS, ENV_DEFAULTS


def test_each_set_provider_gets_its_default_deployment() -> None:
    env = {
        "LUMAAI_API_KEY": "luma-secret",
        "KLING_ACCESS_KEY": "ak",  # the secret key is missing: no kling deployment
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
        "GOOGLE_CLOUD_PROJECT": "proj",
        "FAL_KEY": "",  # set but empty counts as unset
    }
    deployments, skipped = load_deployments(None, ENV_DEFAULTS, env)
    assert sorted(deployments) == ["luma", "vertex"] and skipped == {}
    luma = deployments["luma"]
    assert luma.provider == "luma" and luma.secret("api_key") == "luma-secret"
    vertex = deployments["vertex"]
    assert vertex.secret("service_account_file") == "/keys/sa.json"
    assert vertex.options == {"project": "proj"}


def test_the_registry_is_the_one_list_of_providers() -> None:
    assert set(ENV_DEFAULTS) <= set(ADAPTERS)
    # YAML-only adapters have no variables of their own: the task shape has no usual
    # variables (every router names its own).
    assert {"task_api"} == set(ADAPTERS) - set(ENV_DEFAULTS)


def test_defaults_are_handed_in_not_known_to_core() -> None:
    twelfth = {"acme": EnvDefaults({"token": "ACME_TOKEN"}, {"region": "ACME_REGION"})}
    deployments, _ = load_deployments(None, twelfth, {"ACME_TOKEN": "t", "LUMAAI_API_KEY": "x"})
    assert list(deployments) == ["acme"] and deployments["acme"].options == {}
    with pytest.raises(KeyError):
        deployments["acme"].secret("api_key")


# The official SDK's own variable where it has one, else <PROVIDER>_BASE_URL: these
# spellings are what operators set, so they are checked letter for letter.
BASE_URL_VARIABLES = {
    "openai_videos": "OPENAI_BASE_URL",
    "vertex": "GOOGLE_VERTEX_BASE_URL",  # google-genai
    "gemini": "GOOGLE_GEMINI_BASE_URL",  # google-genai
    "luma": "LUMAAI_BASE_URL",
    "runway": "RUNWAYML_BASE_URL",
    "kling": "KLING_BASE_URL",
    "replicate": "REPLICATE_BASE_URL",
    "fal": "FAL_QUEUE_RUN_HOST",  # fal-client: a host, reached over https
    "minimax": "MINIMAX_BASE_URL",
    "seedance": "ARK_BASE_URL",
    "dashscope": "DASHSCOPE_HTTP_BASE_URL",  # dashscope's (with /api/v1)
}


def _credentials(provider: str) -> dict[str, str]:
    return {var: f"{var.lower()}-value" for var in ENV_DEFAULTS[provider].credentials.values()}


@pytest.mark.parametrize("provider", sorted(ENV_DEFAULTS))
def test_every_default_deployment_honours_a_base_url_variable(provider: str) -> None:
    variable = ENV_DEFAULTS[provider].base_url
    assert variable is not None, f"{provider} has no base-URL variable"
    if provider in BASE_URL_VARIABLES:
        assert variable == BASE_URL_VARIABLES[provider]
    env = {**_credentials(provider), variable: "http://127.0.0.1:8123/prefix"}
    deployments, _ = load_deployments(None, ENV_DEFAULTS, env)
    assert deployments[provider].base_url == "http://127.0.0.1:8123/prefix"
    # Without the variable the adapter's own default applies (or, where the provider's
    # own service is gone, there is no default deployment at all).
    deployments, _ = load_deployments(None, ENV_DEFAULTS, _credentials(provider))
    if ENV_DEFAULTS[provider].base_url_required:
        assert provider not in deployments
    else:
        assert deployments[provider].base_url is None


def test_a_host_without_a_scheme_is_reached_over_https() -> None:
    """fal-client's FAL_QUEUE_RUN_HOST names a host (the SDK puts https:// before it)."""
    env = {"FAL_KEY": "k", "FAL_QUEUE_RUN_HOST": "queue.fal.example/run"}
    deployments, _ = load_deployments(None, ENV_DEFAULTS, env)
    assert deployments["fal"].base_url == "https://queue.fal.example/run"


def test_openai_needs_its_base_url_as_openai_is_closed() -> None:
    """OPENAI_API_KEY is often set for OpenAI's other APIs; OpenAI's Videos API is shut
    down, so the key alone makes no deployment: sora-2 stays a 503, not a failed job."""
    deployments, skipped = load_deployments(None, ENV_DEFAULTS, {"OPENAI_API_KEY": "sk-1"})
    assert "openai_videos" not in deployments and skipped == {}
    env = {"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "https://videos.example/v1"}
    deployments, _ = load_deployments(None, ENV_DEFAULTS, env)
    openai = deployments["openai_videos"]
    assert openai.provider == "openai_videos" and openai.secret("api_key") == "sk-1"
    assert openai.base_url == "https://videos.example/v1"


def test_yaml_replaces_an_env_deployment_base_url_included(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text("deployments:\n  luma: {provider: luma, credentials: {api_key: yaml-key}}\n")
    env = {"LUMAAI_API_KEY": "env-key", "LUMAAI_BASE_URL": "http://127.0.0.1:1/dream-machine/v1"}
    deployments, _ = load_deployments(models, ENV_DEFAULTS, env)
    assert deployments["luma"].base_url is None
    assert deployments["luma"].secret("api_key") == "yaml-key"
