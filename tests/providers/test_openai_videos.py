"""The OpenAI-shaped upstream adapter against a fake ``/v1/videos`` server on loopback."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.harness import FakeServer
from tests.fakes.openai_videos import API_KEY, FakeOpenAIVideos
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError
from vidgate.providers.openai_videos import OpenAIVideosProvider, create


@pytest.fixture
def fake() -> Iterator[tuple[FakeOpenAIVideos, FakeServer]]:
    upstream = FakeOpenAIVideos()
    with FakeServer(upstream) as server:
        yield upstream, server


def _adapter(server: FakeServer, tmp_path: Path, key: str = API_KEY) -> OpenAIVideosProvider:
    config = DeploymentConfig(
        name="oa",
        provider="openai_videos",
        base_url=f"{server.url}/v1",
        credentials={"api_key": SecretStr(key)},
    )
    return create(
        config,
        ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
        ),
    )


@pytest.fixture
async def adapter(
    fake: tuple[FakeOpenAIVideos, FakeServer], tmp_path: Path
) -> AsyncIterator[OpenAIVideosProvider]:
    provider = _adapter(fake[1], tmp_path)
    yield provider
    await provider.aclose()


def _spec(**changes: object) -> JobSpec:
    base: dict[str, object] = dict(model="sora-2", prompt="a fox", seconds=4)
    return spec_of(**{**base, **changes})


async def _run(adapter: OpenAIVideosProvider, spec: JobSpec, tmp_path: Path) -> list[Path]:
    result = await adapter.submit(spec, idempotency_key="job-1", upstream_model="sora-2")
    for _ in range(10):
        status = await adapter.status(task_of(result))
        if status.state == "succeeded":
            return await adapter.fetch(task_of(result), tmp_path)
        assert status.state in ("queued", "running")
        assert status.poll_after_s == pytest.approx(0.2)  # from openai-poll-after-ms
    raise AssertionError("never finished")


async def test_text_to_video_multipart_and_download(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    [path] = await _run(adapter, _spec(), tmp_path)
    info = probe_video(path)
    assert info.codec == "h264" and info.width == 160
    assert upstream.requests[0] == {
        "prompt": "a fox",
        "seconds": "4",
        "size": "1280x720",
        "model": "sora-2",
    }


async def test_idempotency_key_prevents_a_second_upstream_video(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider
) -> None:
    upstream, _ = fake
    first = await adapter.submit(_spec(), idempotency_key="job-7", upstream_model="sora-2")
    again = await adapter.submit(_spec(), idempotency_key="job-7", upstream_model="sora-2")
    assert first.upstream_id == again.upstream_id and upstream.submissions == 1


async def test_image_of_the_requested_size_goes_unchanged_as_the_input_reference_part(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    blobs = LocalBlobStore(tmp_path / "blobs")
    data = png_bytes(1280, 720)
    blob = await blobs.put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=1280, height=720, content_type="image/png")
    await adapter.submit(_spec(image=image), idempotency_key="job-2", upstream_model="sora-2")
    assert upstream.requests[0]["input_reference"] == {
        "content_type": "image/png",
        "size": len(data),
        "dimensions": "1280x720",
    }


def _encoded(fmt: str, width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "size", "frame", "sent_type"),
    [
        ("JPEG", (640, 360), (1280, 720), "image/jpeg"),
        ("PNG", (64, 48), (720, 1280), "image/png"),
        ("GIF", (1920, 1080), (1280, 720), "image/png"),
    ],
)
async def test_an_image_of_another_size_is_fitted_to_the_requested_size(
    fake: tuple[FakeOpenAIVideos, FakeServer],
    adapter: OpenAIVideosProvider,
    tmp_path: Path,
    fmt: str,
    size: tuple[int, int],
    frame: tuple[int, int],
    sent_type: str,
) -> None:
    upstream, _ = fake
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(_encoded(fmt, *size))
    image = ImageRef(
        sha256=blob.sha256, width=size[0], height=size[1], content_type=f"image/{fmt.lower()}"
    )
    width, height = frame
    spec = _spec(image=image, width=width, height=height, aspect_ratio="16:9")
    if width < height:
        spec = _spec(image=image, width=width, height=height, aspect_ratio="9:16")
    adapter.validate(spec, "sora-2")
    [path] = await _run(adapter, spec, tmp_path)
    assert probe_video(path).codec == "h264"
    sent = upstream.requests[0]["input_reference"]
    assert sent["dimensions"] == f"{width}x{height}" and sent["content_type"] == sent_type


def test_the_fake_refuses_an_input_reference_of_another_size(
    fake: tuple[FakeOpenAIVideos, FakeServer],
) -> None:
    _, server = fake
    response = httpx.post(
        f"{server.url}/v1/videos",
        headers={"Authorization": f"Bearer {API_KEY}"},
        data={"prompt": "a fox", "size": "1280x720"},
        files={"input_reference": ("input", png_bytes(64, 48), "image/png")},
    )
    assert response.status_code == 400
    assert "Inpaint image must match the requested width and height" in response.text


_IMAGE = ImageRef(sha256="0" * 64, width=64, height=48, content_type="image/png")


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"seconds": 5}, "seconds"),
        ({"seconds": 16}, "seconds"),
        ({"width": 1920, "height": 1080, "resolution": "1080p"}, "size"),
        ({"width": 1276, "height": 720}, "size"),
        ({"seed": 7}, "seed"),
        ({"negative_prompt": "blur"}, "negative_prompt"),
        ({"fps": 30}, "fps"),
    ],
)
async def test_sora_2_limits_are_what_the_api_enforced(
    adapter: OpenAIVideosProvider, changes: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        adapter.validate(_spec(**changes), "sora-2")
    assert caught.value.param == param


async def test_a_seed_and_negative_prompt_reach_other_servers_of_the_shape(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider
) -> None:
    upstream, _ = fake
    spec = _spec(seed=7, negative_prompt="blur")
    adapter.validate(spec, "wan-2.2-on-vllm")
    await adapter.submit(spec, idempotency_key="job-s", upstream_model="wan-2.2-on-vllm")
    assert upstream.requests[0]["seed"] == "7"
    assert upstream.requests[0]["negative_prompt"] == "blur"


async def test_sora_2_pro_adds_the_tall_sizes_and_unknown_models_stay_permissive(
    adapter: OpenAIVideosProvider,
) -> None:
    for seconds in (4, 8, 12):
        adapter.validate(_spec(seconds=seconds), "sora-2-2025-12-08")
    adapter.validate(_spec(width=720, height=1280, aspect_ratio="9:16"), "sora-2")
    adapter.validate(_spec(width=1792, height=1024, aspect_ratio="7:4"), "sora-2-pro")
    with pytest.raises(InvalidParameter) as caught:
        adapter.validate(_spec(width=1792, height=1024, aspect_ratio="7:4"), "sora-2")
    assert caught.value.param == "size" and "1280x720, 720x1280" in caught.value.message
    anything = _spec(seconds=5, width=1920, height=1080, seed=7, negative_prompt="x", fps=30)
    adapter.validate(anything, "wan-2.2-on-vllm")
    # Any type vidgate reads: the adapter fits (and so re-encodes) every image.
    adapter.validate(_spec(image=_IMAGE.model_copy(update={"content_type": "image/bmp"})), "sora-2")


async def test_remix_uses_the_upstream_id(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    await _run(adapter, _spec(), tmp_path)
    source_id = next(iter(upstream.tasks))
    source = SourceRef(
        video_id="video_x",
        sha256="0" * 64,
        seconds=4,
        width=1280,
        height=720,
        fps=24,
        provider="oa",
        upstream_id=source_id,
    )
    spec = _spec(kind="remix", source=source, prompt="in winter")
    adapter.validate(spec, "sora-2")
    result = await adapter.submit(spec, idempotency_key="job-3", upstream_model="sora-2")
    assert upstream.tasks[result.upstream_id].request["remixed_from_video_id"] == source_id


async def test_validate_rejects_what_the_api_cannot_do(adapter: OpenAIVideosProvider) -> None:
    with pytest.raises(InvalidParameter, match="one video per request"):
        adapter.validate(_spec(n=2), "sora-2")
    foreign = SourceRef(
        video_id="v",
        sha256="0" * 64,
        seconds=4,
        width=1280,
        height=720,
        fps=24,
        provider="other",
        upstream_id="x",
    )
    with pytest.raises(InvalidParameter, match="only videos it generated"):
        adapter.validate(_spec(kind="remix", source=foreign), "sora-2")


async def test_failures_map_onto_the_job(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider
) -> None:
    upstream, _ = fake
    upstream.fail_tasks = (
        "moderation_blocked",
        "Your request was blocked by our moderation system.",
    )
    result = await adapter.submit(_spec(), idempotency_key="job-4", upstream_model="sora-2")
    status = await adapter.status(task_of(result))
    while status.state != "failed":
        status = await adapter.status(task_of(result))
    assert (status.error_code, status.transient) == ("upstream_content_refused", False)
    assert status.error_message == (
        f"{adapter.name}: Your request was blocked by our moderation system. (moderation_blocked)"
    )
    with pytest.raises(ProviderError) as rejected:
        await adapter.submit(_spec(seconds=5), idempotency_key="job-5", upstream_model="sora-2")
    assert not rejected.value.retryable and "Supported values" in rejected.value.message


async def test_rate_limits_server_errors_and_bad_keys(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider, tmp_path: Path
) -> None:
    upstream, server = fake
    upstream.fail_next_creates(1, 429)
    with pytest.raises(ProviderError) as limited:
        await adapter.submit(_spec(), idempotency_key="job-6", upstream_model="sora-2")
    assert limited.value.retryable and limited.value.retry_after_s == 1.0
    assert (
        await adapter.submit(_spec(), idempotency_key="job-6", upstream_model="sora-2")
    ).upstream_id
    upstream.fail_next_creates(1, 503)
    with pytest.raises(ProviderError) as unavailable:
        await adapter.submit(_spec(), idempotency_key="job-8", upstream_model="sora-2")
    assert unavailable.value.retryable
    wrong = _adapter(server, tmp_path, key="sk-wrong")
    with pytest.raises(ProviderError) as denied:
        await wrong.submit(_spec(), idempotency_key="job-9", upstream_model="sora-2")
    assert denied.value.unhealthy and not denied.value.retryable
    assert "sk-wrong" not in str(denied.value)
    await wrong.aclose()


async def test_expired_content_cannot_be_fetched_again(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    result = await adapter.submit(_spec(), idempotency_key="job-10", upstream_model="sora-2")
    while (await adapter.status(task_of(result))).state != "succeeded":
        pass
    upstream.expire_urls = True
    with pytest.raises(ProviderError) as expired:
        await adapter.fetch(task_of(result), tmp_path)
    assert expired.value.code == "result_expired" and not expired.value.retryable


async def test_cancel_deletes_upstream(
    fake: tuple[FakeOpenAIVideos, FakeServer], adapter: OpenAIVideosProvider
) -> None:
    upstream, _ = fake
    result = await adapter.submit(_spec(), idempotency_key="job-11", upstream_model="sora-2")
    await adapter.cancel(task_of(result))
    await adapter.cancel(task_by_id("video_missing"))  # already gone: not an error
    assert upstream.cancelled == [result.upstream_id]


async def test_last_frame_and_references_are_refused(adapter: OpenAIVideosProvider) -> None:
    image = ImageRef(sha256="0" * 64, width=64, height=48, content_type="image/png")
    with pytest.raises(InvalidParameter) as last:
        adapter.validate(_spec(image=image, last_frame=image), "sora-2")
    assert last.value.param == "last_frame"
    with pytest.raises(InvalidParameter) as refs:
        adapter.validate(_spec(reference_images=(image,)), "sora-2")
    assert refs.value.param == "reference_images"
