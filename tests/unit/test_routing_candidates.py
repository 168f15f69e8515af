"""Which deployments routing considers for a model: catalogue refs matched by provider
type (adapter name) or deployment name, against deployments from the environment and
the operator's YAML, as ``open_runtime`` builds them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vidgate.config import Settings
from vidgate.core.catalog import Catalog, load_catalog
from vidgate.core.deployments import load_deployments
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import VideoRequest, normalize
from vidgate.engine.context import EngineContext
from vidgate.engine.routing import candidates
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps
from vidgate.providers.registry import ADAPTERS, ENV_DEFAULTS, build_providers

# Adapters with a credential variable but no built-in card yet; each must leave this
# list once its card exists (MiniMax left it with the Hailuo 2.3 cards).
NO_CARD_YET: set[str] = set()


class Gateway:
    """What ``open_runtime`` builds from an environment and a models file, minus I/O."""

    def __init__(self, tmp_path: Path, env: Mapping[str, str], models: Path | None) -> None:
        self.catalog: Catalog = load_catalog(models)
        deployments, _ = load_deployments(models, ENV_DEFAULTS, env)
        deps = ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"),
            settings=Settings(data_dir=tmp_path),
            capabilities=self.catalog.upstreams,
        )
        self.providers = build_providers(deployments, cast(Any, None), deps)
        self.ctx = EngineContext(
            settings=deps.settings,
            db=cast(Any, None),
            blobs=deps.blobs,
            providers=self.providers,
            catalog=self.catalog,
            app=cast(Any, None),
            deployments=deployments,
        )

    def live(self, model: str) -> list[tuple[str, str | None]]:
        card = self.catalog.get(model)
        return [(r.provider, r.upstream_model) for r in candidates(self.ctx, card, "live")]

    def routable(self, model: str) -> list[str]:
        """The deployments a default request for ``model`` can go to (each adapter's
        ``validate`` accepts it)."""
        card = self.catalog.get(model)
        try:
            spec = normalize(VideoRequest(model=model, prompt="a red fox in snow"), card)
        except InvalidParameter:
            return []  # an image-to-video-only model (hailuo-2.3-fast): no text request
        able = []
        for ref in candidates(self.ctx, card, "live"):
            try:
                self.providers[ref.provider].validate(spec, ref.upstream_model)
            except InvalidParameter:
                continue
            able.append(ref.provider)
        return able


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Any]:
    def make(env: Mapping[str, str], yaml_text: str | None = None) -> Gateway:
        models = None
        if yaml_text is not None:
            models = tmp_path / "models.yaml"
            models.write_text(yaml_text)
        return Gateway(tmp_path, env, models)

    yield make


def test_a_custom_named_deployment_serves_builtin_models_of_its_adapter(gateway: Any) -> None:
    gw = gateway(
        {},
        """
deployments:
  azure-sora:
    provider: openai_videos
    base_url: https://acme.openai.azure.com/openai/v1
    credentials: {api_key: k}
  kling-eu: {provider: kling, credentials: {access_key: a, secret_key: s}}
  kling-us: {provider: kling, credentials: {access_key: b, secret_key: t}}
""",
    )
    assert gw.live("sora-2") == [("azure-sora", "sora-2")]
    # Two accounts of one provider both serve its models, each as its own deployment.
    assert gw.live("kling-2.0") == [
        ("kling-eu", "kling-v2-master"),
        ("kling-us", "kling-v2-master"),
    ]
    assert gw.live("luma-ray-2") == []


def test_a_ref_naming_a_deployment_matches_only_it(gateway: Any) -> None:
    gw = gateway(
        {},
        """
deployments:
  kling-eu: {provider: kling, credentials: {access_key: a, secret_key: s}}
  kling-us: {provider: kling, credentials: {access_key: b, secret_key: t}}
models:
  kling-2.0:
    deployments:
      - {provider: kling-us, upstream_model: kling-v2-1-master}
""",
    )
    assert gw.live("kling-2.0") == [("kling-us", "kling-v2-1-master")]


def test_openai_variables_make_the_deployment_sora_2_routes_to(gateway: Any) -> None:
    assert gateway({"OPENAI_API_KEY": "sk-1"}).live("sora-2") == []
    gw = gateway({"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "https://videos.example/v1"})
    assert gw.routable("sora-2") == ["openai_videos"]


def test_a_deployment_named_after_another_adapter_is_refused(gateway: Any) -> None:
    """A ref ``fal`` means every fal deployment, so a replicate deployment named
    ``fal`` could never be reached by its name."""
    with pytest.raises(ValueError, match="'fal' is named after the 'fal' adapter"):
        gateway({}, "deployments:\n  fal: {provider: replicate, credentials: {api_key: k}}\n")


def _service_account_file(path: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    data = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "vidgate@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(data))
    return str(path)


def _usual_variables(provider: str, tmp_path: Path) -> dict[str, str]:
    """A provider's credential variables (and its options', and its base URL where it
    has no default), set as an operator would."""
    wanted = ENV_DEFAULTS[provider]
    env = {var: f"{var.lower()}-value" for var in [*wanted.credentials.values()]}
    env.update({var: f"{var.lower()}-value" for var in wanted.options.values()})
    if "GOOGLE_APPLICATION_CREDENTIALS" in env:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = _service_account_file(tmp_path / "sa.json")
    if "GOOGLE_CLOUD_LOCATION" in env:
        env["GOOGLE_CLOUD_LOCATION"] = "us-central1"
    if wanted.base_url_required and wanted.base_url:
        env[wanted.base_url] = "https://videos.example/v1"
    return env


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(
            p,
            marks=pytest.mark.xfail(p in NO_CARD_YET, reason="no built-in card yet", strict=True),
        )
        for p in sorted(ENV_DEFAULTS)
    ],
)
def test_each_providers_variables_alone_make_a_builtin_model_routable(
    provider: str, gateway: Any, tmp_path: Path
) -> None:
    """A MiniMax key alone gives a working Hailuo model, and so on for every provider."""
    gw = gateway(_usual_variables(provider, tmp_path))
    assert list(gw.providers) == ["sandbox", provider]
    models = [card.id for card in gw.catalog.models() if provider in gw.routable(card.id)]
    assert models, f"no built-in model routes to {provider} with its variables alone"


def _doc_yaml(marker: str) -> str:
    """The first YAML block after ``marker`` in docs/providers.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "providers.md").read_text()
    after = text[text.index(marker) :]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_minimal_deployments_of_the_providers_doc_work(gateway: Any, tmp_path: Path) -> None:
    """Docs are contracts: each minimal YAML deployment there builds, and serves the
    built-in models of its adapter whatever its name."""
    text = _doc_yaml("A minimal deployment per provider")
    text = text.replace("/etc/vidgate/sa.json", _service_account_file(tmp_path / "sa.json"))
    env = {name: f"{name.lower()}-value" for name in re.findall(r"\$\{(\w+)\}", text)}
    gw = gateway(env, text)
    documented = {config.provider for config in gw.ctx.deployments.values()}
    assert documented == set(ADAPTERS)
    assert set(gw.providers) == {"sandbox", *gw.ctx.deployments}
    assert {name for name, _ in gw.live("sora-2")} == {"sora-gateway", "azure-sora"}
    # FAL_KEY, set for fal-main, makes the default deployment `fal` as well.
    fal_kling = "fal-ai/kling-video/v2/master/text-to-video"
    assert gw.live("kling-2.0") == [
        ("kling-eu", "kling-v2-master"),
        ("fal", fal_kling),
        ("fal-main", fal_kling),
    ]
