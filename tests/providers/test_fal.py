"""The fal adapter against a fake fal queue API on loopback (reference section 7)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.fal import FAL_KEY, FakeFal
from tests.fakes.harness import CallbackSink, FakeServer
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers import fal
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamTask
from vidgate.providers.fal import FalProvider, create

DEPLOYMENT = "fal-test"
KLING_T2V = "fal-ai/kling-video/v2.1/master/text-to-video"
KLING_I2V = "fal-ai/kling-video/v2.1/master/image-to-video"
HAILUO_T2V = "fal-ai/minimax/hailuo-02/standard/text-to-video"
VEO3 = "fal-ai/veo3"


@pytest.fixture
def fake() -> Iterator[FakeFal]:
    upstream = FakeFal()
    with FakeServer(upstream):
        yield upstream


def _deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def _adapter(fake: FakeFal, deps: ProviderDeps, key: str = FAL_KEY, **options: Any) -> FalProvider:
    config = DeploymentConfig(
        name=DEPLOYMENT,
        provider="fal",
        base_url=fake.base_url,
        credentials={"api_key": SecretStr(key)},
        options={"poll_s": 0.05, **options},
    )
    return create(config, deps)


@pytest.fixture
async def adapter(fake: FakeFal, tmp_path: Path) -> AsyncIterator[FalProvider]:
    provider = _adapter(fake, _deps(tmp_path))
    yield provider
    await provider.aclose()


def _spec(**changes: Any) -> JobSpec:
    base: dict[str, Any] = dict(model="kling", prompt="a paper boat on a river")
    base.update(changes)
    return spec_of(**base)


async def _until_done(adapter: FalProvider, upstream: UpstreamTask) -> list[str]:
    states: list[str] = []
    for _ in range(10):
        status = await adapter.status(upstream)
        states.append(status.state)
        if status.state in ("succeeded", "failed", "cancelled"):
            break
    return states


# --- pure mapping -------------------------------------------------------------------


def test_bodies_per_family() -> None:
    assert fal.build_input(_spec(negative_prompt="blur"), KLING_T2V, None, {"cfg_scale": 0.5}) == {
        "cfg_scale": 0.5,
        "prompt": "a paper boat on a river",
        "duration": "5",
        "aspect_ratio": "16:9",
        "negative_prompt": "blur",
    }
    assert fal.build_input(_spec(seconds=10), KLING_I2V, "data:image/png;base64,AA") == {
        "prompt": "a paper boat on a river",
        "duration": "10",
        "image_url": "data:image/png;base64,AA",
    }
    assert fal.build_input(_spec(seconds=6), HAILUO_T2V, None) == {
        "prompt": "a paper boat on a river",
        "duration": "6",
    }
    spec = _spec(seconds=8, resolution="1080p", aspect_ratio="9:16", seed=9, negative_prompt="x")
    assert fal.build_input(spec, VEO3, None) == {
        "prompt": "a paper boat on a river",
        "duration": "8s",
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "seed": 9,
        "negative_prompt": "x",
    }
    assert fal.build_input(_spec(seed=1), "acme/video-model", "data:i") == {
        "prompt": "a paper boat on a river",
        "duration": "5",
        "image_url": "data:i",
        "seed": 1,
    }


def test_endpoints_apps_and_request_paths() -> None:
    assert fal.endpoint_for(KLING_T2V, True) == KLING_I2V
    assert fal.endpoint_for(KLING_T2V, False) == KLING_T2V
    assert fal.app_id(KLING_T2V) == "fal-ai/kling-video"
    assert fal.app_id("workflows/me/flow/run") == "workflows/me/flow"
    created = {
        "request_id": "r-1",
        "status_url": "https://queue.fal.run/fal-ai/kling-video/requests/r-1/status",
    }
    assert fal.request_path(created, KLING_T2V) == "fal-ai/kling-video/requests/r-1"
    proxied = {
        "request_id": "r-1",
        "status_url": "https://p.example/fal/fal-ai/x/requests/r-1/status",
    }
    assert fal.request_path(proxied, "fal-ai/x/y", "/fal") == "fal-ai/x/requests/r-1"
    # No usable status_url: built from the endpoint's owner/app.
    assert fal.request_path({"request_id": "r-2"}, VEO3 + "/fast") == "fal-ai/veo3/requests/r-2"
    with pytest.raises(ProviderError):
        fal.request_path({"request_id": "../x"}, VEO3)


def test_parse_status_and_outputs() -> None:
    queued = fal.parse_status({"status": "IN_QUEUE", "queue_position": 3}, 4.0)
    assert (queued.state, queued.poll_after_s) == ("queued", 4.0)
    assert fal.parse_status({"status": "IN_PROGRESS", "logs": []}).state == "running"
    assert fal.parse_status({"status": "SOMETHING_NEW"}).state == "running"
    done = fal.parse_status({"status": "COMPLETED", "metrics": {"inference_time": 3}})
    assert (done.state, done.progress, done.cost) == ("succeeded", 100, None)
    failed = fal.parse_status(
        {"status": "COMPLETED", "error": "NSFW content detected", "error_type": "content_policy"}
    )
    # An unknown error_type is read from its words: "NSFW" is a refusal, final.
    assert (failed.state, failed.error_code, failed.error_message, failed.transient) == (
        "failed",
        "upstream_content_refused",
        "fal: NSFW content detected (content_policy)",
        False,
    )
    # fal's own internal error is fal's, not vidgate's: upstream_failed, transient.
    app = fal.parse_status(
        {"status": "COMPLETED", "error": "Internal error", "error_type": "internal_error"},
        provider="fal-eu",
    )
    assert (app.error_code, app.error_message, app.transient) == (
        "upstream_failed",
        "fal-eu: Internal error (internal_error)",
        True,
    )
    timeout = fal.parse_status(
        {"status": "COMPLETED", "error": "Request timed out", "error_type": "request_timeout"}
    )
    assert (timeout.error_code, timeout.transient) == ("upstream_timeout", True)
    refused = fal.parse_status(
        {"status": "COMPLETED", "error": "blocked", "error_type": "content_policy_violation"}
    )
    assert (refused.error_code, refused.transient) == ("upstream_content_refused", False)
    assert fal.output_urls({"video": {"url": "https://v3.fal.media/a.mp4"}}) == [
        "https://v3.fal.media/a.mp4"
    ]
    assert fal.output_urls({"videos": [{"url": "https://a"}, {"url": "https://b"}]}) == [
        "https://a",
        "https://b",
    ]
    assert fal.output_urls({"images": []}) == [] and fal.output_urls(None) == []


def test_error_message_reads_detail_and_error_type() -> None:
    validation = {"detail": [{"loc": ["body", "duration"], "msg": "Input should be '5' or '10'"}]}
    assert fal.error_message(httpx.Response(422, json=validation)) == (
        "duration: Input should be '5' or '10'"
    )
    typed = httpx.Response(400, json={"detail": "bad"}, headers={"x-fal-error-type": "x_err"})
    assert fal.error_message(typed) == "bad (x_err)"
    assert fal.error_message(httpx.Response(503, text="<html>503</html>")) == "<html>503</html>"


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        (KLING_T2V, {"seconds": 6}, "seconds", "allowed: 5, 10"),
        (KLING_T2V, {"aspect_ratio": "4:3"}, "aspect_ratio", "16:9, 9:16, 1:1"),
        (KLING_T2V, {"seed": 3}, "seed", "seed"),
        (KLING_T2V, {"n": 2}, "n", "allowed: 1"),
        (KLING_T2V, {"kind": "extend"}, "video", "extend"),
        (KLING_I2V, {}, "image", "first frame"),
        (HAILUO_T2V, {"seconds": 6, "aspect_ratio": "9:16"}, "aspect_ratio", "16:9"),
        (HAILUO_T2V, {"seconds": 6, "negative_prompt": "x"}, "negative_prompt", "negative"),
        (VEO3, {"seconds": 8, "resolution": "4K"}, "resolution", "720p, 1080p"),
        ("kling", {}, "model", "endpoint id"),
    ],
)
def test_validate_rejects(
    model: str, changes: dict[str, Any], param: str, words: str, tmp_path: Path
) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="fal", credentials={"api_key": "k"})
    with pytest.raises(InvalidParameter) as exc:
        create(config, _deps(tmp_path)).validate(_spec(**changes), model)
    assert exc.value.param == param
    assert "fal" in exc.value.message and words in exc.value.message


def test_validate_rejects_an_image_on_a_text_only_endpoint(tmp_path: Path) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="fal", credentials={"api_key": "k"})
    image = ImageRef(sha256="a" * 64, width=64, height=48, content_type="image/png")
    with pytest.raises(InvalidParameter, match="image-to-video") as exc:
        create(config, _deps(tmp_path)).validate(_spec(seconds=8, image=image), VEO3)
    assert exc.value.param == "image"


# --- against the fake ---------------------------------------------------------------


async def test_text_to_video_round_trip(
    fake: FakeFal, adapter: FalProvider, tmp_path: Path
) -> None:
    result = await adapter.submit(_spec(), idempotency_key="video_1", upstream_model=KLING_T2V)
    assert fake.requests == [
        {
            "endpoint": KLING_T2V,
            "body": {"prompt": "a paper boat on a river", "duration": "5", "aspect_ratio": "16:9"},
        }
    ]
    # Polled on owner/app only, as the returned status_url says.
    request_id = next(iter(fake.tasks))
    assert result.upstream_id == request_id
    assert result.state == {"app": "fal-ai/kling-video"}
    assert result.poll_after_s == 0.05
    fake.polls_to_finish = 3
    assert await _until_done(adapter, task_of(result)) == ["queued", "running", "succeeded"]
    out = tmp_path / "out"
    out.mkdir()
    fractions: list[float] = []
    paths = await adapter.fetch(task_of(result), out, fractions.append)
    assert paths == [out / "0.mp4"] and fractions == [1.0] and fake.result_reads == 1
    info = probe_video(paths[0])
    assert (info.codec, info.width, info.height) == ("h264", 160, 96)


async def test_image_to_video_uses_the_sibling_endpoint_and_a_data_uri(
    fake: FakeFal, adapter: FalProvider, tmp_path: Path
) -> None:
    png = png_bytes(320, 180)
    stored = await adapter._deps.blobs.put_bytes(png)
    image = ImageRef(sha256=stored.sha256, width=320, height=180, content_type="image/png")
    spec = _spec(image=image, seconds=10, negative_prompt="blur")
    result = await adapter.submit(spec, idempotency_key="video_2", upstream_model=KLING_T2V)
    (sent,) = fake.requests
    assert sent["endpoint"] == KLING_I2V
    body = sent["body"]
    assert set(body) == {"prompt", "duration", "image_url", "negative_prompt"}
    assert body["duration"] == "10"
    prefix = "data:image/png;base64,"
    assert body["image_url"].startswith(prefix)
    assert base64.b64decode(body["image_url"][len(prefix) :]) == png
    assert await _until_done(adapter, task_of(result)) == ["queued", "succeeded"]
    assert len(await adapter.fetch(task_of(result), tmp_path)) == 1


async def test_veo3_body_fields(fake: FakeFal, adapter: FalProvider) -> None:
    spec = _spec(seconds=8, resolution="1080p", aspect_ratio="9:16", seed=7, negative_prompt="x")
    result = await adapter.submit(spec, idempotency_key="video_3", upstream_model=VEO3)
    assert fake.requests[0]["body"] == {
        "prompt": "a paper boat on a river",
        "duration": "8s",
        "aspect_ratio": "9:16",
        "resolution": "1080p",
        "seed": 7,
        "negative_prompt": "x",
    }
    assert result.state == {"app": "fal-ai/veo3"} and result.upstream_id in fake.tasks


async def test_upstream_validation_error_is_a_rejection(fake: FakeFal, tmp_path: Path) -> None:
    provider = _adapter(fake, _deps(tmp_path), input={"cfg_scale": "high"})
    with pytest.raises(ProviderError) as exc:
        await provider.submit(_spec(), idempotency_key="video_4", upstream_model=KLING_T2V)
    with pytest.raises(ProviderError) as unknown:
        await provider.submit(_spec(), idempotency_key="video_4", upstream_model="fal-ai/nope")
    await provider.aclose()
    assert exc.value.code == "upstream_rejected" and not exc.value.retryable
    assert "cfg_scale: Input should be a valid number" in exc.value.message
    assert unknown.value.code == "upstream_not_found" and not unknown.value.retryable
    assert "application_not_found" in unknown.value.message
    assert fake.submissions == 0


async def test_completed_with_error_is_a_failure(fake: FakeFal, adapter: FalProvider) -> None:
    fake.fail_tasks = ("content_policy", "the prompt was refused by the provider")
    result = await adapter.submit(_spec(), idempotency_key="video_5", upstream_model=KLING_T2V)
    assert await _until_done(adapter, task_of(result)) == ["queued", "failed"]
    status = await adapter.status(task_of(result))
    assert (status.error_code, status.transient) == ("upstream_content_refused", False)
    assert status.error_message == (
        f"{adapter.name}: the prompt was refused by the provider (content_policy)"
    )


async def test_rate_limit_then_success(fake: FakeFal, adapter: FalProvider) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "7"})
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="video_6", upstream_model=KLING_T2V)
    assert exc.value.retryable and exc.value.retry_after_s == 7.0
    assert "rate_limited" in exc.value.message
    result = await adapter.submit(_spec(), idempotency_key="video_6", upstream_model=KLING_T2V)
    assert fake.submissions == 1 and result.upstream_id == next(iter(fake.tasks))


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    fake: FakeFal, adapter: FalProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="video_7", upstream_model=KLING_T2V)
    assert exc.value.retryable and not exc.value.unhealthy


async def test_wrong_key_marks_the_deployment_unhealthy(fake: FakeFal, tmp_path: Path) -> None:
    provider = _adapter(fake, _deps(tmp_path), key="wrong-id:wrong-secret")
    with pytest.raises(ProviderError) as exc:
        await provider.submit(_spec(), idempotency_key="video_8", upstream_model=KLING_T2V)
    with pytest.raises(ProviderError) as on_poll:
        await provider.status(task_by_id("abc", {"app": "fal-ai/kling-video"}))
    await provider.aclose()
    for error in (exc.value, on_poll.value):
        assert error.unhealthy and not error.retryable
        assert "wrong-secret" not in str(error)


async def test_expired_result_is_final(fake: FakeFal, adapter: FalProvider, tmp_path: Path) -> None:
    result = await adapter.submit(_spec(), idempotency_key="video_9", upstream_model=KLING_T2V)
    assert (await _until_done(adapter, task_of(result)))[-1] == "succeeded"
    fake.expire_urls = True
    fake.refresh_urls()
    with pytest.raises(ProviderError) as exc:
        await adapter.fetch(task_of(result), tmp_path)
    assert exc.value.code == "result_expired" and not exc.value.retryable
    assert fake.expired_downloads == 1 and fake.downloads == 0


async def test_cancel_puts_to_the_cancel_url(fake: FakeFal, adapter: FalProvider) -> None:
    fake.polls_to_finish = 100
    result = await adapter.submit(_spec(), idempotency_key="video_10", upstream_model=KLING_T2V)
    await adapter.cancel(task_of(result))
    request_id = result.upstream_id
    assert fake.cancelled == [request_id]
    # ALREADY_COMPLETED and NOT_FOUND are not errors: nothing is left to stop.
    fake.polls_to_finish = 1
    done = await adapter.submit(_spec(), idempotency_key="video_11", upstream_model=KLING_T2V)
    assert await _until_done(adapter, task_of(done)) == ["succeeded"]
    await adapter.cancel(task_of(done))
    await adapter.cancel(task_by_id("no-such-request", {"app": "fal-ai/kling-video"}))
    assert fake.cancelled == [request_id]
    with pytest.raises(ProviderError, match="malformed"):
        await adapter.cancel(task_by_id("x", {"app": "../../etc"}))


async def test_fal_webhook_is_sent_and_called_when_the_request_ends(
    fake: FakeFal, tmp_path: Path
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
            result = await adapter.submit(
                _spec(), idempotency_key="video_cb", upstream_model=KLING_T2V
            )
            request_id = result.upstream_id
            # A query parameter on submit; the body stays the model's input.
            assert fake.callback_urls == {request_id: sink.url("video_cb")}
            assert "fal_webhook" not in fake.requests[-1]["body"]
            assert fake.send_callback(request_id) is None  # fal calls only when it ends
            assert fake.finish() == [200]
            [call] = sink.received
            assert call.body["request_id"] == request_id and call.body["status"] == "OK"
            assert call.body["payload"]["video"]["url"].endswith("/video.mp4")
            assert (await adapter.status(task_of(result))).state == "succeeded"
        finally:
            await adapter.aclose()


# --- last frame and reference images ---------------------------------------------------

_IMAGE = ImageRef(sha256="a" * 64, width=64, height=48, content_type="image/png")


async def test_kling_last_frame_goes_as_tail_image_url(fake: FakeFal, adapter: FalProvider) -> None:
    first_png = png_bytes(320, 180, (255, 0, 0))
    last_png = png_bytes(320, 180, (0, 0, 255))
    first = await adapter._deps.blobs.put_bytes(first_png)
    last = await adapter._deps.blobs.put_bytes(last_png)
    spec = _spec(
        image=_IMAGE.model_copy(update={"sha256": first.sha256}),
        last_frame=_IMAGE.model_copy(update={"sha256": last.sha256}),
    )
    adapter.validate(spec, KLING_T2V)
    await adapter.submit(spec, idempotency_key="video_lf", upstream_model=KLING_T2V)
    prefix = "data:image/png;base64,"
    assert fake.requests == [
        {
            "endpoint": KLING_I2V,
            "body": {
                "prompt": "a paper boat on a river",
                "duration": "5",
                "image_url": prefix + base64.b64encode(first_png).decode(),
                "tail_image_url": prefix + base64.b64encode(last_png).decode(),
            },
        }
    ]


def test_tail_image_url_only_with_a_first_frame_and_only_for_kling() -> None:
    body = fal.build_input(_spec(), KLING_I2V, "data:a", last_frame="data:b")
    assert (body["image_url"], body["tail_image_url"]) == ("data:a", "data:b")
    assert "tail_image_url" not in fal.build_input(_spec(), KLING_I2V, None, last_frame="data:b")
    hailuo_i2v = "fal-ai/minimax/hailuo-02/standard/image-to-video"
    assert "tail_image_url" not in fal.build_input(_spec(), hailuo_i2v, "data:a", None, "data:b")


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        (HAILUO_T2V, {"seconds": 6, "image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "last frame is not supported"),
        (VEO3, {"seconds": 8, "image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "models that do: */kling-video/*/image-to-video"),
        ("acme/video-model", {"image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "last frame is not supported"),
        (KLING_T2V, {"last_frame": _IMAGE}, "last_frame", "allowed: image with last_frame"),
        (KLING_T2V, {"reference_images": [_IMAGE]}, "reference_images", "allowed: none"),
        (VEO3, {"seconds": 8, "reference_images": [_IMAGE] * 3}, "reference_images",
         "reference images are not supported"),
        ("acme/video-model", {"reference_images": [_IMAGE]}, "reference_images",
         "reference images are not supported"),
    ],
)  # fmt: skip
def test_validate_rejects_frames_and_references(
    model: str, changes: dict[str, Any], param: str, words: str, tmp_path: Path
) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="fal", credentials={"api_key": "k"})
    with pytest.raises(InvalidParameter) as exc:
        create(config, _deps(tmp_path)).validate(_spec(**changes), model)
    assert exc.value.param == param
    assert "fal" in exc.value.message and words in exc.value.message


_URI = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


@pytest.mark.parametrize(
    ("endpoint", "fields", "loc", "kind"),
    [
        (KLING_I2V, {"image_url": _URI, "tail_image_url": "not a url"}, "tail_image_url",
         "url_parsing"),
        (KLING_T2V, {"tail_image_url": _URI}, "tail_image_url", "extra_forbidden"),
        ("fal-ai/minimax/hailuo-02/standard/image-to-video",
         {"image_url": _URI, "tail_image_url": _URI}, "tail_image_url", "extra_forbidden"),
        (KLING_I2V, {"image_url": _URI, "reference_image_urls": [_URI]}, "reference_image_urls",
         "extra_forbidden"),
    ],
)  # fmt: skip
async def test_fake_refuses_inputs_the_endpoint_does_not_take(
    fake: FakeFal, endpoint: str, fields: dict[str, Any], loc: str, kind: str
) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post(
            f"/{endpoint}",
            headers={"Authorization": f"Key {FAL_KEY}"},
            json={"prompt": "x", **fields},
        )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", loc], kind)
    assert fake.submissions == 0
