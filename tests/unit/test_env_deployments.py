"""Default deployments from the environment, as the registry declares them."""

from __future__ import annotations

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
    # YAML-only adapters have no variables of their own.
    assert {"openai_videos", "task_api"} == set(ADAPTERS) - set(ENV_DEFAULTS)


def test_defaults_are_handed_in_not_known_to_core() -> None:
    twelfth = {"acme": EnvDefaults({"token": "ACME_TOKEN"}, {"region": "ACME_REGION"})}
    deployments, _ = load_deployments(None, twelfth, {"ACME_TOKEN": "t", "LUMAAI_API_KEY": "x"})
    assert list(deployments) == ["acme"] and deployments["acme"].options == {}
    with pytest.raises(KeyError):
        deployments["acme"].secret("api_key")
