"""Every adapter against its fake, served at the fake's root as the real host is: its
``probe`` (the right key is taken, a wrong one is reported as an auth failure), and its
``base_url`` taken with or without the API's path prefix (a job completes either way)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr

from tests.fakes.harness import FakeServer, FakeUpstream
from tests.providers.tasks import spec_of, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.spec import dimensions
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.adapter_config import AdapterSpec, NoOptions, api_base_url
from vidgate.providers.base import Provider, ProviderDeps, ProviderError
from vidgate.providers.registry import ADAPTERS, factory_for

ADAPTER_NAMES = sorted(ADAPTERS)


def _fake_class(module: ModuleType) -> type[FakeUpstream]:
    (cls,) = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, FakeUpstream)
        and v is not FakeUpstream
        and v.__module__ == module.__name__
    ]
    return cls


@pytest.fixture(params=ADAPTER_NAMES)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ModuleType, FakeServer]]:
    module = importlib.import_module(f"tests.fakes.{request.param}")
    with FakeServer(_fake_class(module)()) as server:
        yield module, server


def _spec_of_adapter(name: str) -> AdapterSpec[Any, Any]:
    spec: AdapterSpec[Any, Any] = importlib.import_module(ADAPTERS[name].module).ADAPTER
    return spec


def _provider(
    module: ModuleType, base_url: str, tmp_path: Path, *, wrong_key: bool = False
) -> Provider:
    settings = dict(module.DEPLOYMENT)
    credentials = {
        k: SecretStr(f"wrong-{v}" if wrong_key else v)
        for k, v in settings.pop("credentials").items()
    }
    config = DeploymentConfig(
        name=f"{settings['provider']}-probe", base_url=base_url, credentials=credentials, **settings
    )
    factory = factory_for(config.provider)
    assert factory is not None
    deps = ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"),
        settings=Settings(data_dir=tmp_path),
        input_url=lambda sha: f"https://gw.example.com/v1/inputs/{sha}",
    )
    return factory(config, deps)


def _base_urls(module: ModuleType, server: FakeServer) -> list[str]:
    """The fake's root, and the root with the API's prefix where it has one."""
    prefix = _spec_of_adapter(module.DEPLOYMENT["provider"]).api_prefix
    return [server.url] + ([server.url + prefix + "/"] if prefix else [])


async def test_probe_takes_the_right_key_and_reports_a_wrong_one(
    served: tuple[ModuleType, FakeServer], tmp_path: Path
) -> None:
    module, server = served
    right = _provider(module, server.url, tmp_path)
    wrong = _provider(module, server.url, tmp_path, wrong_key=True)
    try:
        await right.probe()
        with pytest.raises(ProviderError) as refused:
            await wrong.probe()
    finally:
        await right.aclose()
        await wrong.aclose()
    assert refused.value.unhealthy and not refused.value.retryable, refused.value
    # Probes never create anything upstream.
    assert server.fake.submissions == 0


async def test_probe_of_a_host_that_is_down_is_retryable(
    served: tuple[ModuleType, FakeServer], tmp_path: Path
) -> None:
    module, server = served
    server.__exit__(None, None, None)
    provider = _provider(module, server.url, tmp_path)
    try:
        with pytest.raises(ProviderError) as down:
            await provider.probe()
    finally:
        await provider.aclose()
    assert down.value.retryable and not down.value.unhealthy, down.value


async def test_a_job_completes_with_base_url_given_either_way(
    served: tuple[ModuleType, FakeServer], tmp_path: Path
) -> None:
    module, server = served
    width, height = (int(x) for x in module.SIZE.split("x"))
    ratio = next(r for r in ("16:9", "9:16", "1:1") if dimensions("720p", r) == (width, height))
    spec = spec_of(
        seconds=module.SECONDS, width=width, height=height, resolution="720p", aspect_ratio=ratio
    )
    for index, base_url in enumerate(_base_urls(module, server)):
        provider = _provider(module, base_url, tmp_path)
        try:
            submitted = await provider.submit(
                spec, idempotency_key=f"job-{index}", upstream_model=module.UPSTREAM_MODEL
            )
            task = task_of(submitted, spec, module.UPSTREAM_MODEL)
            for _ in range(10):
                state = (await provider.status(task)).state
                if state not in ("queued", "running"):
                    break
            assert state == "succeeded", (base_url, state)
            out = tmp_path / f"out-{index}"
            out.mkdir()
            paths = await provider.fetch(task, out)
        finally:
            await provider.aclose()
        assert paths and all(p.stat().st_size > 0 for p in paths), base_url


@pytest.mark.parametrize(
    ("prefix", "given", "used"),
    [
        ("/v1", "https://h.example", "https://h.example/v1"),
        ("/v1", "https://h.example/v1/", "https://h.example/v1"),
        ("/v1", "https://h.example/proxy", "https://h.example/proxy/v1"),
        ("/api/v3", "https://h.example/api/v3", "https://h.example/api/v3"),
        ("/dream-machine/v1", "https://h.example/", "https://h.example/dream-machine/v1"),
        ("", "https://h.example/any/path/", "https://h.example/any/path"),
    ],
)
def test_api_base_url_appends_the_prefix_only_when_missing(
    prefix: str, given: str, used: str
) -> None:
    spec = AdapterSpec(options=NoOptions, credentials=NoOptions, api_prefix=prefix)
    assert api_base_url(given, spec) == used


def test_every_adapter_declares_its_settings() -> None:
    for name in ADAPTER_NAMES:
        spec = _spec_of_adapter(name)
        assert spec.options.model_config.get("extra") == "forbid", name
        assert spec.credentials.model_config.get("extra") == "forbid", name
        assert spec.api_prefix == "" or spec.api_prefix.startswith("/"), name
