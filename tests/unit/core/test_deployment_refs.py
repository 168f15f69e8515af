"""Catalogue deployment refs matched by provider type (adapter) or by deployment name."""

from __future__ import annotations

from typing import Any

from vidgate.core.catalog import DeploymentRef, ModelCard, load_catalog
from vidgate.core.deployment_refs import DeploymentRefs, ResolvedRef
from vidgate.providers.registry import ADAPTERS, SANDBOX

CATALOG = load_catalog()


def card(*refs: dict[str, Any]) -> ModelCard:
    return CATALOG.get("kling-2.0").model_copy(
        update={"deployments": [DeploymentRef(**r) for r in refs]}
    )


def served(refs: DeploymentRefs, model: ModelCard) -> list[tuple[str, str | None, int]]:
    return [(r.provider, r.upstream_model, r.priority) for r in refs.configured(model)]


def test_an_adapter_ref_is_served_by_every_deployment_of_that_adapter() -> None:
    refs = DeploymentRefs(
        {"kling": "kling", "kling-eu": "kling", "fal": "fal", "azure-sora": "openai_videos"},
        ADAPTERS,
    )
    model = card(
        {"provider": "kling", "upstream_model": "kling-v2-master", "priority": 10},
        {"provider": "fal", "upstream_model": "fal-ai/x"},
        {"provider": "replicate", "upstream_model": "kwaivgi/kling-v2.0"},
    )
    assert served(refs, model) == [
        ("kling", "kling-v2-master", 10),
        ("kling-eu", "kling-v2-master", 10),
        ("fal", "fal-ai/x", 0),
    ]
    # Not configured: listed as written, for the operator to see; never routed to.
    assert refs.listed(model)[-1] == ResolvedRef(model.deployments[2], configured=False)
    assert refs.deployments_of("openai_videos") == ("azure-sora",)
    assert "kling-eu" in refs and "replicate" not in refs


def test_a_deployment_name_ref_matches_that_deployment_only() -> None:
    refs = DeploymentRefs({"kling-eu": "kling", "kling-us": "kling"}, ADAPTERS)
    model = card({"provider": "kling-eu", "upstream_model": "kling-v2-master"})
    assert served(refs, model) == [("kling-eu", "kling-v2-master", 0)]
    missing = card({"provider": "kling-asia"})
    assert refs.configured(missing) == []
    assert refs.listed(missing) == (ResolvedRef(missing.deployments[0], configured=False),)


def test_a_deployment_the_card_names_keeps_its_own_ref() -> None:
    refs = DeploymentRefs({"kling": "kling", "kling-eu": "kling"}, ADAPTERS)
    model = card(
        {"provider": "kling", "upstream_model": "kling-v2-master"},
        {"provider": "kling-eu", "upstream_model": "kling-v2-1-master", "priority": 5},
    )
    assert served(refs, model) == [
        ("kling", "kling-v2-master", 0),
        ("kling-eu", "kling-v2-1-master", 5),
    ]


def test_names_that_are_no_adapter_stay_names() -> None:
    """The sandbox is a deployment (of no adapter in the registry)."""
    refs = DeploymentRefs({SANDBOX: SANDBOX}, ADAPTERS)
    assert served(refs, CATALOG.get("sandbox")) == [(SANDBOX, None, 0)]


def test_resolved_once_per_card() -> None:
    refs = DeploymentRefs({"kling": "kling"}, ADAPTERS)
    model = CATALOG.get("kling-2.0")
    assert refs.listed(model) is refs.listed(model)
    # A card of another catalogue with the same id is resolved on its own.
    other = card({"provider": "fal"})
    assert refs.listed(other) == (ResolvedRef(other.deployments[0], configured=False),)


def test_every_builtin_ref_names_an_adapter() -> None:
    """So that an operator's deployment of any name serves the built-in models."""
    for model in CATALOG.models():
        for ref in model.deployments:
            assert ref.provider in ADAPTERS or ref.provider == SANDBOX, (model.id, ref)
