"""The Kling adapter against a fake Kling API on loopback (reference section 5)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import png_bytes
from tests.fakes.harness import CallbackSink, FakeServer
from tests.fakes.kling import ACCESS_KEY, DEPLOYMENT, SECRET_KEY, FakeKling, check_jwt
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus, UpstreamTask
from vidgate.providers.kling import (
    KlingProvider,
    TokenSigner,
    create,
    create_body,
    encode_jwt,
    parse_status,
    reclassify,
    unwrap,
)

NAME = "kling-main"


def make_spec(**update: Any) -> JobSpec:
    base = spec_of(model="kling-2.0", prompt="a red fox in the snow")
    return base.model_copy(update=update)


@pytest.fixture
def fake() -> Iterator[FakeKling]:
    fake = FakeKling()
    fake.polls_to_finish = 3
    with FakeServer(fake):
        yield fake


@pytest.fixture
def deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def config(fake: FakeKling, **changes: Any) -> DeploymentConfig:
    settings = {**DEPLOYMENT, **changes}
    return DeploymentConfig(name=NAME, base_url=fake.base_url, **settings)


@pytest.fixture
async def provider(fake: FakeKling, deps: ProviderDeps) -> AsyncIterator[KlingProvider]:
    adapter = create(config(fake), deps)
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def offline(deps: ProviderDeps) -> AsyncIterator[KlingProvider]:
    """For validate(), which must do no I/O: nothing listens at this address."""
    settings = {**DEPLOYMENT, "base_url": "http://127.0.0.1:9"}
    adapter = create(DeploymentConfig(name=NAME, **settings), deps)
    yield adapter
    await adapter.aclose()


async def until_done(provider: KlingProvider, upstream: UpstreamTask) -> list[UpstreamStatus]:
    seen = []
    for _ in range(10):
        status = await provider.status(upstream)
        seen.append(status)
        if status.state not in ("queued", "running"):
            return seen
    raise AssertionError(f"never finished: {seen}")


async def test_text_to_video_end_to_end(
    fake: FakeKling, provider: KlingProvider, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_1", upstream_model=None)
    assert result.state == {"kind": "text2video"} and result.upstream_id in fake.tasks
    assert result.poll_after_s == 2.0
    states = [s.state for s in await until_done(provider, task_of(result))]
    assert states == ["queued", "running", "succeeded"]
    queries = fake.queries
    out = tmp_path / "out"
    out.mkdir()
    paths = await provider.fetch(task_of(result), out)
    assert paths == [out / "0.mp4"]
    info = probe_video(paths[0])
    assert (info.width, info.height, info.codec) == (160, 96, "h264")
    # The URL that status() saw is used: no second query.
    assert fake.queries == queries
    assert fake.downloads == 1


async def test_request_body_fields(fake: FakeKling, provider: KlingProvider) -> None:
    spec = make_spec(
        seconds=10,
        resolution="1080p",
        aspect_ratio="9:16",
        width=1080,
        height=1920,
        negative_prompt="blurry",
        seed=42,
    )
    await provider.submit(spec, idempotency_key="video_2", upstream_model="kling-v2-1-master")
    kind, body = fake.requests[-1]
    assert kind == "text2video"
    assert body == {
        "model_name": "kling-v2-1-master",
        "prompt": "a red fox in the snow",
        "negative_prompt": "blurry",
        "duration": "10",
        "mode": "pro",
        "aspect_ratio": "9:16",
        "external_task_id": "video_2",
    }


async def test_default_model_from_options(fake: FakeKling, deps: ProviderDeps) -> None:
    adapter = create(config(fake, options={"model": "kling-v1-6"}), deps)
    try:
        await adapter.submit(make_spec(), idempotency_key="video_3", upstream_model=None)
    finally:
        await adapter.aclose()
    assert fake.requests[-1][1]["model_name"] == "kling-v1-6"


async def test_image_to_video_sends_raw_base64(
    fake: FakeKling, provider: KlingProvider, deps: ProviderDeps, tmp_path: Path
) -> None:
    data = png_bytes(640, 360)
    blob = await deps.blobs.put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=640, height=360, content_type="image/png")
    result = await provider.submit(
        make_spec(image=image), idempotency_key="video_4", upstream_model=None
    )
    assert result.state == {"kind": "image2video"} and result.upstream_id in fake.tasks
    kind, body = fake.requests[-1]
    assert kind == "image2video"
    assert body["image"] == base64.b64encode(data).decode()
    assert not body["image"].startswith("data:")
    # image2video follows the image's own aspect ratio.
    assert "aspect_ratio" not in body
    # Polled on the image2video path (the fake answers 1203 on the wrong kind).
    assert (await until_done(provider, task_of(result)))[-1].state == "succeeded"
    paths = await provider.fetch(task_of(result), tmp_path)
    assert probe_video(paths[0]).width == 160


async def test_extend_uses_the_source_video_id(fake: FakeKling, provider: KlingProvider) -> None:
    first = await provider.submit(make_spec(), idempotency_key="video_5", upstream_model=None)
    await until_done(provider, task_of(first))
    source_task = first.upstream_id
    source = SourceRef(
        video_id="video_5",
        sha256="0" * 64,
        seconds=5,
        width=1280,
        height=720,
        fps=24,
        provider=NAME,
        upstream_id=first.upstream_id,
        upstream_state=dict(first.state),
    )
    spec = make_spec(kind="extend", source=source, prompt="the fox runs", negative_prompt="rain")
    provider.validate(spec, None)
    result = await provider.submit(spec, idempotency_key="video_6", upstream_model=None)
    assert result.state == {"kind": "video-extend"} and result.upstream_id in fake.tasks
    kind, body = fake.requests[-1]
    assert kind == "video-extend"
    assert body == {
        "video_id": fake.results[source_task]["id"],
        "prompt": "the fox runs",
        "negative_prompt": "rain",
    }
    assert (await until_done(provider, task_of(result)))[-1].state == "succeeded"


@pytest.mark.parametrize(
    ("update", "model", "param"),
    [
        ({"seconds": 7}, None, "seconds"),
        ({"resolution": "480p", "width": 854, "height": 480}, None, "resolution"),
        ({"aspect_ratio": "4:3", "width": 960, "height": 720}, None, "aspect_ratio"),
        ({"n": 2}, None, "n"),
        ({"kind": "remix"}, None, "video"),
        ({"prompt": "x" * 2501}, None, "prompt"),
        ({}, "kling-v2-1", "image"),
        (
            {"image": ImageRef(sha256="a" * 64, width=200, height=200, content_type="image/png")},
            None,
            "image",
        ),
        (
            {"image": ImageRef(sha256="a" * 64, width=900, height=300, content_type="image/png")},
            None,
            "image",
        ),
        (
            {"image": ImageRef(sha256="a" * 64, width=640, height=360, content_type="image/webp")},
            None,
            "image",
        ),
    ],
)
def test_validate_rejects(
    offline: KlingProvider, update: dict[str, Any], model: str | None, param: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        offline.validate(make_spec(**update), model)
    assert caught.value.param == param
    assert "Kling" in caught.value.message


def test_validate_extend_rules(offline: KlingProvider) -> None:
    source = SourceRef(
        video_id="v",
        sha256="0" * 64,
        seconds=5,
        width=1280,
        height=720,
        fps=24,
        provider=NAME,
        upstream_id="123",
        upstream_state={"kind": "text2video"},
    )
    offline.validate(make_spec(kind="extend", source=source), None)
    for bad_source in (
        source.model_copy(update={"provider": "sandbox"}),
        source.model_copy(update={"upstream_state": None}),
        source.model_copy(update={"upstream_state": {"kind": "omni-video"}}),
        source.model_copy(update={"seconds": 178}),
    ):
        with pytest.raises(InvalidParameter, match="Kling"):
            offline.validate(make_spec(kind="extend", source=bad_source), None)
    with pytest.raises(InvalidParameter, match="allowed: 5"):
        offline.validate(make_spec(kind="extend", source=source, seconds=10), None)


def test_validate_accepts_v3_durations(offline: KlingProvider) -> None:
    offline.validate(make_spec(seconds=12), "kling-v3")
    with pytest.raises(InvalidParameter):
        offline.validate(make_spec(seconds=12), "kling-v2-master")


async def test_failed_task_carries_the_reason(fake: FakeKling, provider: KlingProvider) -> None:
    fake.fail_tasks = ("risk", "Failure to pass the risk control system")
    result = await provider.submit(make_spec(), idempotency_key="video_7", upstream_model=None)
    final = (await until_done(provider, task_of(result)))[-1]
    assert final.state == "failed"
    assert (final.error_code, final.transient) == ("upstream_content_refused", False)
    assert final.error_message == f"{NAME}: Failure to pass the risk control system"


async def test_content_policy_refusal_on_create(provider: KlingProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.submit(
            make_spec(prompt="a forbidden scene"), idempotency_key="video_8", upstream_model=None
        )
    error = caught.value
    assert error.code == "upstream_content_refused"
    assert not error.retryable and not error.unhealthy
    assert "risk control" in error.message and "(code 1301)" in error.message


async def test_rate_limited_with_retry_after_then_success(
    fake: FakeKling, provider: KlingProvider
) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "7"})
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_9", upstream_model=None)
    assert caught.value.retryable
    assert caught.value.retry_after_s == 7.0
    assert caught.value.code == "upstream_rate_limited"
    assert "(code 1303)" in caught.value.message
    result = await provider.submit(make_spec(), idempotency_key="video_9", upstream_model=None)
    assert result.state == {"kind": "text2video"} and result.upstream_id in fake.tasks
    assert fake.submissions == 1


async def test_concurrency_limit_backs_off_one_second(
    fake: FakeKling, provider: KlingProvider
) -> None:
    fake.fail_next_with_code(1303, 429, "parallel task over resource pack limit")
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_10", upstream_model=None)
    assert caught.value.retryable and caught.value.retry_after_s == 1.0


@pytest.mark.parametrize("code", [1101, 1102])
async def test_account_problems_are_not_retried(
    fake: FakeKling, provider: KlingProvider, code: int
) -> None:
    # HTTP 429, but arrears or an empty resource pack do not pass with time.
    fake.fail_next_with_code(code, 429, "account in arrears")
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_11", upstream_model=None)
    assert not caught.value.retryable and caught.value.unhealthy


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_server_errors_are_retryable(
    fake: FakeKling, provider: KlingProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as caught:
        await provider.submit(make_spec(), idempotency_key="video_12", upstream_model=None)
    assert caught.value.retryable and caught.value.code == "upstream_error"


async def test_wrong_secret_is_unhealthy(fake: FakeKling, deps: ProviderDeps) -> None:
    adapter = create(
        config(fake, credentials={"access_key": ACCESS_KEY, "secret_key": "wrong-secret"}), deps
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.submit(make_spec(), idempotency_key="video_13", upstream_model=None)
    finally:
        await adapter.aclose()
    assert caught.value.unhealthy and not caught.value.retryable
    assert "(code 1000)" in caught.value.message
    assert "wrong-secret" not in str(caught.value)
    assert fake.create_calls == 0


async def test_expired_token_is_refused(fake: FakeKling, deps: ProviderDeps) -> None:
    adapter = KlingProvider(config(fake), deps, clock=lambda: time.time() - 4000)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.status(task_by_id("1", {"kind": "text2video"}))
    finally:
        await adapter.aclose()
    assert caught.value.unhealthy and "(code 1004)" in caught.value.message


async def test_resubmission_finds_the_same_task(fake: FakeKling, provider: KlingProvider) -> None:
    first = await provider.submit(make_spec(), idempotency_key="video_14", upstream_model=None)
    again = await provider.submit(make_spec(), idempotency_key="video_14", upstream_model=None)
    assert again.upstream_id == first.upstream_id
    assert fake.submissions == 1 and fake.create_calls == 2


async def test_expired_result_url_is_final(
    fake: FakeKling, provider: KlingProvider, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_15", upstream_model=None)
    await until_done(provider, task_of(result))
    fake.expire_urls = True
    fake.refresh_urls()
    queries = fake.queries
    with pytest.raises(ProviderError) as caught:
        await provider.fetch(task_of(result), tmp_path)
    assert caught.value.code == "result_expired"
    assert caught.value.expired and not caught.value.retryable
    # It did look again for a new URL before giving up.
    assert fake.queries == queries + 1
    assert fake.downloads == 0


async def test_result_past_its_30_days_is_expired(
    fake: FakeKling, provider: KlingProvider, tmp_path: Path
) -> None:
    fake.expire_urls = True  # from the start: the link Kling hands out is already dead
    result = await provider.submit(make_spec(), idempotency_key="video_20", upstream_model=None)
    await until_done(provider, task_of(result))
    with pytest.raises(ProviderError) as caught:
        await provider.fetch(task_of(result), tmp_path)
    assert caught.value.code == "result_expired" and not caught.value.retryable


async def test_a_new_result_url_is_used_when_kling_gives_one(
    fake: FakeKling, provider: KlingProvider, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_16", upstream_model=None)
    await until_done(provider, task_of(result))
    task = fake.tasks[result.upstream_id]
    fake.expire_urls = True
    fake.refresh_urls()
    # Should Kling ever re-issue a link, the adapter follows it.
    fake.results[task.id]["url"] = fake.result_url(task)
    paths = await provider.fetch(task_of(result), tmp_path)
    assert probe_video(paths[0]).codec == "h264"
    assert fake.downloads == 1


async def test_fetch_without_a_cached_url_reads_the_task(
    fake: FakeKling, provider: KlingProvider, deps: ProviderDeps, tmp_path: Path
) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_17", upstream_model=None)
    await until_done(provider, task_of(result))
    other = create(config(fake), deps)  # another worker process: no cache
    try:
        paths = await other.fetch(task_of(result), tmp_path)
    finally:
        await other.aclose()
    assert len(paths) == 1 and fake.downloads == 1


async def test_cancel_is_a_no_op(fake: FakeKling, provider: KlingProvider) -> None:
    result = await provider.submit(make_spec(), idempotency_key="video_18", upstream_model=None)
    await provider.cancel(task_of(result))
    assert fake.cancelled == []


async def test_cost_only_with_a_configured_unit_price(fake: FakeKling, deps: ProviderDeps) -> None:
    adapter = create(config(fake, options={"usd_per_unit": "0.14"}), deps)
    try:
        spec = make_spec(resolution="1080p", width=1920, height=1080, seconds=10)
        result = await adapter.submit(spec, idempotency_key="video_19", upstream_model=None)
        final = (await until_done(adapter, task_of(result)))[-1]
    finally:
        await adapter.aclose()
    # The fake deducts 4 units for 10 s pro.
    assert final.cost == Decimal("0.56")


# --- auth, as the fake checks it ------------------------------------------------------


def test_jwt_matches_the_documented_shape() -> None:
    token = encode_jwt(ACCESS_KEY, SECRET_KEY, now=1_700_000_000)
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    assert json.loads(base64.urlsafe_b64decode(pad(header))) == {"alg": "HS256", "typ": "JWT"}
    assert json.loads(base64.urlsafe_b64decode(pad(payload))) == {
        "iss": ACCESS_KEY,
        "exp": 1_700_001_800,
        "nbf": 1_699_999_995,
    }
    assert check_jwt(f"Bearer {token}", now=1_700_000_000) is None


@pytest.mark.parametrize(
    ("authorization", "now", "code"),
    [
        (None, 0, 1001),
        ("Bearer not-a-jwt", 0, 1002),
        ("Basic abc.def.ghi", 0, 1002),
        (f"Bearer {encode_jwt(ACCESS_KEY, 'other', now=1000)}", 1000, 1000),
        (f"Bearer {encode_jwt('someone-else', SECRET_KEY, now=1000)}", 1000, 1000),
        (f"Bearer {encode_jwt(ACCESS_KEY, SECRET_KEY, now=1000)}", 990, 1003),
        (f"Bearer {encode_jwt(ACCESS_KEY, SECRET_KEY, now=1000)}", 2800, 1004),
    ],
)
def test_fake_checks_the_jwt(authorization: str | None, now: float, code: int) -> None:
    refusal = check_jwt(authorization, now=now)
    assert refusal is not None and refusal[0] == code


def test_fake_answers_401_with_the_kling_body(fake: FakeKling) -> None:
    response = httpx.get(f"{fake.base_url}/v1/videos/text2video/1")
    assert response.status_code == 401
    assert response.json()["code"] == 1001


def test_token_is_reused_then_renewed_before_expiry() -> None:
    now = [1_700_000_000.0]
    signer = TokenSigner(ACCESS_KEY, SECRET_KEY, clock=lambda: now[0])
    first = signer.headers()["Authorization"]
    now[0] += 1000
    assert signer.headers()["Authorization"] == first
    now[0] += 600  # within 5 minutes of exp
    assert signer.headers()["Authorization"] != first


# --- pure mapping ---------------------------------------------------------------------


def test_create_body_for_image_has_no_aspect_ratio() -> None:
    kind, body = create_body(make_spec(), "kling-v1-6", external_task_id="k", image="QUJD")
    assert kind == "image2video"
    assert body["image"] == "QUJD" and "aspect_ratio" not in body
    assert body["duration"] == "5" and body["mode"] == "std"


def test_parse_status() -> None:
    assert parse_status({"task_status": "submitted"}, provider="k").state == "queued"
    assert parse_status({"task_status": "processing"}, provider="k").state == "running"
    done = parse_status(
        {"task_status": "succeed", "final_unit_deduction": "2"},
        provider="k",
        usd_per_unit=Decimal("0.1"),
    )
    assert (done.state, done.progress, done.cost) == ("succeeded", 100, Decimal("0.2"))
    assert (
        parse_status({"task_status": "succeed", "final_unit_deduction": "2"}, provider="k").cost
        is None
    )
    failed = parse_status({"task_status": "failed", "task_status_msg": "nope"}, provider="k")
    assert (failed.state, failed.error_code, failed.error_message) == (
        "failed",
        "upstream_failed",
        "k: nope",
    )
    assert not failed.transient
    busy = parse_status(
        {"task_status": "failed", "task_status_msg": "Internal server error, try again"},
        provider="k",
    )
    assert (busy.error_code, busy.transient) == ("upstream_failed", True)


def test_errors_on_http_200_are_classified() -> None:
    assert unwrap({"code": 0, "data": {"task_id": "1"}}, "k") == {"task_id": "1"}
    with pytest.raises(ProviderError) as caught:
        unwrap({"code": 1303, "message": "busy"}, "k")
    assert caught.value.retryable and caught.value.retry_after_s == 1.0
    with pytest.raises(ProviderError) as caught:
        unwrap({"code": 1201, "message": "bad"}, "k")
    assert caught.value.code == "upstream_rejected" and not caught.value.retryable


def test_reclassify_keeps_unknown_codes() -> None:
    error = ProviderError("upstream_rejected", "k: bad (code 1201)", retryable=False)
    assert reclassify(error) is error
    busy = ProviderError("upstream_rate_limited", "k: x (code 1302)", retryable=True)
    assert reclassify(busy).retry_after_s == 1.0


@pytest.mark.parametrize(
    "image",
    [
        "data:image/png;base64," + base64.b64encode(png_bytes(640, 360)).decode(),
        base64.b64encode(png_bytes(320, 180)).decode(),
        base64.b64encode(png_bytes(1000, 300)).decode(),
    ],
)
def test_fake_refuses_images_kling_would_refuse(fake: FakeKling, image: str) -> None:
    token = encode_jwt(ACCESS_KEY, SECRET_KEY, now=time.time())
    response = httpx.post(
        f"{fake.base_url}/v1/videos/image2video",
        headers={"Authorization": f"Bearer {token}"},
        json={"model_name": "kling-v2-master", "prompt": "x", "image": image},
    )
    assert response.status_code == 400
    assert response.json()["code"] == 1201
    assert fake.submissions == 0


async def test_callback_url_is_sent_and_called_with_the_task_data(
    fake: FakeKling, tmp_path: Path
) -> None:
    sink = CallbackSink()
    with FakeServer(sink):
        deps = ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"),
            settings=Settings(data_dir=tmp_path),
            callback_url=sink.url,
        )
        adapter = create(config(fake), deps)
        try:
            result = await adapter.submit(
                make_spec(), idempotency_key="video_cb", upstream_model=None
            )
            kind, body = fake.requests[-1]
            assert kind == "text2video" and body["callback_url"] == sink.url("video_cb")
            assert fake.finish() == [200]
            [call] = sink.received
            # The data object itself, with no {code, data} envelope.
            assert call.body["task_status"] == "succeed" and "code" not in call.body
            assert result.upstream_id == call.body["task_id"]
            assert (await adapter.status(task_of(result))).state == "succeeded"
        finally:
            await adapter.aclose()


# --- last frame and reference images ---------------------------------------------------

_FRAME = ImageRef(sha256="a" * 64, width=640, height=360, content_type="image/png")


async def test_first_and_last_frame_go_as_image_and_image_tail(
    fake: FakeKling, provider: KlingProvider, deps: ProviderDeps
) -> None:
    first_png = png_bytes(640, 360, (255, 0, 0))
    last_png = png_bytes(640, 360, (0, 0, 255))
    first = await deps.blobs.put_bytes(first_png)
    last = await deps.blobs.put_bytes(last_png)
    spec = make_spec(
        image=_FRAME.model_copy(update={"sha256": first.sha256}),
        last_frame=_FRAME.model_copy(update={"sha256": last.sha256}),
    )
    provider.validate(spec, None)
    result = await provider.submit(spec, idempotency_key="video_lf", upstream_model=None)
    assert result.state == {"kind": "image2video"} and result.upstream_id in fake.tasks
    kind, body = fake.requests[-1]
    assert kind == "image2video"
    # Raw base64, no data: prefix, for both frames.
    assert body == {
        "model_name": "kling-v2-master",
        "prompt": "a red fox in the snow",
        "duration": "5",
        "mode": "std",
        "external_task_id": "video_lf",
        "image": base64.b64encode(first_png).decode(),
        "image_tail": base64.b64encode(last_png).decode(),
    }


_SOURCE = SourceRef(
    video_id="v", sha256="0" * 64, seconds=5, width=1280, height=720, fps=24,
    provider=NAME, upstream_id="123", upstream_state={"kind": "text2video"},
)  # fmt: skip


@pytest.mark.parametrize(
    ("update", "param", "words"),
    [
        ({"reference_images": [_FRAME]}, "reference_images", "allowed: none"),
        ({"image": _FRAME, "reference_images": [_FRAME] * 2}, "reference_images",
         "allowed: none"),
        ({"last_frame": _FRAME}, "last_frame", "allowed: image with last_frame"),
        ({"kind": "extend", "source": _SOURCE, "image": _FRAME, "last_frame": _FRAME},
         "last_frame", "a last frame cannot be used to extend"),
        ({"image": _FRAME, "last_frame": _FRAME.model_copy(update={"content_type": "image/webp"})},
         "last_frame", "image/webp is not supported; allowed: image/jpeg, image/png"),
        ({"image": _FRAME, "last_frame": _FRAME.model_copy(update={"width": 200, "height": 200})},
         "last_frame", "at least 300 px"),
        ({"image": _FRAME, "last_frame": _FRAME.model_copy(update={"width": 900, "height": 300})},
         "last_frame", "allowed: width/height 0.4-2.5"),
    ],
)  # fmt: skip
def test_validate_rejects_frames_and_references(
    offline: KlingProvider, update: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        offline.validate(make_spec(**update), None)
    assert caught.value.param == param
    assert "Kling" in caught.value.message and words in caught.value.message


def test_create_body_puts_the_tail_on_image2video_only() -> None:
    kind, body = create_body(
        make_spec(), "kling-v1-6", external_task_id="k", image="QUJD", image_tail="REVG"
    )
    assert kind == "image2video"
    assert (body["image"], body["image_tail"]) == ("QUJD", "REVG")
    kind, body = create_body(make_spec(), "kling-v1-6", external_task_id="k", image=None)
    assert kind == "text2video" and "image_tail" not in body


_B64 = base64.b64encode(png_bytes(640, 360)).decode()


@pytest.mark.parametrize(
    ("path", "fields", "message"),
    [
        ("image2video", {"image": _B64, "image_tail": "data:image/png;base64," + _B64},
         "image_tail must be a URL or raw base64"),
        ("image2video", {"image": _B64, "image_tail": _B64,
                         "camera_control": {"type": "simple", "config": {"zoom": 5}}},
         "cannot be used together"),
        ("image2video", {"image": _B64, "image_tail": _B64, "static_mask": _B64},
         "cannot be used together"),
        ("text2video", {"image_tail": _B64}, "image_tail is not a text2video parameter"),
        ("image2video", {"image": _B64, "image_list": [{"image": _B64}]}, "multi-image2video"),
    ],
)  # fmt: skip
def test_fake_refuses_bad_frame_combinations(
    fake: FakeKling, path: str, fields: dict[str, Any], message: str
) -> None:
    token = encode_jwt(ACCESS_KEY, SECRET_KEY, now=time.time())
    response = httpx.post(
        f"{fake.base_url}/v1/videos/{path}",
        headers={"Authorization": f"Bearer {token}"},
        json={"model_name": "kling-v2-master", "prompt": "x", **fields},
    )
    assert response.status_code == 400
    assert response.json()["code"] == 1201 and message in response.json()["message"]
    assert fake.submissions == 0
