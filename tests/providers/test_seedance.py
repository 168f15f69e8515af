"""The Seedance adapter against a fake BytePlus ModelArk API on loopback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import png_bytes
from tests.fakes.harness import CallbackSink, FakeServer
from tests.fakes.seedance import API_KEY, BASE_PATH, SECONDS, SIZE, UPSTREAM_MODEL, FakeSeedance
from tests.providers.tasks import task_of
from vidgate.config import Settings
from vidgate.core.catalog import builtin_upstreams, load_catalog
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef, VideoRequest, normalize
from vidgate.engine.routing import check_before_submit
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus, UpstreamTask
from vidgate.providers.seedance import SeedanceProvider, create, parse_task

# The sandbox card is permissive (1-60 s, 240p-1080p, many ratios and frame rates), so
# specs that Seedance must refuse can be built with it.
CARD = load_catalog().get("sandbox")


def make_spec(**fields: Any) -> JobSpec:
    return normalize(VideoRequest(model="sandbox", prompt="a koi pond at dawn", **fields), CARD)


@pytest.fixture
def fake() -> Iterator[FakeSeedance]:
    upstream = FakeSeedance()
    with FakeServer(upstream):
        yield upstream


@pytest.fixture
def deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def make_provider(
    fake: FakeSeedance, deps: ProviderDeps, key: str = API_KEY, **options: Any
) -> SeedanceProvider:
    config = DeploymentConfig(
        name="seedance",
        provider="seedance",
        base_url=fake.base_url,
        credentials={"api_key": key},
        options=options,
    )
    return create(config, deps)


@pytest.fixture
async def provider(fake: FakeSeedance, deps: ProviderDeps) -> AsyncIterator[SeedanceProvider]:
    adapter = make_provider(fake, deps)
    yield adapter
    await adapter.aclose()


async def run_to_end(provider: SeedanceProvider, upstream: UpstreamTask) -> list[UpstreamStatus]:
    seen = []
    for _ in range(10):
        status = await provider.status(upstream)
        seen.append(status)
        if status.state not in ("queued", "running"):
            return seen
    raise AssertionError(f"never finished: {seen}")


async def submit(
    provider: SeedanceProvider, spec: JobSpec, model: str = UPSTREAM_MODEL
) -> UpstreamTask:
    provider.validate(spec, model)
    result = await provider.submit(spec, idempotency_key="job", upstream_model=model)
    return task_of(result, spec, model)


async def test_text_to_video_end_to_end(
    fake: FakeSeedance, provider: SeedanceProvider, tmp_path: Path
) -> None:
    fake.polls_to_finish = 3
    spec = make_spec(seconds=SECONDS, size=SIZE)
    result = await provider.submit(spec, idempotency_key="job-1", upstream_model=UPSTREAM_MODEL)
    assert result.upstream_id.startswith("cgt-") and result.poll_after_s == 2.0
    seen = await run_to_end(provider, task_of(result))
    # Seedance reports no progress; without a configured token price, no cost either.
    assert seen == [
        UpstreamStatus("queued"),
        UpstreamStatus("running"),
        UpstreamStatus("succeeded", progress=100),
    ]
    paths = await provider.fetch(task_of(result), tmp_path)
    assert paths == [tmp_path / "0.mp4"]
    assert probe_video(paths[0]).frames > 0
    assert fake.downloads == 1


async def test_request_body(fake: FakeSeedance, provider: SeedanceProvider) -> None:
    spec = make_spec(seconds=7, resolution="1080p", aspect_ratio="9:16", seed=42)
    await submit(provider, spec)
    assert fake.last_body == {
        "model": UPSTREAM_MODEL,
        "content": [{"type": "text", "text": "a koi pond at dawn"}],
        "resolution": "1080p",
        "ratio": "9:16",
        "duration": 7,
        "seed": 42,
    }


async def test_options_are_sent_and_tokens_priced(fake: FakeSeedance, deps: ProviderDeps) -> None:
    adapter = make_provider(
        fake,
        deps,
        watermark=False,
        service_tier="flex",
        execution_expires_after=7200,
        usd_per_million_tokens=2.5,
    )
    try:
        upstream = await submit(adapter, make_spec(seconds=5, size="1280x720"))
        final = (await run_to_end(adapter, upstream))[-1]
    finally:
        await adapter.aclose()
    assert fake.last_body is not None
    assert fake.last_body["watermark"] is False
    assert fake.last_body["service_tier"] == "flex"
    assert fake.last_body["execution_expires_after"] == 7200
    assert "usd_per_million_tokens" not in fake.last_body
    # 1280 x 720 x 24 fps x 5 s / 1024 = 108000 tokens at $2.5 per million.
    assert final.cost == Decimal("0.27")


async def test_image_to_video_sends_a_first_frame_data_uri(
    fake: FakeSeedance, provider: SeedanceProvider, deps: ProviderDeps
) -> None:
    png = png_bytes(64, 48)
    blob = await deps.blobs.put_bytes(png)
    image = ImageRef(sha256=blob.sha256, width=64, height=48, content_type="image/png")
    await submit(provider, make_spec(image=image), model="seedance-1-0-lite-i2v-250428")
    assert fake.last_body is not None
    text, frame = fake.last_body["content"]
    assert text == {"type": "text", "text": "a koi pond at dawn"}
    assert frame["type"] == "image_url" and frame["role"] == "first_frame"
    url = frame["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png


@pytest.mark.parametrize(
    ("fields", "model", "param", "allowed"),
    [
        ({"n": 2}, UPSTREAM_MODEL, "n", "allowed: 1"),
        ({"fps": 30}, UPSTREAM_MODEL, "fps", "allowed: 24"),
        ({"seconds": 13}, UPSTREAM_MODEL, "seconds", "allowed: 2-12"),
        ({"seconds": 3}, "dreamina-seedance-2-0-260128", "seconds", "allowed: 4-15"),
        (
            {"resolution": "540p"},
            UPSTREAM_MODEL,
            "resolution",
            "allowed: 480p, 720p, 1080p",
        ),
        (
            {"aspect_ratio": "9:21"},
            UPSTREAM_MODEL,
            "aspect_ratio",
            "allowed: 16:9, 4:3",
        ),
        ({"negative_prompt": "blur"}, UPSTREAM_MODEL, "negative_prompt", "allowed: none"),
        ({}, "seedance-1-0-lite-i2v-250428", "image", "a first frame is needed"),
    ],
)
def test_validate_rejects(
    provider: SeedanceProvider, fields: dict[str, Any], model: str, param: str, allowed: str
) -> None:
    spec = make_spec(**fields)
    with pytest.raises(InvalidParameter) as info:
        provider.validate(spec, model)
    assert info.value.param == param
    assert info.value.message.startswith("seedance") and allowed in info.value.message


def test_validate_rejects_images_on_text_only_models_and_remix(provider: SeedanceProvider) -> None:
    image = ImageRef(sha256="b" * 64, width=64, height=48, content_type="image/png")
    with pytest.raises(InvalidParameter) as info:
        provider.validate(make_spec(image=image), "seedance-1-0-lite-t2v-250428")
    assert info.value.param == "image"
    source = SourceRef(
        video_id="video_1", sha256="a" * 64, seconds=5, width=1280, height=720, fps=24
    )
    remix = make_spec().model_copy(update={"kind": "remix", "source": source})
    with pytest.raises(InvalidParameter) as info:
        provider.validate(remix, UPSTREAM_MODEL)
    assert info.value.param == "video"
    provider.validate(make_spec(seconds=12), UPSTREAM_MODEL)
    provider.validate(make_spec(seconds=15), "dreamina-seedance-2-0-260128")


async def test_upstream_refusal_is_a_rejection_with_arks_code(
    fake: FakeSeedance, provider: SeedanceProvider
) -> None:
    # An endpoint id hides its model, so 15 s passes here and the upstream refuses it.
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec(seconds=15), model="ep-20260101-abcde")
    assert info.value.code == "upstream_rejected" and not info.value.retryable
    assert "`duration`" in info.value.message and "(InvalidParameter)" in info.value.message
    assert fake.submissions == 0


async def test_failed_task_carries_the_upstream_reason(
    fake: FakeSeedance, provider: SeedanceProvider
) -> None:
    fake.fail_tasks = (
        "OutputVideoSensitiveContentDetected",
        "The request failed because the output video may contain sensitive information.",
    )
    final = (await run_to_end(provider, await submit(provider, make_spec())))[-1]
    assert final.state == "failed"
    assert (final.error_code, final.transient) == ("upstream_content_refused", False)
    assert final.error_message == (
        "seedance: The request failed because the output video may contain sensitive"
        " information. (OutputVideoSensitiveContentDetected)"
    )


async def test_expired_task_is_a_failure(fake: FakeSeedance, provider: SeedanceProvider) -> None:
    fake.expire_tasks = True
    final = (await run_to_end(provider, await submit(provider, make_spec())))[-1]
    assert final.state == "failed" and final.error_code == "upstream_task_expired"
    assert final.transient  # never run: another deployment may run it


async def test_rate_limit_then_success(fake: FakeSeedance, provider: SeedanceProvider) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "3"})
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec())
    assert info.value.retryable and info.value.retry_after_s == 3
    assert "RateLimitExceeded" in info.value.message
    assert (await submit(provider, make_spec())).id in fake.tasks


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    fake: FakeSeedance, provider: SeedanceProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec())
    assert info.value.retryable and not info.value.unhealthy


async def test_wrong_key_marks_the_deployment_unhealthy(
    fake: FakeSeedance, deps: ProviderDeps
) -> None:
    adapter = make_provider(fake, deps, key="ark-wrong-secret")
    try:
        with pytest.raises(ProviderError) as info:
            await submit(adapter, make_spec())
    finally:
        await adapter.aclose()
    assert info.value.unhealthy and not info.value.retryable
    assert "(AuthenticationError)" in info.value.message
    assert "wrong-secret" not in str(info.value)


async def test_expired_url_is_result_expired(
    fake: FakeSeedance, provider: SeedanceProvider, tmp_path: Path
) -> None:
    upstream = await submit(provider, make_spec())
    await run_to_end(provider, upstream)
    fake.reads = 0
    fake.expire_urls = True  # the URL's 24 hours have passed
    with pytest.raises(ProviderError) as info:
        await provider.fetch(upstream, tmp_path)
    assert info.value.code == "result_expired" and not info.value.retryable
    # The adapter looked for a fresh URL once before giving up.
    assert fake.reads == 1
    assert fake.expired_downloads == 1 and fake.downloads == 0


async def test_expired_url_is_refreshed_when_the_api_re_signs(
    fake: FakeSeedance, provider: SeedanceProvider, tmp_path: Path
) -> None:
    fake.expire_urls = True
    fake.resign_urls = True
    upstream = await submit(provider, make_spec())
    await run_to_end(provider, upstream)
    fake.reads = 0
    fake.refresh_urls()
    paths = await provider.fetch(upstream, tmp_path)
    assert probe_video(paths[0]).frames > 0
    assert fake.reads == 1 and fake.downloads == 1


async def test_cancel_a_queued_task(fake: FakeSeedance, provider: SeedanceProvider) -> None:
    upstream = await submit(provider, make_spec())
    await provider.cancel(upstream)
    assert fake.cancelled == [upstream.id]
    assert (await provider.status(upstream)).state == "cancelled"
    # Ark refuses to delete a cancelled task; that is not an error for us.
    await provider.cancel(upstream)
    assert fake.cancelled == [upstream.id]


async def test_cancel_a_running_task_is_refused(
    fake: FakeSeedance, provider: SeedanceProvider
) -> None:
    fake.polls_to_finish = 5
    upstream = await submit(provider, make_spec())
    await provider.status(upstream)
    assert (await provider.status(upstream)).state == "running"
    with pytest.raises(ProviderError) as info:
        await provider.cancel(upstream)
    assert info.value.code == "cancel_refused" and not info.value.retryable
    assert fake.cancelled == []


async def test_cancel_a_finished_task_deletes_it(
    fake: FakeSeedance, provider: SeedanceProvider
) -> None:
    upstream = await submit(provider, make_spec())
    await run_to_end(provider, upstream)
    await provider.cancel(upstream)
    assert fake.cancelled == [upstream.id]
    with pytest.raises(ProviderError) as info:
        await provider.status(upstream)
    assert info.value.code == "upstream_not_found"
    await provider.cancel(upstream)  # already gone: a no-op


# --- pure mapping --------------------------------------------------------------------


def test_parse_task() -> None:
    assert parse_task({"status": "cancelled"}).status.state == "cancelled"
    done = parse_task(
        {
            "status": "succeeded",
            "content": {"video_url": "https://tos.example/v.mp4"},
            "usage": {"completion_tokens": 246840, "total_tokens": 246840},
        },
        Decimal("2.5"),
    )
    assert done.video_url == "https://tos.example/v.mp4"
    assert done.status.cost == Decimal("0.6171")
    assert parse_task({"status": "succeeded"}).video_url is None
    with pytest.raises(ProviderError) as info:
        parse_task({"status": "paused"})
    assert info.value.retryable


async def test_succeeded_without_a_url_is_retryable(
    fake: FakeSeedance, provider: SeedanceProvider, tmp_path: Path
) -> None:
    upstream = await submit(provider, make_spec())
    await run_to_end(provider, upstream)
    await provider.fetch(upstream, tmp_path)  # uses up the URL from the status read
    fake._render = lambda task: {"id": task.id, "status": "succeeded"}  # type: ignore[method-assign]
    with pytest.raises(ProviderError) as info:
        await provider.fetch(upstream, tmp_path / "none")
    assert info.value.code == "upstream_bad_response" and info.value.retryable


def test_duration_ranges() -> None:
    # The catalogue's upstreams data (it replaced seedance.duration_range).
    def duration_range(model: str) -> str:
        caps = builtin_upstreams().lookup("seedance", model)
        assert caps is not None and caps.durations is not None
        return caps.durations.describe()

    assert duration_range("seedance-1-0-pro-250528") == "2-12"
    assert duration_range("dreamina-seedance-2-0-260128") == "4-15"
    assert duration_range("ep-123") == "2-15"


def test_create_rejects_unknown_options(deps: ProviderDeps) -> None:
    config = DeploymentConfig(
        name="s", provider="seedance", credentials={"api_key": "k"}, options={"fps": 30}
    )
    with pytest.raises(ValueError, match=r"options\.fps: unknown option; accepted: watermark"):
        create(config, deps)
    priced = config.model_copy(update={"options": {"usd_per_million_tokens": "lots"}})
    with pytest.raises(ValueError, match="usd_per_million_tokens"):
        create(priced, deps)


async def test_submit_refuses_what_validate_refuses(
    fake: FakeSeedance, provider: SeedanceProvider
) -> None:
    # The runner runs this right before submit (it replaced the adapter's own re-check).
    with pytest.raises(ProviderError) as info:
        check_before_submit(provider, make_spec(n=2), UPSTREAM_MODEL)
    assert info.value.code == "invalid_parameter" and not info.value.retryable
    assert fake.create_calls == 0


async def test_callback_url_is_sent_and_called_with_the_task(
    fake: FakeSeedance, tmp_path: Path
) -> None:
    sink = CallbackSink()
    with FakeServer(sink):
        deps = ProviderDeps(
            blobs=LocalBlobStore(tmp_path / "blobs"),
            settings=Settings(data_dir=tmp_path),
            callback_url=sink.url,
        )
        adapter = make_provider(fake, deps)
        try:
            spec = make_spec(seconds=SECONDS, size=SIZE)
            result = await adapter.submit(
                spec, idempotency_key="video_cb", upstream_model=UPSTREAM_MODEL
            )
            assert fake.last_body is not None
            assert fake.last_body["callback_url"] == sink.url("video_cb")
            assert fake.finish() == [200]
            [call] = sink.received
            assert call.body["id"] == result.upstream_id and call.body["status"] == "succeeded"
            assert call.body["content"]["video_url"]
            assert (await adapter.status(task_of(result))).state == "succeeded"
        finally:
            await adapter.aclose()


# --- last frame and reference images ---------------------------------------------------

LITE_I2V = "seedance-1-0-lite-i2v-250428"
SEEDANCE_2 = "dreamina-seedance-2-0-260128"
_IMG = ImageRef(sha256="c" * 64, width=64, height=48, content_type="image/png")


async def _stored(deps: ProviderDeps, color: tuple[int, int, int]) -> tuple[ImageRef, str]:
    """A stored image and the data URI Seedance should receive for it."""
    png = png_bytes(64, 48, color)
    blob = await deps.blobs.put_bytes(png)
    ref = ImageRef(sha256=blob.sha256, width=64, height=48, content_type="image/png")
    return ref, "data:image/png;base64," + base64.b64encode(png).decode()


def _item(url: str, role: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}, "role": role}


async def test_first_and_last_frame_go_as_roles(
    fake: FakeSeedance, provider: SeedanceProvider, deps: ProviderDeps
) -> None:
    first, first_url = await _stored(deps, (255, 0, 0))
    last, last_url = await _stored(deps, (0, 0, 255))
    await submit(provider, make_spec(image=first, last_frame=last, seconds=5, size=SIZE))
    assert fake.last_body == {
        "model": UPSTREAM_MODEL,
        "content": [
            {"type": "text", "text": "a koi pond at dawn"},
            _item(first_url, "first_frame"),
            _item(last_url, "last_frame"),
        ],
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
    }


async def test_reference_images_go_as_reference_image_roles(
    fake: FakeSeedance, provider: SeedanceProvider, deps: ProviderDeps
) -> None:
    stored = [await _stored(deps, c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    spec = make_spec(reference_images=[ref for ref, _ in stored], seconds=5, size=SIZE)
    await submit(provider, spec, model=LITE_I2V)
    assert fake.last_body is not None
    assert fake.last_body["content"] == [
        {"type": "text", "text": "a koi pond at dawn"},
        *(_item(url, "reference_image") for _, url in stored),
    ]


async def test_seedance_2_takes_nine_reference_images(
    fake: FakeSeedance, provider: SeedanceProvider, deps: ProviderDeps
) -> None:
    ref, url = await _stored(deps, (9, 9, 9))
    spec = make_spec(seconds=5, size=SIZE).model_copy(update={"reference_images": (ref,) * 9})
    await submit(provider, spec, model=SEEDANCE_2)
    assert fake.last_body is not None
    assert fake.last_body["content"][1:] == [_item(url, "reference_image")] * 9


def test_an_endpoint_id_passes_frames_and_references_to_the_upstream(
    provider: SeedanceProvider,
) -> None:
    provider.validate(make_spec(image=_IMG, last_frame=_IMG), "ep-20260101-abc")
    provider.validate(make_spec(reference_images=[_IMG] * 3), "ep-20260101-abc")


def _many(count: int, **fields: Any) -> JobSpec:
    return make_spec(**fields).model_copy(update={"reference_images": (_IMG,) * count})


@pytest.mark.parametrize(
    ("spec", "model", "param", "words"),
    [
        (make_spec(image=_IMG, last_frame=_IMG), "seedance-1-0-pro-fast-251015", "last_frame",
         "a last frame is not supported"),
        (make_spec(image=_IMG, last_frame=_IMG), "seedance-9-9-new-260101", "last_frame",
         "models that do: ep-*, *seedance-2-0*"),
        (make_spec().model_copy(update={"last_frame": _IMG}), UPSTREAM_MODEL, "last_frame",
         "allowed: image with last_frame"),
        (make_spec(reference_images=[_IMG]), UPSTREAM_MODEL, "reference_images",
         "models that do: ep-*, *seedance-2-0*, *seedance-1-0-lite-i2v*"),
        (make_spec(reference_images=[_IMG]), "seedance-1-5-pro-251215", "reference_images",
         "reference images are not supported"),
        (make_spec(reference_images=[_IMG]), "seedance-1-0-pro-fast-251015", "reference_images",
         "not supported"),
        (_many(5), LITE_I2V, "reference_images", "allowed: 0-4"),
        (_many(10), SEEDANCE_2, "reference_images", "allowed: 0-9"),
        (make_spec(image=_IMG, reference_images=[_IMG]), LITE_I2V, "reference_images",
         "cannot be combined with a first frame"),
    ],
)  # fmt: skip
def test_validate_rejects_frames_and_references(
    provider: SeedanceProvider, spec: JobSpec, model: str, param: str, words: str
) -> None:
    with pytest.raises(InvalidParameter) as info:
        provider.validate(spec, model)
    assert info.value.param == param
    assert info.value.message.startswith(f"seedance ({model})") and words in info.value.message


_URI = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


@pytest.mark.parametrize(
    ("model", "roles", "why"),
    [
        ("seedance-1-0-pro-fast-251015", ["first_frame", "last_frame"],
         "does not support role last_frame"),
        (UPSTREAM_MODEL, ["reference_image"], "does not support role reference_image"),
        (LITE_I2V, ["reference_image"] * 5, "at most 4 reference images"),
        (SEEDANCE_2, ["reference_image"] * 10, "at most 9 reference images"),
        (LITE_I2V, ["first_frame", "reference_image"], "cannot be mixed"),
        (UPSTREAM_MODEL, ["first_frame", "first_frame"], "at most one first_frame"),
        (UPSTREAM_MODEL, ["last_frame"], "last_frame needs a first_frame"),
    ],
)  # fmt: skip
async def test_fake_refuses_roles_the_model_does_not_take(
    fake: FakeSeedance, model: str, roles: list[str], why: str
) -> None:
    content = [{"type": "text", "text": "x"}, *(_item(_URI, role) for role in roles)]
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post(
            f"{BASE_PATH}/contents/generations/tasks",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": model, "content": content},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter" and why in error["message"]
    assert fake.submissions == 0
