"""The Vertex AI Veo adapter against a fake Vertex API on loopback (reference 2.1)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.harness import FakeServer, tiny_mp4
from tests.fakes.vertex import ACCESS_TOKEN, LOCATION, PROJECT, FakeVertex
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError
from vidgate.providers.http import translate
from vidgate.providers.vertex import (
    VertexProvider,
    create,
    gcs_media_path,
    google_error_message,
    operation_status,
    refine_error,
    split_upstream_id,
)

MODEL = "veo-3.1-generate-001"
Fake = tuple[FakeVertex, FakeServer]


@pytest.fixture
def fake() -> Iterator[Fake]:
    upstream = FakeVertex()
    with FakeServer(upstream) as server:
        yield upstream, server


def _adapter(
    server: FakeServer,
    tmp_path: Path,
    credentials: dict[str, str] | None = None,
    **options: Any,
) -> VertexProvider:
    config = DeploymentConfig(
        name="vx",
        provider="vertex",
        base_url=server.url,
        credentials={
            k: SecretStr(v) for k, v in (credentials or {"access_token": ACCESS_TOKEN}).items()
        },
        options={"project": PROJECT, "location": LOCATION, "poll_interval_s": 0.2, **options},
    )
    deps = ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )
    return create(config, deps)


@pytest.fixture
async def adapter(fake: Fake, tmp_path: Path) -> AsyncIterator[VertexProvider]:
    provider = _adapter(fake[1], tmp_path)
    yield provider
    await provider.aclose()


def _spec(**changes: object) -> JobSpec:
    base: dict[str, object] = dict(
        model="veo-3",
        kind="generate",
        prompt="a fox",
        negative_prompt=None,
        seconds=8,
        width=1280,
        height=720,
        resolution="720p",
        aspect_ratio="16:9",
        fps=24,
        n=1,
        seed=None,
        metadata={},
        image=None,
        source=None,
    )
    return JobSpec.model_validate({**base, **changes})


async def _finish(adapter: VertexProvider, upstream_id: str) -> None:
    for _ in range(5):
        status = await adapter.status(upstream_id)
        if status.state == "succeeded":
            return
        assert status.state == "running" and status.progress is None
        assert status.poll_after_s == pytest.approx(0.2)
    raise AssertionError("never finished")


async def test_text_to_video_end_to_end(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    result = await adapter.submit(_spec(), idempotency_key="job-1", upstream_model=MODEL)
    name, n = split_upstream_id(result.upstream_id)
    assert n == 1
    assert name.startswith(
        f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}/operations/"
    )
    await _finish(adapter, result.upstream_id)
    [path] = await adapter.fetch(result.upstream_id, tmp_path)
    info = probe_video(path)
    assert info.codec == "h264" and (info.width, info.height) == (160, 96)
    assert upstream.requests == [
        {
            "instances": [{"prompt": "a fox"}],
            "parameters": {
                "sampleCount": 1,
                "durationSeconds": 8,
                "aspectRatio": "16:9",
                "resolution": "720p",
                "fps": 24,
            },
        }
    ]


async def test_request_fields_for_a_representative_spec(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    spec = _spec(
        seconds=6,
        resolution="4K",
        aspect_ratio="9:16",
        width=2160,
        height=3840,
        seed=42,
        negative_prompt="blur",
        n=2,
    )
    result = await adapter.submit(spec, idempotency_key="job-2", upstream_model=MODEL)
    assert upstream.requests[0]["parameters"] == {
        "sampleCount": 2,
        "durationSeconds": 6,
        "aspectRatio": "9:16",
        "resolution": "4k",
        "fps": 24,
        "seed": 42,
        "negativePrompt": "blur",
    }
    await _finish(adapter, result.upstream_id)
    paths = await adapter.fetch(result.upstream_id, tmp_path)
    assert [p.name for p in paths] == ["0.mp4", "1.mp4"]
    assert all(p.read_bytes() == tiny_mp4() for p in paths)


async def test_image_to_video_sends_bare_base64(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    data = png_bytes(320, 180)
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=320, height=180, content_type="image/png")
    await adapter.submit(_spec(image=image), idempotency_key="job-3", upstream_model=MODEL)
    assert upstream.requests[0]["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(data).decode(),
        "mimeType": "image/png",
    }


async def test_extend_sends_the_source_video(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(tiny_mp4())
    source = SourceRef(
        video_id="video_1", sha256=blob.sha256, seconds=1, width=160, height=96, fps=8
    )
    spec = _spec(kind="extend", source=source, seconds=4)
    await adapter.submit(spec, idempotency_key="job-4", upstream_model=MODEL)
    video = upstream.requests[0]["instances"][0]["video"]
    assert base64.b64decode(video["bytesBase64Encoded"]) == tiny_mp4()
    assert video["mimeType"] == "video/mp4"


@pytest.mark.parametrize(
    ("changes", "param", "allowed"),
    [
        ({"seconds": 5}, "seconds", "4, 6, 8"),
        ({"aspect_ratio": "1:1", "width": 720, "height": 720}, "aspect_ratio", "16:9, 9:16"),
        ({"resolution": "480p", "width": 854, "height": 480}, "resolution", "720p, 1080p, 4K"),
        ({"fps": 30}, "fps", "24"),
        ({"n": 5}, "n", "1-4"),
    ],
)
async def test_validate_rejects_what_veo_cannot_do(
    adapter: VertexProvider, changes: dict[str, object], param: str, allowed: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        adapter.validate(_spec(**changes), MODEL)
    assert caught.value.param == param
    assert f"allowed: {allowed}" in caught.value.message and "Vertex" in caught.value.message


async def test_validate_rejects_remix_and_knows_veo_2(adapter: VertexProvider) -> None:
    source = SourceRef(video_id="v", sha256="0" * 64, seconds=8, width=1280, height=720, fps=24)
    with pytest.raises(InvalidParameter, match="remix is not supported"):
        adapter.validate(_spec(kind="remix", source=source), MODEL)
    adapter.validate(_spec(seconds=5), "veo-2.0-generate-001")
    adapter.validate(_spec(), None)


async def test_operation_error_fails_with_the_reason(fake: Fake, adapter: VertexProvider) -> None:
    upstream, _ = fake
    upstream.fail_tasks = ("content_policy", "the prompt was refused by the provider")
    result = await adapter.submit(_spec(), idempotency_key="job-5", upstream_model=MODEL)
    await adapter.status(result.upstream_id)
    status = await adapter.status(result.upstream_id)
    assert status.state == "failed"
    assert status.error_code == "INVALID_ARGUMENT"
    assert status.error_message == "the prompt was refused by the provider"


async def test_rai_filtering_fails_with_the_filter_reasons(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.fail_tasks = ("rai", "Veo could not generate videos: support code 29310472")
    upstream.rai_failures = True
    result = await adapter.submit(_spec(), idempotency_key="job-6", upstream_model=MODEL)
    await adapter.status(result.upstream_id)
    status = await adapter.status(result.upstream_id)
    assert status.state == "failed" and status.error_code == "content_filtered"
    assert "support code 29310472" in (status.error_message or "")
    with pytest.raises(ProviderError) as caught:
        await adapter.fetch(result.upstream_id, tmp_path)
    assert not caught.value.retryable


def test_partly_filtered_samples_fail_the_job() -> None:
    op = {"name": "x", "done": True}
    videos: list[Any] = [{"bytesBase64Encoded": "AA=="}]
    result = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["child safety"]}
    status = operation_status(op, result, videos, 2, 1.0)
    assert status.state == "failed" and status.error_code == "content_filtered"
    assert status.error_message == (
        "1 of 2 videos returned, 1 filtered by responsible-AI checks: child safety"
    )
    assert operation_status(op, result, videos, 1, 1.0).state == "succeeded"


async def test_rate_limit_with_retry_after_then_success(
    fake: Fake, adapter: VertexProvider
) -> None:
    upstream, _ = fake
    upstream.fail_next_creates(1, 429, {"Retry-After": "7"})
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(_spec(), idempotency_key="job-7", upstream_model=MODEL)
    assert caught.value.retryable and caught.value.retry_after_s == 7
    assert "RESOURCE_EXHAUSTED" in caught.value.message
    await adapter.submit(_spec(), idempotency_key="job-7", upstream_model=MODEL)
    assert upstream.create_calls == 2 and upstream.submissions == 1


def test_retry_info_in_a_google_body_becomes_retry_after() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Resource exhausted.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}],
        }
    }
    response = httpx.Response(429, json=body)
    assert (
        google_error_message(response)
        == "RESOURCE_EXHAUSTED: Resource exhausted. [retry after 12s]"
    )
    error = refine_error(translate(response, "vx", google_error_message))
    assert error.retryable and error.retry_after_s == 12


async def test_server_error_is_retryable(fake: Fake, adapter: VertexProvider) -> None:
    upstream, _ = fake
    upstream.fail_next_creates(1, 503)
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(_spec(), idempotency_key="job-8", upstream_model=MODEL)
    assert caught.value.retryable and not caught.value.unhealthy


async def test_wrong_token_is_unhealthy_and_not_echoed(fake: Fake, tmp_path: Path) -> None:
    provider = _adapter(fake[1], tmp_path, {"access_token": "ya29.wrong-secret"})
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.submit(_spec(), idempotency_key="job-9", upstream_model=MODEL)
    finally:
        await provider.aclose()
    assert caught.value.unhealthy and not caught.value.retryable
    assert "UNAUTHENTICATED" in caught.value.message
    assert "wrong-secret" not in str(caught.value)


async def test_service_account_key_without_cryptography_is_unhealthy(
    fake: Fake, tmp_path: Path
) -> None:
    provider = _adapter(fake[1], tmp_path, {"service_account_file": "/secrets/key.json"})
    try:
        provider.validate(_spec(), MODEL)  # a deployment problem, never the client's
        with pytest.raises(ProviderError) as caught:
            await provider.submit(_spec(), idempotency_key="job-10", upstream_model=MODEL)
    finally:
        await provider.aclose()
    assert caught.value.unhealthy and "access_token" in caught.value.message
    assert fake[0].create_calls == 0


async def test_retired_model_is_rejected_not_retried(fake: Fake, adapter: VertexProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(
            _spec(), idempotency_key="job-11", upstream_model="veo-3.0-generate-001"
        )
    assert caught.value.code == "upstream_not_found" and not caught.value.retryable
    assert "was not found" in caught.value.message


async def test_inline_results_survive_url_expiry(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.expire_urls = True
    result = await adapter.submit(_spec(), idempotency_key="job-12", upstream_model=MODEL)
    await _finish(adapter, result.upstream_id)
    upstream.refresh_urls()
    [path] = await adapter.fetch(result.upstream_id, tmp_path)
    assert path.read_bytes() == tiny_mp4()


async def test_gcs_results_download_with_the_token_and_expire_for_good(
    fake: Fake, tmp_path: Path
) -> None:
    upstream, server = fake
    provider = _adapter(
        server, tmp_path, storage_uri="gs://vidgate-out/veo", storage_base_url=server.url
    )
    try:
        result = await provider.submit(_spec(), idempotency_key="job-13", upstream_model=MODEL)
        assert upstream.requests[0]["parameters"]["storageUri"] == "gs://vidgate-out/veo"
        await _finish(provider, result.upstream_id)
        [path] = await provider.fetch(result.upstream_id, tmp_path)
        assert probe_video(path).codec == "h264" and upstream.downloads == 1
        upstream.expire_urls = True
        with pytest.raises(ProviderError) as caught:
            await provider.fetch(result.upstream_id, tmp_path)
    finally:
        await provider.aclose()
    assert caught.value.code == "result_expired" and not caught.value.retryable


def test_gcs_object_names_are_escaped() -> None:
    assert gcs_media_path("gs://b/dir/a b.mp4") == "/storage/v1/b/b/o/dir%2Fa%20b.mp4?alt=media"
    with pytest.raises(ProviderError):
        gcs_media_path("https://example.com/x.mp4")


async def test_cancel_is_a_no_op(fake: Fake, adapter: VertexProvider) -> None:
    upstream, _ = fake
    result = await adapter.submit(_spec(), idempotency_key="job-14", upstream_model=MODEL)
    await adapter.cancel(result.upstream_id)
    assert upstream.cancelled == []
    with pytest.raises(ProviderError) as caught:
        await adapter.status("operations/not-a-vertex-name")
    assert caught.value.code == "upstream_bad_id"
