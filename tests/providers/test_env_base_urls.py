"""Each provider's default deployment, made from its environment variables alone, goes
where its base-URL variable points: here, the provider's fake on loopback, through a
whole task (submit, status until done, fetch)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.harness import FakeServer, FakeUpstream
from tests.providers.tasks import spec_of, task_of
from vidgate.config import Settings
from vidgate.core.deployments import load_deployments
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps
from vidgate.providers.registry import ENV_DEFAULTS, build_providers


def _fake(module: Any) -> FakeUpstream:
    (cls,) = (
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, FakeUpstream)
        and v is not FakeUpstream
        and v.__module__ == module.__name__
    )
    return cast(FakeUpstream, cls())


def _service_account(fake: Any, tmp_path: Path) -> str:
    """A service-account key file whose token endpoint is the fake's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "vidgate-env@vidgate-test.iam.gserviceaccount.com"
    fake.register_service_account(email, key.public_key(), "env-key")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "vidgate-test",
                "private_key_id": "env-key",
                "private_key": pem,
                "client_email": email,
                "token_uri": fake.token_uri(),
            }
        )
    )
    return str(path)


@pytest.mark.parametrize("provider", sorted(ENV_DEFAULTS))
async def test_the_default_deployment_goes_where_its_base_url_variable_points(
    provider: str, tmp_path: Path
) -> None:
    module = importlib.import_module(f"tests.fakes.{provider}")
    fake = _fake(module)
    fake.polls_to_finish = 1
    wanted = ENV_DEFAULTS[provider]
    assert wanted.base_url is not None
    with FakeServer(fake) as server:
        credentials = module.DEPLOYMENT["credentials"]
        env = {var: str(credentials.get(key, "")) for key, var in wanted.credentials.items()}
        if provider == "vertex":
            env["GOOGLE_APPLICATION_CREDENTIALS"] = _service_account(fake, tmp_path)
            env["GOOGLE_CLOUD_PROJECT"] = module.PROJECT
            env["GOOGLE_CLOUD_LOCATION"] = module.LOCATION
        env[wanted.base_url] = server.url + getattr(module, "BASE_PATH", "")
        deployments, _ = load_deployments(None, ENV_DEFAULTS, env)
        deps = ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
        )
        providers = build_providers(deployments, cast(Any, None), deps)
        adapter = providers[provider]
        try:
            spec = spec_of(model="m", seconds=module.SECONDS)
            adapter.validate(spec, module.UPSTREAM_MODEL)
            result = await adapter.submit(
                spec, idempotency_key="video_env", upstream_model=module.UPSTREAM_MODEL
            )
            assert fake.submissions == 1
            task = task_of(result, spec, module.UPSTREAM_MODEL)
            for _ in range(5):
                status = await adapter.status(task)
                if status.state not in ("queued", "running"):
                    break
            assert status.state == "succeeded", status
            files = await adapter.fetch(task, tmp_path)
            assert files and files[0].read_bytes() == fake.video
        finally:
            await adapter.aclose()
