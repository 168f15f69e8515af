"""The task_api adapter against a fake vidgate ``/v1/videos/generations`` on loopback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import png_bytes
from tests.fakes.harness import FakeServer
from tests.fakes.task_api import API_KEY, SECONDS, SIZE, UPSTREAM_MODEL, FakeTaskApi
from tests.providers.tasks import task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.catalog import load_catalog
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef, VideoRequest, normalize
from vidgate.engine.routing import check_before_submit
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers import task_api
from vidgate.providers.adapter_config import api_base_url
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus, UpstreamTask
from vidgate.providers.task_api import (
    TaskApiProvider,
    build_body,
    create,
    parse_generation,
)

CATALOG = load_catalog()


def make_spec(**fields: Any) -> JobSpec:
    request = {"model": UPSTREAM_MODEL, "prompt": "a red fox in the snow", **fields}
    return normalize(VideoRequest(**request), CATALOG.get(request["model"]))


@pytest.fixture
def fake() -> Iterator[FakeTaskApi]:
    upstream = FakeTaskApi()
    with FakeServer(upstream):
        yield upstream


@pytest.fixture
def deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def make_provider(fake: FakeTaskApi, deps: ProviderDeps, key: str = API_KEY) -> TaskApiProvider:
    config = DeploymentConfig(
        name="router",
        provider="task_api",
        base_url=f"{fake.base_url}/v1",
        credentials={"api_key": key},
    )
    return create(config, deps)


@pytest.fixture
async def provider(fake: FakeTaskApi, deps: ProviderDeps) -> AsyncIterator[TaskApiProvider]:
    adapter = make_provider(fake, deps)
    yield adapter
    await adapter.aclose()


async def run_to_end(provider: TaskApiProvider, upstream: UpstreamTask) -> list[UpstreamStatus]:
    seen = []
    for _ in range(10):
        status = await provider.status(upstream)
        seen.append(status)
        if status.state not in ("queued", "running"):
            return seen
    raise AssertionError(f"never finished: {seen}")


async def test_text_to_video_end_to_end(
    fake: FakeTaskApi, provider: TaskApiProvider, tmp_path: Path
) -> None:
    fake.polls_to_finish = 3
    spec = make_spec(seconds=SECONDS, size=SIZE)
    provider.validate(spec, UPSTREAM_MODEL)
    submitted = await provider.submit(spec, idempotency_key="job-1", upstream_model=UPSTREAM_MODEL)
    assert submitted.upstream_id.startswith("video_")
    assert submitted.poll_after_s == 2.0
    seen = await run_to_end(provider, task_of(submitted))
    assert [(s.state, s.progress) for s in seen] == [
        ("queued", 0),
        ("running", 50),
        ("succeeded", 100),
    ]
    # vidgate reports what it billed, in USD: kling-2.0 720p 5 s.
    assert seen[-1].cost == Decimal("0.05")
    out = tmp_path / "out"
    out.mkdir()
    paths = await provider.fetch(task_of(submitted), out)
    assert paths == [out / "0.mp4"]
    info = probe_video(paths[0])
    assert info.width > 0 and info.duration > 0
    assert fake.downloads == 1


async def test_request_body_and_idempotency_key(
    fake: FakeTaskApi, provider: TaskApiProvider
) -> None:
    spec = make_spec(
        seconds=10, resolution="1080p", aspect_ratio="9:16", seed=42, negative_prompt="blur"
    )
    first = await provider.submit(spec, idempotency_key="job-42", upstream_model=UPSTREAM_MODEL)
    assert fake.last_body == {
        "model": UPSTREAM_MODEL,
        "prompt": "a red fox in the snow",
        "duration": 10,
        "resolution": "1080p",
        "aspect_ratio": "9:16",
        "fps": 24,
        "n": 1,
        "seed": 42,
        "negative_prompt": "blur",
    }
    assert fake.idempotency_keys == ["job-42"]
    # A re-run of the submit step (after a crash) finds the same upstream generation.
    again = await provider.submit(spec, idempotency_key="job-42", upstream_model=UPSTREAM_MODEL)
    assert again.upstream_id == first.upstream_id
    assert fake.submissions == 1


async def test_model_defaults_to_the_catalogue_id(
    fake: FakeTaskApi, provider: TaskApiProvider
) -> None:
    await provider.submit(make_spec(), idempotency_key="k", upstream_model=None)
    assert fake.last_body is not None and fake.last_body["model"] == "kling-2.0"


async def test_image_to_video_sends_a_data_url(
    fake: FakeTaskApi, provider: TaskApiProvider, deps: ProviderDeps
) -> None:
    png = png_bytes(64, 48)
    blob = await deps.blobs.put_bytes(png)
    image = ImageRef(sha256=blob.sha256, width=64, height=48, content_type="image/png")
    spec = make_spec(image=image)
    await provider.submit(spec, idempotency_key="img", upstream_model=UPSTREAM_MODEL)
    assert fake.last_body is not None
    sent = fake.last_body["image"]
    prefix = "data:image/png;base64,"
    assert sent.startswith(prefix)
    assert base64.b64decode(sent[len(prefix) :]) == png


async def test_several_outputs_are_all_downloaded(
    fake: FakeTaskApi, provider: TaskApiProvider, tmp_path: Path
) -> None:
    # On the sandbox model: kling-2.0's deployments make one video per request.
    request = VideoRequest(model="sandbox", prompt="a red fox", seconds=5, n=2)
    spec = normalize(request, CATALOG.get("sandbox"))
    submitted = await provider.submit(spec, idempotency_key="n2", upstream_model="sandbox")
    await run_to_end(provider, task_of(submitted))
    fractions: list[float] = []
    paths = await provider.fetch(task_of(submitted), tmp_path, fractions.append)
    assert paths == [tmp_path / "0.mp4", tmp_path / "1.mp4"]
    assert all(probe_video(p).frames > 0 for p in paths)
    assert fractions == [0.5, 1.0]
    assert fake.downloads == 2


def test_validate_rejects_remix_and_extend(provider: TaskApiProvider) -> None:
    source = SourceRef(
        video_id="video_1", sha256="a" * 64, seconds=5, width=1280, height=720, fps=24
    )
    for kind in ("remix", "extend"):
        spec = make_spec().model_copy(update={"kind": kind, "source": source})
        with pytest.raises(InvalidParameter) as info:
            provider.validate(spec, UPSTREAM_MODEL)
        assert info.value.param == "video"
        assert "task_api" in info.value.message and "allowed: generate" in info.value.message
    provider.validate(make_spec(), UPSTREAM_MODEL)


async def test_upstream_validation_error_is_a_rejection(
    fake: FakeTaskApi, provider: TaskApiProvider
) -> None:
    # The sandbox card allows 7 s; kling-2.0 at the upstream does not.
    spec = normalize(VideoRequest(model="sandbox", prompt="x", seconds=7), CATALOG.get("sandbox"))
    with pytest.raises(ProviderError) as info:
        await provider.submit(spec, idempotency_key="bad", upstream_model=UPSTREAM_MODEL)
    assert info.value.code == "upstream_rejected"
    assert not info.value.retryable
    assert "allowed: 5, 10" in info.value.message and "(invalid_parameter)" in info.value.message
    assert fake.submissions == 0


async def test_failed_generation_carries_the_upstream_reason(
    fake: FakeTaskApi, provider: TaskApiProvider
) -> None:
    fake.fail_tasks = ("content_policy_violation", "the prompt was refused by the safety system")
    submitted = await provider.submit(make_spec(), idempotency_key="f", upstream_model=None)
    final = (await run_to_end(provider, task_of(submitted)))[-1]
    assert final.state == "failed"
    assert (final.error_code, final.transient) == ("upstream_content_refused", False)
    assert final.error_message == (
        "task_api: the prompt was refused by the safety system (content_policy_violation)"
    )


async def test_rate_limit_then_success(fake: FakeTaskApi, provider: TaskApiProvider) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "7"})
    with pytest.raises(ProviderError) as info:
        await provider.submit(make_spec(), idempotency_key="r", upstream_model=None)
    assert info.value.retryable and info.value.retry_after_s == 7
    assert info.value.code == "upstream_rate_limited"
    assert "(rate_limit_exceeded)" in info.value.message
    submitted = await provider.submit(make_spec(), idempotency_key="r", upstream_model=None)
    assert submitted.upstream_id in fake.tasks


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(
    fake: FakeTaskApi, provider: TaskApiProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as info:
        await provider.submit(make_spec(), idempotency_key="s", upstream_model=None)
    assert info.value.retryable and not info.value.unhealthy


async def test_wrong_key_marks_the_deployment_unhealthy(
    fake: FakeTaskApi, deps: ProviderDeps
) -> None:
    adapter = make_provider(fake, deps, key="vg_live_wrong-secret")
    try:
        with pytest.raises(ProviderError) as info:
            await adapter.submit(make_spec(), idempotency_key="a", upstream_model=None)
    finally:
        await adapter.aclose()
    assert info.value.unhealthy and not info.value.retryable
    assert "invalid API key" in info.value.message
    assert "wrong-secret" not in str(info.value)
    assert fake.create_calls == 0


async def test_expired_link_is_refreshed_by_reading_again(
    fake: FakeTaskApi, provider: TaskApiProvider, tmp_path: Path
) -> None:
    fake.expire_urls = True
    submitted = await provider.submit(make_spec(), idempotency_key="e", upstream_model=None)
    await run_to_end(provider, task_of(submitted))
    fake.reads = 0
    # The link the last status read handed out goes stale before the download.
    fake.refresh_urls()
    paths = await provider.fetch(task_of(submitted), tmp_path)
    assert probe_video(paths[0]).frames > 0
    assert fake.downloads == 1
    # Exactly one re-read of the generation, for a freshly signed link.
    assert fake.reads == 1


async def test_fetch_uses_the_links_from_the_last_status_read(
    fake: FakeTaskApi, provider: TaskApiProvider, tmp_path: Path
) -> None:
    submitted = await provider.submit(make_spec(), idempotency_key="c", upstream_model=None)
    await run_to_end(provider, task_of(submitted))
    fake.reads = 0
    await provider.fetch(task_of(submitted), tmp_path)
    assert fake.reads == 0
    # A second fetch (a re-run finalize) reads the generation for links again.
    await provider.fetch(task_of(submitted), tmp_path)
    assert fake.reads == 1


async def test_link_that_stays_expired_is_result_expired(
    fake: FakeTaskApi, provider: TaskApiProvider, tmp_path: Path
) -> None:
    fake.expire_urls = True
    stale = f"{fake.base_url}/_files/{{}}/stale/video.mp4"
    fake.result_url = lambda task: stale.format(task.id)  # type: ignore[method-assign]
    submitted = await provider.submit(make_spec(), idempotency_key="x", upstream_model=None)
    await run_to_end(provider, task_of(submitted))
    with pytest.raises(ProviderError) as info:
        await provider.fetch(task_of(submitted), tmp_path)
    assert info.value.code == "result_expired" and not info.value.retryable
    assert fake.downloads == 0


async def test_cancel_deletes_upstream(fake: FakeTaskApi, provider: TaskApiProvider) -> None:
    submitted = await provider.submit(make_spec(), idempotency_key="d", upstream_model=None)
    await provider.cancel(task_of(submitted))
    assert fake.cancelled == [submitted.upstream_id]
    assert fake.tasks[submitted.upstream_id].state == "cancelled"
    # vidgate deletes a cancelled job: reads answer 404 and a second cancel is a no-op.
    with pytest.raises(ProviderError) as info:
        await provider.status(task_of(submitted))
    assert info.value.code == "upstream_not_found"
    await provider.cancel(task_of(submitted))
    assert fake.cancelled == [submitted.upstream_id]


async def test_cancel_is_a_no_op_where_the_upstream_has_no_delete(
    fake: FakeTaskApi, provider: TaskApiProvider
) -> None:
    fake.supports_delete = False
    submitted = await provider.submit(make_spec(), idempotency_key="n", upstream_model=None)
    await provider.cancel(task_of(submitted))
    assert fake.cancelled == []


async def test_cancel_with_a_wrong_key_still_raises(fake: FakeTaskApi, deps: ProviderDeps) -> None:
    adapter = make_provider(fake, deps, key="wrong")
    try:
        with pytest.raises(ProviderError) as info:
            await adapter.cancel(task_by_id("video_123"))
    finally:
        await adapter.aclose()
    assert info.value.unhealthy


# --- pure mapping --------------------------------------------------------------------


def test_parse_generation_states() -> None:
    assert parse_generation({"status": "queued", "progress": 0}).status == UpstreamStatus(
        "queued", progress=0
    )
    assert parse_generation({"status": "processing", "progress": 140}).status.progress == 100
    cancelled = parse_generation(
        {"status": "failed", "error": {"code": "cancelled", "message": "cancelled by user"}}
    )
    assert cancelled.status.state == "cancelled"
    # Another gateway's own crash is that upstream's failure here, and worth one retry.
    crashed = parse_generation(
        {"status": "failed", "error": {"code": "internal_error", "message": "boom"}}
    ).status
    assert (crashed.error_code, crashed.error_message, crashed.transient) == (
        "upstream_failed",
        "task_api: boom (internal_error)",
        True,
    )
    done = parse_generation(
        {
            "status": "completed",
            "cost": 0.35,
            "currency": "USD",
            "data": [{"index": 1, "url": "https://x/1"}, {"index": 0, "url": "https://x/0"}],
        }
    )
    assert done.urls == ["https://x/0", "https://x/1"]
    assert done.status.cost == Decimal("0.35")
    # A cost in anything but USD (router credits) is not what vidgate bills.
    credits = parse_generation({"status": "completed", "cost": 12, "currency": "credits"})
    assert credits.status.cost is None
    with pytest.raises(ProviderError) as info:
        parse_generation({"status": "exploded"})
    assert info.value.retryable and info.value.code == "upstream_bad_response"


def test_build_body_leaves_out_unset_fields() -> None:
    body = build_body(make_spec(), "kling-2.0", None)
    assert set(body) == {"model", "prompt", "duration", "resolution", "aspect_ratio", "fps", "n"}


def test_base_url_is_taken_with_or_without_v1() -> None:
    spec = task_api.ADAPTER
    assert api_base_url("https://router.example/v1/", spec) == "https://router.example/v1"
    assert api_base_url("https://router.example", spec) == "https://router.example/v1"
    assert api_base_url("https://router.example/api", spec) == "https://router.example/api/v1"


def test_create_requires_base_url_and_no_options(deps: ProviderDeps) -> None:
    with pytest.raises(ValueError, match="base_url"):
        create(DeploymentConfig(name="r", provider="task_api", credentials={"api_key": "k"}), deps)
    with pytest.raises(ValueError, match=r"options\.fps: unknown option; accepted: none"):
        create(
            DeploymentConfig(
                name="r",
                provider="task_api",
                base_url="https://x",
                credentials={"api_key": "k"},
                options={"fps": 24},
            ),
            deps,
        )


async def test_submit_refuses_what_validate_refuses(
    fake: FakeTaskApi, provider: TaskApiProvider
) -> None:
    source = SourceRef(
        video_id="video_1", sha256="a" * 64, seconds=5, width=1280, height=720, fps=24
    )
    remix = make_spec().model_copy(update={"kind": "remix", "source": source})
    # The runner runs this right before submit (it replaced the adapter's own re-check).
    with pytest.raises(ProviderError) as info:
        check_before_submit(provider, remix, UPSTREAM_MODEL)
    assert info.value.code == "invalid_parameter" and not info.value.retryable
    assert fake.create_calls == 0


async def test_first_download_expired_end_to_end_form(
    fake: FakeTaskApi, provider: TaskApiProvider, tmp_path: Path
) -> None:
    fake.expire_first_download = True
    submitted = await provider.submit(make_spec(), idempotency_key="f1", upstream_model=None)
    await run_to_end(provider, task_of(submitted))
    paths = await provider.fetch(task_of(submitted), tmp_path)
    assert probe_video(paths[0]).frames > 0 and fake.downloads == 1
