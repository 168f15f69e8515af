"""The Vertex AI Veo adapter against a fake Vertex API on loopback (reference 2.1)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from PIL import Image
from pydantic import SecretStr

from tests.conftest import free_port, png_bytes
from tests.fakes.harness import FakeServer, tiny_mp4
from tests.fakes.vertex import (
    ACCESS_TOKEN,
    CLOUD_PLATFORM,
    JWT_BEARER,
    LOCATION,
    PROJECT,
    FakeVertex,
)
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers import google_service_account
from vidgate.providers.adapter_config import AdapterConfigError
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamTask
from vidgate.providers.google_api import google_error_message, operation_status, refine_error
from vidgate.providers.http import translate
from vidgate.providers.vertex import VertexProvider, create, gcs_media_path

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
            k: SecretStr(v)
            for k, v in (
                {"access_token": ACCESS_TOKEN} if credentials is None else credentials
            ).items()
        },
        options={
            k: v
            for k, v in (
                {"project": PROJECT, "location": LOCATION, "poll_interval_s": 0.2} | options
            ).items()
            if v is not None  # None: left out
        },
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
    base: dict[str, object] = dict(model="veo-3", prompt="a fox", seconds=8)
    return spec_of(**{**base, **changes})


async def _finish(adapter: VertexProvider, upstream: UpstreamTask) -> None:
    for _ in range(5):
        status = await adapter.status(upstream)
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
    assert result.state == {}
    assert result.upstream_id.startswith(
        f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}/operations/"
    )
    await _finish(adapter, task_of(result))
    [path] = await adapter.fetch(task_of(result), tmp_path)
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
    await _finish(adapter, task_of(result, spec))
    paths = await adapter.fetch(task_of(result, spec), tmp_path)
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


async def _stored_image(
    tmp_path: Path, color: tuple[int, int, int], kind: str = "image/png"
) -> tuple[ImageRef, str]:
    """A stored input image and the bare base64 Vertex should receive for it."""
    data = png_bytes(32, 18, color)
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=32, height=18, content_type=kind)
    return image, base64.b64encode(data).decode()


async def test_first_and_last_frame_go_as_image_and_last_frame(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    first, first_b64 = await _stored_image(tmp_path, (255, 0, 0))
    last, last_b64 = await _stored_image(tmp_path, (0, 0, 255), "image/jpeg")
    spec = _spec(image=first, last_frame=last)
    adapter.validate(spec, MODEL)
    await adapter.submit(spec, idempotency_key="lf-1", upstream_model=MODEL)
    assert upstream.requests[0]["instances"] == [
        {
            "prompt": "a fox",
            "image": {"bytesBase64Encoded": first_b64, "mimeType": "image/png"},
            "lastFrame": {"bytesBase64Encoded": last_b64, "mimeType": "image/jpeg"},
        }
    ]


async def test_reference_images_go_as_asset_references(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    stored = [
        await _stored_image(tmp_path, (255, 0, 0)),
        await _stored_image(tmp_path, (0, 255, 0), "image/jpeg"),
        await _stored_image(tmp_path, (0, 0, 255)),
    ]
    spec = _spec(reference_images=[ref for ref, _ in stored])
    adapter.validate(spec, MODEL)
    await adapter.submit(spec, idempotency_key="ref-1", upstream_model=MODEL)
    assert upstream.requests[0]["instances"] == [
        {
            "prompt": "a fox",
            "referenceImages": [
                {
                    "image": {"bytesBase64Encoded": data, "mimeType": ref.content_type},
                    "referenceType": "ASSET",
                }
                for ref, data in stored
            ],
        }
    ]
    assert [
        r["image"]["mimeType"] for r in upstream.requests[0]["instances"][0]["referenceImages"]
    ] == ["image/png", "image/jpeg", "image/png"]


def _encoded(fmt: str) -> bytes:
    """A 64x36 image: red, and for a GIF a blue second frame after it."""
    buf = io.BytesIO()
    red, blue = Image.new("RGB", (64, 36), (255, 0, 0)), Image.new("RGB", (64, 36), (0, 0, 255))
    if fmt == "GIF":
        red.save(buf, format="GIF", save_all=True, append_images=[blue], duration=100)
    else:
        red.save(buf, format=fmt, lossless=True)  # lossless: WebP's; ignored by the others
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
async def test_images_veo_does_not_read_are_sent_as_png(
    fake: Fake, adapter: VertexProvider, tmp_path: Path, fmt: str
) -> None:
    upstream, _ = fake
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(_encoded(fmt))
    kind = f"image/{fmt.lower()}"
    image = ImageRef(sha256=blob.sha256, width=64, height=36, content_type=kind)
    spec = _spec(image=image, last_frame=image)
    adapter.validate(spec, MODEL)  # taken at create: the adapter converts it
    result = await adapter.submit(spec, idempotency_key=f"conv-{fmt}", upstream_model=MODEL)
    await _finish(adapter, task_of(result))
    assert await adapter.fetch(task_of(result), tmp_path)
    instance = upstream.requests[0]["instances"][0]
    for key in ("image", "lastFrame"):
        assert instance[key]["mimeType"] == "image/png"
        with Image.open(io.BytesIO(base64.b64decode(instance[key]["bytesBase64Encoded"]))) as sent:
            assert sent.format == "PNG" and sent.size == (64, 36)
            assert sent.convert("RGB").getpixel((10, 10)) == (255, 0, 0)  # the first frame


_REF = ImageRef(sha256="1" * 64, width=32, height=18, content_type="image/png")
_SOURCE = SourceRef(video_id="v", sha256="0" * 64, seconds=4, width=1280, height=720, fps=24)


@pytest.mark.parametrize(
    ("changes", "param", "words"),
    [
        ({"reference_images": [_REF] * 4}, "reference_images", "allowed: 0-3"),
        ({"reference_images": [_REF], "image": _REF}, "reference_images", "a first frame (image)"),
        (
            {"reference_images": [_REF], "image": _REF, "last_frame": _REF},
            "reference_images",
            "a first frame (image) or a last frame",
        ),
        (
            {"reference_images": [_REF], "kind": "extend", "source": _SOURCE, "seconds": 4},
            "reference_images",
            "a source video (extend)",
        ),
        ({"last_frame": _REF}, "last_frame", "allowed: image with last_frame"),
        (
            {"last_frame": _REF, "image": _REF, "kind": "extend", "source": _SOURCE, "seconds": 4},
            "last_frame",
            "cannot be used to extend",
        ),
    ],
)
async def test_validate_rejects_frame_and_reference_combinations(
    adapter: VertexProvider, changes: dict[str, object], param: str, words: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        adapter.validate(_spec(**changes), MODEL)
    assert caught.value.param == param
    assert words in caught.value.message and "Vertex" in caught.value.message


def _png_b64() -> dict[str, str]:
    return {"bytesBase64Encoded": base64.b64encode(png_bytes()).decode(), "mimeType": "image/png"}


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"lastFrame": _png_b64()}, "lastFrame requires image"),
        ({"image": {**_png_b64(), "mimeType": "image/gif"}}, "Unsupported image.mimeType"),
        ({"referenceImages": [{"image": _png_b64(), "referenceType": "ASSET"}] * 4}, "At most 3"),
        ({"referenceImages": [{"image": _png_b64(), "referenceType": "STYLE"}]}, "STYLE"),
        ({"referenceImages": [{"image": {"mimeType": "image/png"}}]}, "bytesBase64Encoded"),
        (
            {
                "image": _png_b64(),
                "referenceImages": [{"image": _png_b64(), "referenceType": "ASSET"}],
            },
            "cannot be used together with image",
        ),
    ],
)
async def test_fake_refuses_what_vertex_refuses(
    fake: Fake, instance: dict[str, Any], message: str
) -> None:
    upstream, server = fake
    path = (
        f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/"
        f"{MODEL}:predictLongRunning"
    )
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(
            path,
            headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
            json={"instances": [{"prompt": "x", **instance}], "parameters": {}},
        )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert upstream.submissions == 0


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
    await adapter.status(task_of(result))
    status = await adapter.status(task_of(result))
    assert status.state == "failed"
    assert (status.error_code, status.transient) == ("upstream_rejected", False)
    assert status.error_message == (
        f"{adapter.name}: the prompt was refused by the provider (INVALID_ARGUMENT)"
    )


async def test_rai_filtering_fails_with_the_filter_reasons(
    fake: Fake, adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.fail_tasks = ("rai", "Veo could not generate videos: support code 29310472")
    upstream.rai_failures = True
    result = await adapter.submit(_spec(), idempotency_key="job-6", upstream_model=MODEL)
    await adapter.status(task_of(result))
    status = await adapter.status(task_of(result))
    assert status.state == "failed" and status.error_code == "upstream_content_refused"
    assert "support code 29310472" in (status.error_message or "")
    with pytest.raises(ProviderError) as caught:
        await adapter.fetch(task_of(result), tmp_path)
    assert not caught.value.retryable


def test_partly_filtered_samples_fail_the_job() -> None:
    op = {"name": "x", "done": True}
    videos: list[Any] = [{"bytesBase64Encoded": "AA=="}]
    result = {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["child safety"]}
    status = operation_status(op, result, videos, 2, 1.0)
    assert status.state == "failed" and status.error_code == "upstream_content_refused"
    assert status.error_message == (
        "google: 1 of 2 videos returned, 1 filtered by responsible-AI checks: child safety"
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


def test_no_credentials_or_project_is_a_configuration_error(fake: Fake, tmp_path: Path) -> None:
    """Refused at create (``vidgate check`` and ``serve`` say so), never a job sent."""
    with pytest.raises(AdapterConfigError) as caught:
        _adapter(fake[1], tmp_path, {"api_key": "x"})
    message = str(caught.value)
    assert "credentials.api_key: unknown credential" in message
    assert "accepted: access_token, service_account_file" in message
    with pytest.raises(AdapterConfigError, match=r"set credentials\.access_token or"):
        _adapter(fake[1], tmp_path, {})
    with pytest.raises(AdapterConfigError, match=r"options\.project: is required"):
        _adapter(fake[1], tmp_path, project=None)
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
    await _finish(adapter, task_of(result))
    upstream.refresh_urls()
    [path] = await adapter.fetch(task_of(result), tmp_path)
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
        await _finish(provider, task_of(result))
        [path] = await provider.fetch(task_of(result), tmp_path)
        assert probe_video(path).codec == "h264" and upstream.downloads == 1
        upstream.expire_urls = True
        with pytest.raises(ProviderError) as caught:
            await provider.fetch(task_of(result), tmp_path)
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
    await adapter.cancel(task_of(result))
    assert upstream.cancelled == []
    with pytest.raises(ProviderError) as caught:
        await adapter.status(task_by_id("operations/not-a-vertex-name"))
    assert caught.value.code == "upstream_bad_id"


# --- service-account credentials (OAuth2 JWT-bearer grant) ----------------------------

SA_EMAIL = "vidgate@vidgate-test.iam.gserviceaccount.com"
SA_KEY_ID = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _key_file(tmp_path: Path, key: rsa.RSAPrivateKey, token_uri: str, **changes: Any) -> Path:
    """A service-account JSON key as the Cloud console downloads it."""
    data: dict[str, Any] = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": SA_KEY_ID,
        "private_key": _pem(key),
        "client_email": SA_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        **changes,
    }
    path = tmp_path / "sa-key.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _sa_adapter(
    fake: Fake, tmp_path: Path, key: rsa.RSAPrivateKey, **options: Any
) -> VertexProvider:
    upstream, server = fake
    path = _key_file(tmp_path, key, upstream.token_uri())
    return _adapter(server, tmp_path, {"service_account_file": str(path)}, **options)


@pytest.fixture
async def sa_adapter(
    fake: Fake, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> AsyncIterator[VertexProvider]:
    fake[0].register_service_account(SA_EMAIL, rsa_key.public_key(), SA_KEY_ID)
    provider = _sa_adapter(fake, tmp_path, rsa_key)
    yield provider
    await provider.aclose()


class Clock:
    """Stands in for google_service_account._clock: real time plus what a test adds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake_clock = Clock()
    monkeypatch.setattr(google_service_account, "_clock", fake_clock)
    return fake_clock


async def test_service_account_text_to_video_end_to_end(
    fake: Fake, sa_adapter: VertexProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    result = await sa_adapter.submit(_spec(), idempotency_key="sa-1", upstream_model=MODEL)
    await _finish(sa_adapter, task_of(result))
    [path] = await sa_adapter.fetch(task_of(result), tmp_path)
    assert path.read_bytes() == tiny_mp4()
    assert upstream.submissions == 1 and upstream.token_calls == 1
    assert len(upstream.issued) == 1


async def test_service_account_token_downloads_gcs_results(
    fake: Fake, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    upstream, server = fake
    upstream.register_service_account(SA_EMAIL, rsa_key.public_key(), SA_KEY_ID)
    provider = _sa_adapter(
        fake, tmp_path, rsa_key, storage_uri="gs://vidgate-out/veo", storage_base_url=server.url
    )
    try:
        result = await provider.submit(_spec(), idempotency_key="sa-2", upstream_model=MODEL)
        await _finish(provider, task_of(result))
        [path] = await provider.fetch(task_of(result), tmp_path)
    finally:
        await provider.aclose()
    assert path.read_bytes() == tiny_mp4()
    assert upstream.downloads == 1 and upstream.token_calls == 1


async def test_assertion_carries_the_documented_claims(
    fake: Fake, sa_adapter: VertexProvider, rsa_key: rsa.RSAPrivateKey
) -> None:
    upstream, server = fake
    before = int(time.time())
    await sa_adapter.submit(_spec(), idempotency_key="sa-3", upstream_model=MODEL)
    [assertion] = upstream.assertions
    assert assertion.grant_type == JWT_BEARER
    assert assertion.header == {"alg": "RS256", "typ": "JWT", "kid": SA_KEY_ID}
    claims = dict(assertion.claims)
    iat = claims.pop("iat")
    assert before <= iat <= time.time() + 1
    assert claims == {
        "iss": SA_EMAIL,
        "scope": CLOUD_PLATFORM,
        "aud": f"{server.url}/token",
        "exp": iat + 3600,
    }


def test_sign_assertion_is_rs256_over_header_and_claims(rsa_key: rsa.RSAPrivateKey) -> None:
    key = google_service_account.ServiceAccountKey(
        client_email=SA_EMAIL,
        private_key=rsa_key,
        private_key_id=SA_KEY_ID,
        token_uri="https://oauth2.googleapis.com/token",
    )
    jwt = google_service_account.sign_assertion(key, 1_700_000_000.7)
    header, claims, signature = jwt.split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert "=" not in jwt
    assert json.loads(decode(header)) == {"alg": "RS256", "typ": "JWT", "kid": SA_KEY_ID}
    assert json.loads(decode(claims)) == {
        "iss": SA_EMAIL,
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    rsa_key.public_key().verify(
        decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert "private_key=" not in repr(key)


async def test_token_is_fetched_once_and_refreshed_before_expiry(
    fake: Fake, sa_adapter: VertexProvider, clock: Clock
) -> None:
    upstream, _ = fake
    result = await sa_adapter.submit(_spec(), idempotency_key="sa-4", upstream_model=MODEL)
    # Several calls at once, and more later within the token's life: one token request.
    await asyncio.gather(*(sa_adapter.status(task_of(result)) for _ in range(5)))
    clock.offset = 3599 - 301
    await sa_adapter.status(task_of(result))
    assert upstream.token_calls == 1
    # Within 5 minutes of expiry: a new token, asked for once by concurrent callers.
    clock.offset = 3599 - 299
    await asyncio.gather(*(sa_adapter.status(task_of(result)) for _ in range(5)))
    assert upstream.token_calls == 2 and len(upstream.assertions) == 2
    first, second = upstream.assertions
    assert second.claims["iat"] - first.claims["iat"] >= 3599 - 299 - 1
    # The fake accepts only tokens it issued: the calls above used the new one.
    upstream.issued.pop(next(iter(upstream.issued)))
    status = await sa_adapter.status(task_of(result))
    assert status.state == "succeeded" and upstream.token_calls == 2


async def test_short_lived_tokens_are_refreshed_halfway(
    fake: Fake, sa_adapter: VertexProvider, clock: Clock
) -> None:
    upstream, _ = fake
    upstream.token_expires_in = 60
    result = await sa_adapter.submit(_spec(), idempotency_key="sa-5", upstream_model=MODEL)
    clock.offset = 29
    await sa_adapter.status(task_of(result))
    assert upstream.token_calls == 1
    clock.offset = 31
    await sa_adapter.status(task_of(result))
    assert upstream.token_calls == 2


async def test_revoked_token_is_unhealthy_then_replaced(
    fake: Fake, sa_adapter: VertexProvider
) -> None:
    upstream, _ = fake
    result = await sa_adapter.submit(_spec(), idempotency_key="sa-6", upstream_model=MODEL)
    upstream.revoke_tokens()
    with pytest.raises(ProviderError) as caught:
        await sa_adapter.status(task_of(result))
    assert caught.value.unhealthy and "UNAUTHENTICATED" in caught.value.message
    await sa_adapter.status(task_of(result))
    assert upstream.token_calls == 2


async def test_bad_signature_is_unhealthy_without_key_material(
    fake: Fake, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    upstream, _ = fake
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    upstream.register_service_account(SA_EMAIL, other.public_key(), SA_KEY_ID)
    provider = _sa_adapter(fake, tmp_path, rsa_key)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.submit(_spec(), idempotency_key="sa-7", upstream_model=MODEL)
    finally:
        await provider.aclose()
    error = caught.value
    assert error.unhealthy and not error.retryable and error.code == "upstream_auth_failed"
    assert error.message == (
        "vx: service-account token request refused: invalid_grant: Invalid JWT Signature."
    )
    text = f"{error} {error.__cause__!r} {error.__context__!r}"
    pem = _pem(rsa_key)
    body = pem.split("-----")[2].replace("\n", "")
    assert "BEGIN" not in text and body[:40] not in text and body[-40:] not in text
    assert "eyJ" not in text  # no JWT: base64url of '{"' is "eyJ"
    assert upstream.create_calls == 0 and upstream.token_calls == 1


async def test_token_endpoint_outage_is_retryable(fake: Fake, sa_adapter: VertexProvider) -> None:
    upstream, _ = fake
    upstream.fail_next_tokens(1, 503)
    with pytest.raises(ProviderError) as caught:
        await sa_adapter.submit(_spec(), idempotency_key="sa-8", upstream_model=MODEL)
    assert caught.value.retryable and not caught.value.unhealthy
    assert caught.value.message.startswith("vx: token endpoint:")
    assert upstream.create_calls == 0
    await sa_adapter.submit(_spec(), idempotency_key="sa-8", upstream_model=MODEL)
    assert upstream.token_calls == 2 and upstream.submissions == 1


async def test_unreachable_token_endpoint_is_retryable(
    fake: Fake, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    _, server = fake
    path = _key_file(tmp_path, rsa_key, f"http://127.0.0.1:{free_port()}/token")
    provider = _adapter(server, tmp_path, {"service_account_file": str(path)})
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.submit(_spec(), idempotency_key="sa-9", upstream_model=MODEL)
    finally:
        await provider.aclose()
    assert caught.value.retryable and not caught.value.unhealthy
    assert caught.value.code == "upstream_unreachable"


async def test_refresh_failure_keeps_the_old_token_while_it_lasts(
    fake: Fake, sa_adapter: VertexProvider, clock: Clock
) -> None:
    upstream, _ = fake
    result = await sa_adapter.submit(_spec(), idempotency_key="sa-10", upstream_model=MODEL)
    clock.offset = 3599 - 60
    upstream.fail_next_tokens(1, 503)
    status = await sa_adapter.status(task_of(result))
    assert status.state in ("queued", "running") and upstream.token_calls == 2
    await sa_adapter.status(task_of(result))
    assert upstream.token_calls == 3


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot be read"),
        ('{"private_key": "-----BEGIN PRIVATE KEY-----\\nSECRETSTUFF', "not valid JSON"),
        ('["SECRETSTUFF"]', "not a JSON object"),
        ('{"type": "service_account", "private_key": "SECRETSTUFF"}', "has no client_email"),
        (
            '{"client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----SECRETSTUFF"}',
            "private_key is not an unencrypted PEM private key",
        ),
        (
            '{"type": "authorized_user", "client_secret": "SECRETSTUFF", "refresh_token": "x"}',
            "not a service account key",
        ),
    ],
)
def test_bad_key_file_is_a_value_error_naming_only_the_path(
    fake: Fake, tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        _adapter(fake[1], tmp_path, {"service_account_file": str(path)})
    message = str(caught.value)
    assert str(path) in message and reason in message and "'vx'" in message
    assert "SECRETSTUFF" not in message and "BEGIN" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_non_rsa_key_is_a_value_error(fake: Fake, tmp_path: Path) -> None:
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"client_email": "a@b", "private_key": pem}), encoding="utf-8")
    with pytest.raises(ValueError, match="not an RSA key"):
        _adapter(fake[1], tmp_path, {"service_account_file": str(path)})


async def test_access_token_wins_over_a_key_file(fake: Fake, tmp_path: Path) -> None:
    upstream, server = fake
    credentials = {"access_token": ACCESS_TOKEN, "service_account_file": "/nonexistent.json"}
    provider = _adapter(server, tmp_path, credentials)
    try:
        await provider.submit(_spec(), idempotency_key="sa-11", upstream_model=MODEL)
    finally:
        await provider.aclose()
    assert upstream.submissions == 1 and upstream.token_calls == 0


def test_a_broken_credential_file_takes_out_only_its_deployment(tmp_path: Path) -> None:
    from vidgate.providers.registry import build_providers

    bad = tmp_path / "user-login.json"
    bad.write_text('{"type": "authorized_user", "refresh_token": "x"}')
    config = DeploymentConfig(
        name="vertex",
        provider="vertex",
        credentials={"service_account_file": SecretStr(str(bad))},
        options={"project": "p"},
    )
    deps = ProviderDeps(blobs=LocalBlobStore(tmp_path / "b"), settings=Settings(data_dir=tmp_path))
    providers = build_providers({"vertex": config}, None, deps)  # type: ignore[arg-type]
    assert set(providers) == {"sandbox"}
