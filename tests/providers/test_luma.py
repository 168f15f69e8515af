"""The Luma adapter against a fake Dream Machine API on loopback (reference section 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.harness import CallbackSink, FakeServer, FakeTask
from tests.fakes.luma import API_KEY, BASE_PATH, FakeLuma
from tests.providers.tasks import spec_of, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers import luma
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamTask
from vidgate.providers.luma import LumaProvider, create

DEPLOYMENT = "luma-test"
INPUT_BASE = "https://gw.example.com/v1/inputs"


@pytest.fixture
def fake() -> Iterator[FakeLuma]:
    upstream = FakeLuma()
    with FakeServer(upstream):
        yield upstream


def _deps(tmp_path: Path, *, public: bool = True) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"),
        settings=Settings(data_dir=tmp_path),
        input_url=(lambda sha: f"{INPUT_BASE}/{sha}?sig=abc") if public else None,
    )


def _adapter(fake: FakeLuma, deps: ProviderDeps, key: str = API_KEY) -> LumaProvider:
    config = DeploymentConfig(
        name=DEPLOYMENT,
        provider="luma",
        base_url=f"{fake.base_url}{BASE_PATH}",
        credentials={"api_key": SecretStr(key)},
        options={"poll_s": 0.05},
    )
    return create(config, deps)


@pytest.fixture
async def adapter(fake: FakeLuma, tmp_path: Path) -> AsyncIterator[LumaProvider]:
    provider = _adapter(fake, _deps(tmp_path))
    yield provider
    await provider.aclose()


def _spec(**changes: Any) -> JobSpec:
    base: dict[str, Any] = dict(model="luma-ray-2", prompt="a fox in the snow")
    base.update(changes)
    return spec_of(**base)


async def _until_done(adapter: LumaProvider, upstream: UpstreamTask) -> list[str]:
    states: list[str] = []
    for _ in range(10):
        status = await adapter.status(upstream)
        states.append(status.state)
        if status.state in ("succeeded", "failed", "cancelled"):
            break
    return states


# --- pure mapping -------------------------------------------------------------------


def test_body_maps_duration_resolution_and_ratio() -> None:
    body = luma.build_body(
        _spec(seconds=9, resolution="4K", aspect_ratio="9:16", width=2160, height=3840),
        "ray-flash-2",
        None,
    )
    assert body == {
        "generation_type": "video",
        "model": "ray-flash-2",
        "prompt": "a fox in the snow",
        "duration": "9s",
        "resolution": "4k",
        "aspect_ratio": "9:16",
    }


def test_parse_generation_states() -> None:
    assert luma.parse_generation({"state": "queued"}, 3.0).state == "queued"
    running = luma.parse_generation({"state": "dreaming"}, 3.0)
    assert (running.state, running.progress, running.poll_after_s) == ("running", None, 3.0)
    done = luma.parse_generation({"state": "completed", "assets": {"video": "https://x/v.mp4"}})
    assert (done.state, done.progress) == ("succeeded", 100)
    empty = luma.parse_generation({"state": "completed", "assets": {"video": None}})
    assert (empty.state, empty.error_code, empty.transient) == ("failed", "upstream_failed", True)
    failed = luma.parse_generation({"state": "failed", "failure_reason": "prompt moderated"})
    assert (failed.state, failed.error_code, failed.transient) == (
        "failed",
        "upstream_content_refused",
        False,
    )
    assert failed.error_message == "luma: prompt moderated"
    coded = luma.parse_generation(
        {"state": "failed", "failure_code": "rate_limited", "failure_reason": "slow down"}
    )
    assert (coded.error_code, coded.error_message, coded.transient) == (
        "upstream_failed",
        "luma: slow down (rate_limited)",
        True,
    )
    plain = luma.parse_generation({"state": "failed", "failure_reason": "could not render"})
    assert (plain.error_code, plain.transient) == ("upstream_failed", False)
    with pytest.raises(ProviderError) as exc:
        luma.parse_generation({"state": "exploded"})
    assert exc.value.retryable


def test_error_message_reads_validation_detail() -> None:
    body = {"detail": [{"loc": ["body", "duration"], "msg": "must be 5s or 9s"}]}
    assert luma.error_message(httpx.Response(422, json=body)) == "duration: must be 5s or 9s"
    assert luma.error_message(httpx.Response(400, json={"detail": "nope"})) == "nope"


@pytest.mark.parametrize(
    ("changes", "param", "words"),
    [
        ({"seconds": 4}, "seconds", "allowed: 5, 9"),
        ({"n": 2}, "n", "one video"),
        ({"seed": 7}, "seed", "seed"),
        ({"negative_prompt": "blur"}, "negative_prompt", "negative prompt"),
        ({"fps": 30}, "fps", "24"),
        ({"resolution": "480p", "width": 854, "height": 480}, "resolution", "540p"),
        ({"aspect_ratio": "2:1"}, "aspect_ratio", "21:9"),
        ({"kind": "remix"}, "video", "remix"),
    ],
)
def test_validate_rejects(changes: dict[str, Any], param: str, words: str, tmp_path: Path) -> None:
    provider = create(
        DeploymentConfig(name=DEPLOYMENT, provider="luma", credentials={"api_key": "k"}),
        _deps(tmp_path),
    )
    with pytest.raises(InvalidParameter) as exc:
        provider.validate(_spec(**changes), "ray-2")
    assert exc.value.param == param
    assert "luma" in exc.value.message and words in exc.value.message


def test_validate_rejects_unknown_model_image_without_url_and_foreign_extend(
    tmp_path: Path,
) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="luma", credentials={"api_key": "k"})
    with pytest.raises(InvalidParameter, match="ray-flash-2"):
        create(config, _deps(tmp_path)).validate(_spec(), "ray-3")
    image = ImageRef(sha256="a" * 64, width=64, height=48, content_type="image/png")
    private = create(config, _deps(tmp_path, public=False))
    with pytest.raises(InvalidParameter, match="VIDGATE_PUBLIC_BASE_URL") as exc:
        private.validate(_spec(image=image), "ray-2")
    assert exc.value.param == "image"
    foreign = SourceRef(
        video_id="video_1", sha256="b" * 64, seconds=5, width=1280, height=720, fps=24,
        provider="other-deployment", upstream_id="gen-1",
    )  # fmt: skip
    with pytest.raises(InvalidParameter, match=DEPLOYMENT):
        create(config, _deps(tmp_path)).validate(_spec(kind="extend", source=foreign), "ray-2")


# --- against the fake ---------------------------------------------------------------


async def test_text_to_video_round_trip(
    fake: FakeLuma, adapter: LumaProvider, tmp_path: Path
) -> None:
    result = await adapter.submit(_spec(), idempotency_key="video_1", upstream_model="ray-2")
    assert result.poll_after_s == 0.05
    assert fake.requests == [
        {
            "generation_type": "video",
            "model": "ray-2",
            "prompt": "a fox in the snow",
            "duration": "5s",
            "resolution": "720p",
            "aspect_ratio": "16:9",
        }
    ]
    fake.polls_to_finish = 3
    assert await _until_done(adapter, task_of(result)) == ["queued", "running", "succeeded"]
    out = tmp_path / "out"
    out.mkdir()
    paths = await adapter.fetch(task_of(result), out)
    assert paths == [out / "0.mp4"]
    info = probe_video(paths[0])
    assert (info.width, info.height, info.codec) == (160, 96, "h264")


async def test_image_to_video_sends_the_public_url(
    fake: FakeLuma, adapter: LumaProvider, tmp_path: Path
) -> None:
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(png_bytes())
    image = ImageRef(sha256=blob.sha256, width=64, height=48, content_type="image/png")
    await adapter.submit(_spec(image=image), idempotency_key="v", upstream_model="ray-2")
    assert fake.requests[0]["keyframes"] == {
        "frame0": {"type": "image", "url": f"{INPUT_BASE}/{blob.sha256}?sig=abc"}
    }


async def test_extend_references_the_source_generation(
    fake: FakeLuma, adapter: LumaProvider
) -> None:
    first = await adapter.submit(_spec(), idempotency_key="v1", upstream_model="ray-2")
    await _until_done(adapter, task_of(first))
    source = SourceRef(
        video_id="video_1", sha256="b" * 64, seconds=5, width=1280, height=720, fps=24,
        provider=DEPLOYMENT, upstream_id=first.upstream_id,
    )  # fmt: skip
    second = await adapter.submit(
        _spec(kind="extend", source=source), idempotency_key="v2", upstream_model="ray-2"
    )
    assert second.upstream_id != first.upstream_id
    assert fake.requests[1]["keyframes"] == {
        "frame0": {"type": "generation", "id": first.upstream_id}
    }


async def test_extend_of_an_unfinished_generation_is_refused(
    fake: FakeLuma, adapter: LumaProvider
) -> None:
    first = await adapter.submit(_spec(), idempotency_key="v1", upstream_model="ray-2")
    source = SourceRef(
        video_id="video_1", sha256="b" * 64, seconds=5, width=1280, height=720, fps=24,
        provider=DEPLOYMENT, upstream_id=first.upstream_id,
    )  # fmt: skip
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(
            _spec(kind="extend", source=source), idempotency_key="v2", upstream_model="ray-2"
        )
    assert exc.value.code == "upstream_rejected" and not exc.value.retryable
    assert "completed generation" in exc.value.message


async def test_failed_generation_reports_the_reason(fake: FakeLuma, adapter: LumaProvider) -> None:
    fake.fail_tasks = ("moderation", "400: prompt failed moderation")
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    await adapter.status(task_of(result))
    status = await adapter.status(task_of(result))
    assert status.state == "failed"
    assert status.error_code == "upstream_content_refused"
    assert status.error_message == "luma: 400: prompt failed moderation"


async def test_rate_limit_is_retryable_with_retry_after(
    fake: FakeLuma, adapter: LumaProvider
) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "7"})
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    assert exc.value.retryable and exc.value.retry_after_s == 7.0
    assert exc.value.code == "upstream_rate_limited"
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    assert result.upstream_id in fake.tasks
    assert (fake.create_calls, fake.submissions) == (2, 1)


async def test_server_error_is_retryable(fake: FakeLuma, adapter: LumaProvider) -> None:
    fake.fail_next_creates(1, 503)
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    assert exc.value.retryable and exc.value.code == "upstream_error"
    assert "injected 503" in exc.value.message


async def test_wrong_key_marks_the_deployment_unhealthy(fake: FakeLuma, tmp_path: Path) -> None:
    provider = _adapter(fake, _deps(tmp_path), key="wrong-key")
    try:
        with pytest.raises(ProviderError) as exc:
            await provider.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    finally:
        await provider.aclose()
    assert exc.value.unhealthy and not exc.value.retryable
    assert "wrong-key" not in str(exc.value)
    assert fake.auth_failures == 1 and fake.submissions == 0


async def test_expired_url_is_refreshed_by_reading_the_generation(
    fake: FakeLuma, adapter: LumaProvider, tmp_path: Path
) -> None:
    fake.expire_urls = True
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    assert (await _until_done(adapter, task_of(result)))[-1] == "succeeded"
    fake.refresh_urls()  # the URL the adapter saw in that status read is now stale
    reads = fake.reads
    paths = await adapter.fetch(task_of(result), tmp_path)
    assert probe_video(paths[0]).codec == "h264"
    # The remembered URL was tried and refused, then one re-read gave a working one.
    assert (fake.expired_downloads, fake.reads - reads, fake.downloads) == (1, 1, 1)


class _StaleLuma(FakeLuma):
    """A Luma whose re-reads never hand out a working URL."""

    def result_url(self, task: FakeTask) -> str:
        return f"{self.base_url}/_files/{task.id}/stale/video.mp4"


async def test_expired_url_without_a_fresh_one_is_result_expired(tmp_path: Path) -> None:
    upstream = _StaleLuma()
    upstream.expire_urls = True
    with FakeServer(upstream):
        provider = _adapter(upstream, _deps(tmp_path))
        try:
            result = await provider.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
            await _until_done(provider, task_of(result))
            with pytest.raises(ProviderError) as exc:
                await provider.fetch(task_of(result), tmp_path)
        finally:
            await provider.aclose()
    assert exc.value.code == "result_expired" and not exc.value.retryable
    # The re-read named the same URL: not downloaded a second time.
    assert upstream.downloads == 0 and upstream.expired_downloads == 1


async def test_cancel_deletes_the_generation(fake: FakeLuma, adapter: LumaProvider) -> None:
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="ray-2")
    await adapter.cancel(task_of(result))
    assert fake.cancelled == [result.upstream_id]
    with pytest.raises(ProviderError) as exc:
        await adapter.status(task_of(result))
    assert exc.value.code == "upstream_not_found"
    await adapter.cancel(task_of(result))  # already gone: not an error


async def test_submit_refusal_is_a_provider_error(fake: FakeLuma, tmp_path: Path) -> None:
    # An image job accepted while the gateway had a public URL, submitted after it lost it.
    provider = _adapter(fake, _deps(tmp_path, public=False))
    image = ImageRef(sha256="a" * 64, width=64, height=48, content_type="image/png")
    try:
        with pytest.raises(ProviderError) as exc:
            await provider.submit(_spec(image=image), idempotency_key="v", upstream_model="ray-2")
    finally:
        await provider.aclose()
    assert exc.value.code == "invalid_request" and not exc.value.retryable
    assert fake.create_calls == 0


async def test_callback_url_is_sent_and_called_with_the_generation(
    fake: FakeLuma, tmp_path: Path
) -> None:
    sink = CallbackSink()
    with FakeServer(sink):
        deps = ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"),
            settings=Settings(data_dir=tmp_path),
            callback_url=sink.url,
        )
        adapter = _adapter(fake, deps)
        try:
            result = await adapter.submit(_spec(), idempotency_key="video_cb", upstream_model=None)
            assert fake.requests[-1]["callback_url"] == sink.url("video_cb")
            fake.polls_to_finish = 10_000
            assert fake.finish() == [200]
            [call] = sink.received
            assert call.path == "/v1/callbacks/video_cb"
            assert call.body["id"] == result.upstream_id and call.body["state"] == "completed"
            assert (await adapter.status(task_of(result))).state == "succeeded"
        finally:
            await adapter.aclose()


# --- last frame and reference images ---------------------------------------------------

_IMAGE = ImageRef(sha256="a" * 64, width=64, height=48, content_type="image/png")


async def test_first_and_last_frame_go_as_frame0_and_frame1(
    fake: FakeLuma, adapter: LumaProvider, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    first = await blobs.put_bytes(png_bytes(64, 48, (255, 0, 0)))
    last = await blobs.put_bytes(png_bytes(64, 48, (0, 0, 255)))
    spec = _spec(
        image=ImageRef(sha256=first.sha256, width=64, height=48, content_type="image/png"),
        last_frame=ImageRef(sha256=last.sha256, width=64, height=48, content_type="image/png"),
    )
    adapter.validate(spec, "ray-2")
    await adapter.submit(spec, idempotency_key="v", upstream_model="ray-2")
    assert fake.requests == [
        {
            "generation_type": "video",
            "model": "ray-2",
            "prompt": "a fox in the snow",
            "duration": "5s",
            "resolution": "720p",
            "aspect_ratio": "16:9",
            "keyframes": {
                "frame0": {"type": "image", "url": f"{INPUT_BASE}/{first.sha256}?sig=abc"},
                "frame1": {"type": "image", "url": f"{INPUT_BASE}/{last.sha256}?sig=abc"},
            },
        }
    ]


_SOURCE = SourceRef(
    video_id="video_1", sha256="b" * 64, seconds=5, width=1280, height=720, fps=24,
    provider=DEPLOYMENT, upstream_id="gen-1",
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "public", "param", "words"),
    [
        ({"reference_images": [_IMAGE]}, True, "reference_images",
         "reference images are not supported"),
        ({"image": _IMAGE, "reference_images": [_IMAGE] * 2}, True, "reference_images",
         "allowed: none"),
        ({"last_frame": _IMAGE}, True, "last_frame", "allowed: image with last_frame"),
        ({"image": _IMAGE, "last_frame": _IMAGE, "kind": "extend", "source": _SOURCE}, True,
         "last_frame", "cannot be used to extend"),
        ({"image": _IMAGE, "last_frame": _IMAGE}, False, "last_frame", "VIDGATE_PUBLIC_BASE_URL"),
    ],
)  # fmt: skip
def test_validate_rejects_frames_and_references(
    changes: dict[str, Any], public: bool, param: str, words: str, tmp_path: Path
) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="luma", credentials={"api_key": "k"})
    provider = create(config, _deps(tmp_path, public=public))
    with pytest.raises(InvalidParameter) as exc:
        provider.validate(_spec(**changes), "ray-2")
    assert exc.value.param == param
    assert "luma" in exc.value.message and words in exc.value.message


_URL = "https://gw.example.com/v1/inputs/x"


@pytest.mark.parametrize(
    ("keyframes", "loc", "message"),
    [
        (
            {"frame0": {"type": "image", "url": _URL},
             "frame1": {"type": "image", "url": "data:image/png;base64,AA"}},
            ["body", "keyframes", "frame1", "url"], "http(s) URL",
        ),
        (
            {"frame0": {"type": "image", "url": _URL},
             "frame1": {"type": "image", "url": _URL, "weight": 1}},
            ["body", "keyframes", "frame1"], "exactly type, url",
        ),
        (
            {"frame0": {"type": "image", "url": _URL}, "frame2": {"type": "image", "url": _URL}},
            ["body", "keyframes"], "only frame0 and frame1",
        ),
    ],
)  # fmt: skip
async def test_fake_refuses_bad_keyframes(
    fake: FakeLuma, keyframes: dict[str, Any], loc: list[str], message: str
) -> None:
    body = {"model": "ray-2", "prompt": "x", "keyframes": keyframes}
    async with httpx.AsyncClient(base_url=f"{fake.base_url}{BASE_PATH}") as client:
        response = await client.post(
            "/generations/video", headers={"Authorization": f"Bearer {API_KEY}"}, json=body
        )
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == loc and message in detail["msg"]
    assert fake.submissions == 0


async def test_fake_refuses_reference_images(fake: FakeLuma) -> None:
    body = {"model": "ray-2", "prompt": "x", "reference_images": [{"url": _URL}]}
    async with httpx.AsyncClient(base_url=f"{fake.base_url}{BASE_PATH}") as client:
        response = await client.post(
            "/generations/video", headers={"Authorization": f"Bearer {API_KEY}"}, json=body
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reference_images"]
