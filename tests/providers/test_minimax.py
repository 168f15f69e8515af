"""The MiniMax Hailuo adapter against a fake MiniMax API on loopback (reference section 8)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import png_bytes
from tests.fakes.harness import CallbackSink, FakeServer
from tests.fakes.minimax import DEPLOYMENT, FakeMiniMax
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus, UpstreamTask
from vidgate.providers.minimax import (
    MiniMaxProvider,
    create,
    create_body,
    error_for,
    parse_status,
)

NAME = "minimax-main"


def make_spec(**update: Any) -> JobSpec:
    base = spec_of(model="hailuo-02", prompt="a paper boat on a river [Tracking shot]", seconds=6)
    return base.model_copy(update=update)


@pytest.fixture
def fake() -> Iterator[FakeMiniMax]:
    fake = FakeMiniMax()
    fake.polls_to_finish = 3
    with FakeServer(fake):
        yield fake


@pytest.fixture
def deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def config(base_url: str, **changes: Any) -> DeploymentConfig:
    return DeploymentConfig(name=NAME, base_url=base_url, **{**DEPLOYMENT, **changes})


@pytest.fixture
async def provider(fake: FakeMiniMax, deps: ProviderDeps) -> AsyncIterator[MiniMaxProvider]:
    adapter = create(config(fake.base_url), deps)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def offline(deps: ProviderDeps) -> AsyncIterator[MiniMaxProvider]:
    """For validate(), which must do no I/O: nothing listens at this address."""
    adapter = create(config("http://127.0.0.1:9"), deps)
    yield adapter
    await adapter.aclose()


async def until_done(provider: MiniMaxProvider, upstream: UpstreamTask) -> list[UpstreamStatus]:
    seen = []
    for _ in range(10):
        status = await provider.status(upstream)
        seen.append(status)
        if status.state not in ("queued", "running"):
            return seen
    raise AssertionError(f"never finished: {seen}")


async def test_text_to_video_end_to_end(
    fake: FakeMiniMax, provider: MiniMaxProvider, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_1", upstream_model=None)
    assert result.upstream_id in fake.tasks
    assert result.poll_after_s == 2.0
    states = [s.state for s in await until_done(provider, task_of(result))]
    assert states == ["queued", "running", "succeeded"]
    # status() asked for the download URL once the task succeeded.
    assert fake.retrieves == 1
    queries = fake.queries
    paths = await provider.fetch(task_of(result), tmp_path)
    assert paths == [tmp_path / "0.mp4"]
    info = probe_video(paths[0])
    assert (info.width, info.height, info.codec) == (160, 96, "h264")
    assert (fake.queries, fake.retrieves, fake.downloads) == (queries, 1, 1)


async def test_request_body_fields(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    spec = make_spec(resolution="1080p", width=1920, height=1080, seed=7)
    await provider.submit(spec, idempotency_key="video_2", upstream_model="MiniMax-Hailuo-2.3")
    assert fake.requests[-1] == {
        "model": "MiniMax-Hailuo-2.3",
        "prompt": "a paper boat on a river [Tracking shot]",
        "duration": 6,
        "resolution": "1080P",
    }
    await provider.submit(make_spec(seconds=10), idempotency_key="video_3", upstream_model=None)
    body = fake.requests[-1]
    assert (body["model"], body["duration"], body["resolution"]) == (
        "MiniMax-Hailuo-02",
        10,
        "768P",
    )
    assert isinstance(body["duration"], int)


async def test_image_to_video_sends_a_data_url(
    fake: FakeMiniMax, provider: MiniMaxProvider, deps: ProviderDeps, tmp_path: Path
) -> None:
    data = png_bytes(640, 360)
    blob = await deps.blobs.put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=640, height=360, content_type="image/png")
    spec = make_spec(image=image)
    provider.validate(spec, "I2V-01")
    result = await provider.submit(spec, idempotency_key="video_4", upstream_model="I2V-01")
    body = fake.requests[-1]
    assert body["first_frame_image"] == "data:image/png;base64," + base64.b64encode(data).decode()
    assert body["model"] == "I2V-01"
    assert (await until_done(provider, task_of(result)))[-1].state == "succeeded"
    assert probe_video((await provider.fetch(task_of(result), tmp_path))[0]).codec == "h264"


@pytest.mark.parametrize(
    ("update", "model", "param"),
    [
        ({"seconds": 5}, None, "seconds"),
        ({"seconds": 10, "resolution": "1080p", "width": 1920, "height": 1080}, None, "seconds"),
        ({"resolution": "480p", "width": 854, "height": 480}, None, "resolution"),
        ({"resolution": "4K", "width": 3840, "height": 2160}, None, "resolution"),
        ({"resolution": "1080p", "width": 1920, "height": 1080}, "T2V-01", "resolution"),
        ({"seconds": 10}, "T2V-01", "seconds"),
        ({"aspect_ratio": "9:16", "width": 720, "height": 1280}, None, "aspect_ratio"),
        ({"n": 2}, None, "n"),
        ({"negative_prompt": "blur"}, None, "negative_prompt"),
        ({"prompt": "x" * 2001}, None, "prompt"),
        ({}, "I2V-01", "image"),
        ({}, "MiniMax-Hailuo-2.3-Fast", "image"),
        ({}, "S2V-01", "model"),
        (
            {"image": ImageRef(sha256="a" * 64, width=300, height=300, content_type="image/png")},
            None,
            "image",
        ),
        (
            {"image": ImageRef(sha256="a" * 64, width=1800, height=400, content_type="image/png")},
            None,
            "image",
        ),
        (
            {"image": ImageRef(sha256="a" * 64, width=640, height=360, content_type="image/gif")},
            None,
            "image",
        ),
        (
            {"image": ImageRef(sha256="a" * 64, width=640, height=360, content_type="image/png")},
            "T2V-01",
            "image",
        ),
    ],
)
def test_validate_rejects(
    offline: MiniMaxProvider, update: dict[str, Any], model: str | None, param: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        offline.validate(make_spec(**update), model)
    assert caught.value.param == param
    assert "MiniMax" in caught.value.message


def test_validate_rejects_remix_and_extend(offline: MiniMaxProvider) -> None:
    source = SourceRef(
        video_id="v", sha256="0" * 64, seconds=6, width=1280, height=720, fps=24, provider=NAME
    )
    for kind in ("remix", "extend"):
        with pytest.raises(InvalidParameter, match="allowed: generate"):
            offline.validate(make_spec(kind=kind, source=source), None)


def test_validate_accepts(offline: MiniMaxProvider) -> None:
    offline.validate(make_spec(), None)
    offline.validate(make_spec(seconds=10), None)
    offline.validate(make_spec(resolution="1080p", width=1920, height=1080), None)
    # A first frame sets the shape, so a portrait request is fine with one.
    image = ImageRef(sha256="a" * 64, width=720, height=1280, content_type="image/webp")
    offline.validate(make_spec(image=image, aspect_ratio="9:16", width=720, height=1280), None)


async def test_failed_task_carries_the_reason(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    fake.fail_tasks = ("1027", "output new_sensitive")
    result = await provider.submit(make_spec(), idempotency_key="video_5", upstream_model=None)
    final = (await until_done(provider, task_of(result)))[-1]
    assert final.state == "failed"
    assert (final.error_code, final.transient) == ("upstream_content_refused", False)
    assert final.error_message == f"{NAME}: output new_sensitive (status_code 1027)"


async def test_generic_failure(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    fake.fail_tasks = ("render_error", "video generation failed")
    result = await provider.submit(make_spec(), idempotency_key="video_6", upstream_model=None)
    final = (await until_done(provider, task_of(result)))[-1]
    # The fake reports it as 1000, "unknown error": retry later, says errorcode.md.
    assert (final.state, final.error_code, final.transient) == ("failed", "upstream_failed", True)
    assert "video generation failed" in (final.error_message or "")


async def test_internal_error_of_a_task_is_transient(
    fake: FakeMiniMax, provider: MiniMaxProvider
) -> None:
    fake.fail_tasks = ("1024", "internal error")
    result = await provider.submit(make_spec(), idempotency_key="video_6b", upstream_model=None)
    final = (await until_done(provider, task_of(result)))[-1]
    assert (final.error_code, final.transient) == ("upstream_failed", True)
    assert final.error_message == f"{NAME}: internal error (status_code 1024)"


async def test_sensitive_prompt_on_http_200(provider: MiniMaxProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.submit(
            make_spec(prompt="a forbidden scene"), idempotency_key="video_7", upstream_model=None
        )
    assert caught.value.code == "upstream_content_refused"
    assert not caught.value.retryable
    assert "input new_sensitive (status_code 1026)" in caught.value.message


async def test_rate_limited_with_retry_after_then_success(
    fake: FakeMiniMax, provider: MiniMaxProvider
) -> None:
    # MiniMax's rate limit is base_resp 1002 on an HTTP 200.
    fake.fail_next_creates(1, 429, {"Retry-After": "4"})
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_8", upstream_model=None)
    assert caught.value.code == "upstream_rate_limited"
    assert caught.value.retryable and caught.value.retry_after_s == 4.0
    assert "(status_code 1002)" in caught.value.message
    result = await provider.submit(make_spec(), idempotency_key="video_8", upstream_model=None)
    assert result.upstream_id in fake.tasks


@pytest.mark.parametrize("code", [1000, 1001, 1024])
async def test_retry_later_codes(fake: FakeMiniMax, provider: MiniMaxProvider, code: int) -> None:
    fake.fail_next_with_code(code, "internal error")
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_9", upstream_model=None)
    assert caught.value.retryable and caught.value.code == "upstream_error"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_http_server_errors_are_retryable(
    fake: FakeMiniMax, provider: MiniMaxProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_10", upstream_model=None)
    assert caught.value.retryable and caught.value.code == "upstream_error"


async def test_insufficient_balance(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    fake.fail_next_with_code(1008, "insufficient balance")
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_11", upstream_model=None)
    assert not caught.value.retryable and caught.value.unhealthy
    assert caught.value.code == "upstream_insufficient_balance"


async def test_invalid_params_are_rejected(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    fake.fail_next_creates(1, 400)
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_12", upstream_model=None)
    assert caught.value.code == "upstream_rejected" and not caught.value.retryable


async def test_wrong_key_is_unhealthy(fake: FakeMiniMax, deps: ProviderDeps) -> None:
    adapter = create(config(fake.base_url, credentials={"api_key": "wrong-key"}), deps)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.submit(make_spec(), idempotency_key="video_13", upstream_model=None)
    finally:
        await adapter.aclose()
    assert caught.value.unhealthy and not caught.value.retryable
    assert "invalid api key (status_code 2049)" in caught.value.message
    assert "wrong-key" not in str(caught.value)
    assert fake.create_calls == 0


def test_fake_answers_a_missing_key_on_http_200(fake: FakeMiniMax) -> None:
    response = httpx.post(f"{fake.base_url}/v1/video_generation", json={})
    assert response.status_code == 200
    assert response.json()["base_resp"]["status_code"] == 1004


async def test_injected_401_is_unhealthy(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    fake.fail_next_creates(1, 401)
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_14", upstream_model=None)
    assert caught.value.unhealthy and caught.value.code == "upstream_auth_failed"


async def test_unknown_task_is_rejected(provider: MiniMaxProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.status(task_by_id("404404"))
    assert caught.value.code == "upstream_rejected"


async def test_expired_download_url_is_refreshed(
    fake: FakeMiniMax, provider: MiniMaxProvider, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_15", upstream_model=None)
    await until_done(provider, task_of(result))
    assert fake.retrieves == 1
    # The URL status() got is now stale (9 hours passed).
    fake.expire_urls = True
    fake.refresh_urls()
    paths = await provider.fetch(task_of(result), tmp_path)
    assert probe_video(paths[0]).codec == "h264"
    assert fake.retrieves == 2 and fake.downloads == 1


async def test_fetch_without_a_cached_url(
    fake: FakeMiniMax, provider: MiniMaxProvider, deps: ProviderDeps, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_16", upstream_model=None)
    await until_done(provider, task_of(result))
    other = create(config(fake.base_url), deps)  # another worker process: no cache
    try:
        paths = await other.fetch(task_of(result), tmp_path)
    finally:
        await other.aclose()
    assert len(paths) == 1 and fake.retrieves == 2 and fake.downloads == 1


async def test_cancel_is_a_no_op(fake: FakeMiniMax, provider: MiniMaxProvider) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_17", upstream_model=None)
    await provider.cancel(task_of(result))
    assert fake.cancelled == []


# --- pure mapping ---------------------------------------------------------------------


def test_create_body_with_first_frame() -> None:
    body = create_body(make_spec(), "MiniMax-Hailuo-02", first_frame="data:image/png;base64,AA==")
    assert body == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "a paper boat on a river [Tracking shot]",
        "duration": 6,
        "resolution": "768P",
        "first_frame_image": "data:image/png;base64,AA==",
    }


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Preparing", "queued"),
        ("Queueing", "queued"),
        ("Processing", "running"),
        ("Success", "succeeded"),
    ],
)
def test_parse_status_states(status: str, state: str) -> None:
    body = {"task_id": "1", "status": status, "base_resp": {"status_code": 0}}
    assert parse_status(body, provider="m").state == state


def test_parse_status_query_errors() -> None:
    with pytest.raises(ProviderError) as caught:
        parse_status(
            {"base_resp": {"status_code": 1002, "status_msg": "rate limit"}},
            provider="m",
            retry_after=3.0,
        )
    assert caught.value.retryable and caught.value.retry_after_s == 3.0
    refused = parse_status({"base_resp": {"status_code": 1026, "status_msg": "x"}}, provider="m")
    assert (refused.state, refused.error_code) == ("failed", "upstream_content_refused")
    plain = parse_status({"status": "Fail", "base_resp": {"status_code": 0}}, provider="m")
    assert (plain.state, plain.error_message) == ("failed", "m: the task failed")


@pytest.mark.parametrize(
    ("code", "retryable", "unhealthy", "name"),
    [
        (1002, True, False, "upstream_rate_limited"),
        (1004, False, True, "upstream_auth_failed"),
        (1008, False, True, "upstream_insufficient_balance"),
        (1027, False, False, "upstream_content_refused"),
        (2013, False, False, "upstream_rejected"),
        (9999, False, False, "upstream_rejected"),
    ],
)
def test_error_codes(code: int, retryable: bool, unhealthy: bool, name: str) -> None:
    error = error_for(code, "msg", provider="m")
    assert (error.retryable, error.unhealthy, error.code) == (retryable, unhealthy, name)


@pytest.mark.parametrize(
    "image",
    [
        base64.b64encode(png_bytes(640, 360)).decode(),  # no data: prefix
        "data:image/png;base64," + base64.b64encode(png_bytes(320, 180)).decode(),
        "data:image/png;base64," + base64.b64encode(png_bytes(1600, 400)).decode(),
    ],
)
def test_fake_refuses_images_minimax_would_refuse(fake: FakeMiniMax, image: str) -> None:
    response = httpx.post(
        f"{fake.base_url}/v1/video_generation",
        headers={"Authorization": f"Bearer {DEPLOYMENT['credentials']['api_key']}"},
        json={"model": "MiniMax-Hailuo-02", "prompt": "x", "first_frame_image": image},
    )
    assert response.status_code == 200
    assert response.json()["base_resp"]["status_code"] == 2013
    assert fake.submissions == 0


async def test_callback_url_is_validated_then_called(fake: FakeMiniMax, tmp_path: Path) -> None:
    sink = CallbackSink()
    with FakeServer(sink):
        deps = ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"),
            settings=Settings(data_dir=tmp_path),
            callback_url=sink.url,
        )
        adapter = create(config(fake.base_url), deps)
        try:
            result = await adapter.submit(
                make_spec(), idempotency_key="video_cb", upstream_model=None
            )
            assert fake.requests[-1]["callback_url"] == sink.url("video_cb")
            assert fake.finish() == [200]
            # The sink echoed the challenge, so the URL was validated and called.
            assert fake.challenges == {result.upstream_id: True}
            [call] = sink.received
            assert call.body["task_id"] == result.upstream_id
            assert call.body["status"] == "success" and call.body["file_id"]
            assert (await adapter.status(task_of(result))).state == "succeeded"
        finally:
            await adapter.aclose()


async def test_an_unvalidated_callback_url_is_never_called(
    fake: FakeMiniMax, deps: ProviderDeps
) -> None:
    # Nothing listens here, so the challenge is never echoed.
    callback_deps = ProviderDeps(
        blobs=deps.blobs, settings=deps.settings, callback_url=lambda job: "http://127.0.0.1:9/cb"
    )
    adapter = create(config(fake.base_url), callback_deps)
    try:
        result = await adapter.submit(make_spec(), idempotency_key="video_x", upstream_model=None)
        assert fake.finish() == []
        assert fake.challenges == {result.upstream_id: False} and fake.callbacks_sent == []
    finally:
        await adapter.aclose()


# --- last frame and reference images ---------------------------------------------------

_FRAME = ImageRef(sha256="a" * 64, width=640, height=360, content_type="image/png")


async def test_first_and_last_frame_go_as_data_urls(
    fake: FakeMiniMax, provider: MiniMaxProvider, deps: ProviderDeps
) -> None:
    first_png = png_bytes(640, 360, (255, 0, 0))
    last_png = png_bytes(640, 360, (0, 0, 255))
    first = await deps.blobs.put_bytes(first_png)
    last = await deps.blobs.put_bytes(last_png)
    spec = make_spec(
        image=_FRAME.model_copy(update={"sha256": first.sha256}),
        last_frame=_FRAME.model_copy(update={"sha256": last.sha256, "content_type": "image/png"}),
    )
    provider.validate(spec, "MiniMax-Hailuo-02")
    await provider.submit(spec, idempotency_key="video_lf", upstream_model="MiniMax-Hailuo-02")
    prefix = "data:image/png;base64,"
    assert fake.requests[-1] == {
        "model": "MiniMax-Hailuo-02",
        "prompt": "a paper boat on a river [Tracking shot]",
        "duration": 6,
        "resolution": "768P",
        "first_frame_image": prefix + base64.b64encode(first_png).decode(),
        "last_frame_image": prefix + base64.b64encode(last_png).decode(),
    }


@pytest.mark.parametrize(
    ("update", "model", "param", "words"),
    [
        ({"image": _FRAME, "last_frame": _FRAME}, "MiniMax-Hailuo-2.3", "last_frame",
         "models that do: MiniMax-Hailuo-02"),
        ({"image": _FRAME, "last_frame": _FRAME}, "MiniMax-Hailuo-2.3-Fast", "last_frame",
         "last frame is not supported"),
        ({"image": _FRAME, "last_frame": _FRAME}, "I2V-01", "last_frame",
         "last frame is not supported"),
        ({"last_frame": _FRAME}, "MiniMax-Hailuo-02", "last_frame",
         "allowed: image with last_frame"),
        ({"image": _FRAME, "last_frame": _FRAME.model_copy(update={"content_type": "image/gif"})},
         "MiniMax-Hailuo-02", "last_frame", "allowed: image/jpeg, image/png, image/webp"),
        ({"image": _FRAME, "last_frame": _FRAME.model_copy(update={"width": 300, "height": 300})},
         "MiniMax-Hailuo-02", "last_frame", "at least 301 px on each side"),
        ({"reference_images": [_FRAME]}, "MiniMax-Hailuo-02", "reference_images",
         "allowed: none"),
        ({"image": _FRAME, "reference_images": [_FRAME]}, "I2V-01", "reference_images",
         "allowed: none"),
    ],
)  # fmt: skip
def test_validate_rejects_frames_and_references(
    offline: MiniMaxProvider, update: dict[str, Any], model: str, param: str, words: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        offline.validate(make_spec(**update), model)
    assert caught.value.param == param
    assert "MiniMax" in caught.value.message and words in caught.value.message


def test_create_body_with_both_frames() -> None:
    body = create_body(
        make_spec(), "MiniMax-Hailuo-02", first_frame="data:image/png;base64,AA==",
        last_frame="data:image/jpeg;base64,AQ==",
    )  # fmt: skip
    assert body["first_frame_image"] == "data:image/png;base64,AA=="
    assert body["last_frame_image"] == "data:image/jpeg;base64,AQ=="


_DATA_URL = "data:image/png;base64," + base64.b64encode(png_bytes(640, 360)).decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "MiniMax-Hailuo-2.3", "first_frame_image": _DATA_URL,
          "last_frame_image": _DATA_URL}, "does not support last_frame_image"),
        ({"model": "MiniMax-Hailuo-02", "last_frame_image": _DATA_URL},
         "last_frame_image requires first_frame_image"),
        ({"model": "MiniMax-Hailuo-02", "first_frame_image": _DATA_URL,
          "last_frame_image": base64.b64encode(png_bytes(640, 360)).decode()},
         "last_frame_image must be a URL or a base64 data URL"),
        ({"model": "MiniMax-Hailuo-02",
          "subject_reference": [{"type": "character", "image": [_DATA_URL]}]},
         "does not support subject_reference"),
        ({"model": "S2V-01",
          "subject_reference": [{"type": "character", "image": [_DATA_URL]}] * 2},
         "exactly one subject"),
    ],
)  # fmt: skip
def test_fake_refuses_frames_and_subjects_minimax_would_refuse(
    fake: FakeMiniMax, fields: dict[str, Any], message: str
) -> None:
    response = httpx.post(
        f"{fake.base_url}/v1/video_generation",
        headers={"Authorization": f"Bearer {DEPLOYMENT['credentials']['api_key']}"},
        json={"prompt": "x", **fields},
    )
    assert response.status_code == 200
    resp = response.json()["base_resp"]
    assert resp["status_code"] == 2013 and message in resp["status_msg"]
    assert fake.submissions == 0


def test_fake_takes_a_subject_reference_on_s2v(fake: FakeMiniMax) -> None:
    response = httpx.post(
        f"{fake.base_url}/v1/video_generation",
        headers={"Authorization": f"Bearer {DEPLOYMENT['credentials']['api_key']}"},
        json={"model": "S2V-01", "prompt": "x",
              "subject_reference": [{"type": "character", "image": [_DATA_URL]}]},
    )  # fmt: skip
    assert response.json()["base_resp"]["status_code"] == 0
