"""The Replicate adapter against a fake predictions API on loopback (reference section 6)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.harness import CallbackSink, FakeServer
from tests.fakes.replicate import API_TOKEN, BASE_PATH, VERSIONS, WEBHOOK_SECRET, FakeReplicate
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers import replicate
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus, UpstreamTask
from vidgate.providers.replicate import ReplicateProvider, create

DEPLOYMENT = "replicate-test"
HAILUO = "minimax/hailuo-2.3"
KLING = "kwaivgi/kling-v2.1"
GENERIC_VERSION = next(v for v, m in VERSIONS.items() if m == "acme/text-to-video")


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    upstream = FakeReplicate()
    with FakeServer(upstream):
        yield upstream


def _deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def _adapter(
    fake: FakeReplicate, deps: ProviderDeps, key: str = API_TOKEN, **options: Any
) -> ReplicateProvider:
    config = DeploymentConfig(
        name=DEPLOYMENT,
        provider="replicate",
        base_url=f"{fake.base_url}{BASE_PATH}",
        credentials={"api_key": SecretStr(key)},
        options={"poll_s": 0.05, **options},
    )
    return create(config, deps)


@pytest.fixture
async def adapter(fake: FakeReplicate, tmp_path: Path) -> AsyncIterator[ReplicateProvider]:
    provider = _adapter(fake, _deps(tmp_path))
    yield provider
    await provider.aclose()


def _spec(**changes: Any) -> JobSpec:
    base: dict[str, Any] = dict(model="hailuo", prompt="a lighthouse at dusk", seconds=6)
    base.update(changes)
    return spec_of(**base)


async def _until_done(
    adapter: ReplicateProvider, upstream: UpstreamTask
) -> list[tuple[str, int | None]]:
    seen: list[tuple[str, int | None]] = []
    for _ in range(10):
        status = await adapter.status(upstream)
        seen.append((status.state, status.progress))
        if status.state in ("succeeded", "failed", "cancelled"):
            break
    return seen


# --- pure mapping -------------------------------------------------------------------


def test_inputs_per_model() -> None:
    hailuo = replicate.input_map(replicate.parse_model(HAILUO))
    assert replicate.build_input(_spec(resolution="1080p"), hailuo, "data:x", {"a": 1}) == {
        "a": 1,
        "prompt": "a lighthouse at dusk",
        "duration": 6,
        "resolution": "1080p",
        "first_frame_image": "data:x",
    }
    kling = replicate.input_map(replicate.parse_model("kwaivgi/kling-v2.5-turbo-pro"))
    spec = _spec(seconds=10, aspect_ratio="1:1", negative_prompt="blur", resolution="720p")
    assert replicate.build_input(spec, kling, None) == {
        "prompt": "a lighthouse at dusk",
        "duration": 10,
        "aspect_ratio": "1:1",
        "mode": "standard",
        "negative_prompt": "blur",
    }
    generic = replicate.input_map(replicate.parse_model(f"acme/x:{GENERIC_VERSION}"))
    assert replicate.build_input(_spec(seed=3, seconds=4), generic, "data:y") == {
        "prompt": "a lighthouse at dusk",
        "duration": 4,
        "aspect_ratio": "16:9",
        "image": "data:y",
        "seed": 3,
    }


def test_parse_model_forms() -> None:
    assert replicate.parse_model(HAILUO) == replicate.ModelRef(HAILUO, None)
    assert replicate.parse_model(f"a/b:{GENERIC_VERSION}") == replicate.ModelRef(
        "a/b", GENERIC_VERSION
    )
    assert replicate.parse_model(GENERIC_VERSION) == replicate.ModelRef(None, GENERIC_VERSION)
    for bad in (None, "", "hailuo", "a/b:latest", "a/b/c"):
        with pytest.raises(InvalidParameter):
            replicate.parse_model(bad)


def test_parse_status_states_progress_and_errors() -> None:
    assert replicate.parse_status({"status": "starting"}, 3.0) == UpstreamStatus(
        "queued", poll_after_s=3.0
    )
    logs = "loading\n 10%|█         | 2/20 [00:01<00:09]\r 45%|████▌     | 9/20 [00:03<00:04]\n"
    running = replicate.parse_status({"status": "processing", "logs": logs})
    assert (running.state, running.progress) == ("running", 45)
    assert replicate.parse_status({"status": "processing", "logs": None}).progress is None
    assert replicate.parse_status({"status": "brand-new"}).state == "running"
    assert replicate.parse_status({"status": "succeeded"}).progress == 100
    assert replicate.parse_status({"status": "canceled"}).state == "cancelled"
    aborted = replicate.parse_status({"status": "aborted"})
    assert (aborted.state, aborted.error_code, aborted.transient) == (
        "failed",
        "upstream_timeout",
        True,
    )
    failed = replicate.parse_status({"status": "failed", "error": "flagged as sensitive (E005)"})
    assert (failed.state, failed.error_code, failed.transient) == (
        "failed",
        "upstream_content_refused",
        False,
    )
    assert failed.error_message == "replicate: flagged as sensitive (E005)"
    plain = replicate.parse_status({"status": "failed", "error": "CUDA out of memory"}, 1, "r")
    assert (plain.error_code, plain.error_message, plain.transient) == (
        "upstream_failed",
        "r: CUDA out of memory",
        True,
    )
    bad = replicate.parse_status({"status": "failed", "error": "prompt must not be empty"})
    assert (bad.error_code, bad.transient) == ("upstream_failed", False)
    assert replicate.parse_status({"status": "failed"}).cost is None


def test_output_urls_and_error_message() -> None:
    assert replicate.output_urls("https://r/a.mp4") == ["https://r/a.mp4"]
    assert replicate.output_urls(["https://r/a.mp4", None, "https://r/b.mp4"]) == [
        "https://r/a.mp4",
        "https://r/b.mp4",
    ]
    assert replicate.output_urls({"video": "https://r/c.mp4"}) == ["https://r/c.mp4"]
    assert replicate.output_urls(None) == []
    problem = {"title": "Input validation failed", "detail": "- input.duration: bad\n"}
    assert (
        replicate.error_message(httpx.Response(422, json=problem))
        == "Input validation failed: - input.duration: bad"
    )
    assert replicate.error_message(httpx.Response(429, json={"detail": "slow down"})) == "slow down"


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        (HAILUO, {"seconds": 8}, "seconds", "allowed: 6, 10"),
        (HAILUO, {"seconds": 10, "resolution": "1080p"}, "seconds", "allowed: 6"),
        (HAILUO, {"aspect_ratio": "9:16"}, "aspect_ratio", "allowed: 16:9"),
        (HAILUO, {"resolution": "480p"}, "resolution", "720p, 1080p"),
        (HAILUO, {"negative_prompt": "blur"}, "negative_prompt", "negative prompt"),
        (HAILUO, {"seed": 1}, "seed", "seed"),
        (HAILUO, {"n": 2}, "n", "allowed: 1"),
        (HAILUO, {"kind": "remix"}, "video", "remix"),
        (KLING, {"seconds": 6}, "seconds", "5, 10"),
        (KLING, {"seconds": 5, "aspect_ratio": "4:3"}, "aspect_ratio", "16:9, 9:16, 1:1"),
        ("hailuo", {}, "model", "owner/name"),
    ],
)
def test_validate_rejects(
    model: str, changes: dict[str, Any], param: str, words: str, tmp_path: Path
) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="replicate", credentials={"api_key": "k"})
    provider = create(config, _deps(tmp_path))
    with pytest.raises(InvalidParameter) as exc:
        provider.validate(_spec(**changes), model)
    assert exc.value.param == param
    assert "eplicate" in exc.value.message and words in exc.value.message


def test_validate_accepts_a_portrait_first_frame_for_hailuo(tmp_path: Path) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="replicate", credentials={"api_key": "k"})
    image = ImageRef(sha256="a" * 64, width=720, height=1280, content_type="image/png")
    create(config, _deps(tmp_path)).validate(_spec(aspect_ratio="9:16", image=image), HAILUO)


# --- against the fake ---------------------------------------------------------------


async def test_text_to_video_round_trip(
    fake: FakeReplicate, adapter: ReplicateProvider, tmp_path: Path
) -> None:
    result = await adapter.submit(_spec(), idempotency_key="video_1", upstream_model=HAILUO)
    assert result.poll_after_s == 0.05
    assert fake.requests == [
        {"input": {"prompt": "a lighthouse at dusk", "duration": 6, "resolution": "768p"}}
    ]
    assert "prefer" not in fake.create_headers[0]  # never sync mode
    fake.polls_to_finish = 3
    seen = await _until_done(adapter, task_of(result))
    assert [state for state, _ in seen] == ["queued", "running", "succeeded"]
    assert seen[1][1] is not None and 0 < seen[1][1] < 100  # from the tqdm line in logs
    out = tmp_path / "out"
    out.mkdir()
    fractions: list[float] = []
    paths = await adapter.fetch(task_of(result), out, fractions.append)
    assert paths == [out / "0.mp4"] and fractions == [1.0]
    info = probe_video(paths[0])
    assert (info.codec, info.width, info.height) == ("h264", 160, 96)


async def test_image_to_video_sends_a_data_uri(
    fake: FakeReplicate, adapter: ReplicateProvider, tmp_path: Path
) -> None:
    png = png_bytes(320, 180)
    stored = await adapter._deps.blobs.put_bytes(png)
    image = ImageRef(sha256=stored.sha256, width=320, height=180, content_type="image/png")
    await adapter.submit(_spec(image=image), idempotency_key="video_2", upstream_model=HAILUO)
    sent = fake.requests[0]["input"]["first_frame_image"]
    prefix = "data:image/png;base64,"
    assert sent.startswith(prefix) and base64.b64decode(sent[len(prefix) :]) == png


async def test_kling_body_on_the_model_route(
    fake: FakeReplicate, adapter: ReplicateProvider
) -> None:
    spec = _spec(seconds=10, resolution="1080p", aspect_ratio="9:16", negative_prompt="blur")
    await adapter.submit(spec, idempotency_key="video_3", upstream_model=KLING)
    assert fake.requests == [
        {
            "input": {
                "prompt": "a lighthouse at dusk",
                "duration": 10,
                "aspect_ratio": "9:16",
                "mode": "pro",
                "negative_prompt": "blur",
            }
        }
    ]


async def test_pinned_version_uses_the_predictions_route_and_list_output(
    fake: FakeReplicate, adapter: ReplicateProvider, tmp_path: Path
) -> None:
    spec = _spec(seconds=4, seed=42, negative_prompt="text")
    result = await adapter.submit(
        spec, idempotency_key="video_4", upstream_model=f"acme/text-to-video:{GENERIC_VERSION}"
    )
    assert fake.requests == [
        {
            "version": GENERIC_VERSION,
            "input": {
                "prompt": "a lighthouse at dusk",
                "duration": 4,
                "aspect_ratio": "16:9",
                "seed": 42,
                "negative_prompt": "text",
            },
        }
    ]
    assert (await _until_done(adapter, task_of(result)))[-1][0] == "succeeded"
    paths = await adapter.fetch(task_of(result), tmp_path)
    assert [p.name for p in paths] == ["0.mp4"] and fake.downloads == 1


async def test_upstream_validation_error_is_a_rejection(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    # options.input rides along untouched, so a wrong type reaches Replicate's schema check.
    provider = _adapter(fake, _deps(tmp_path), input={"prompt_optimizer": "yes"})
    with pytest.raises(ProviderError) as exc:
        await provider.submit(_spec(), idempotency_key="video_5", upstream_model=HAILUO)
    await provider.aclose()
    assert not exc.value.retryable and exc.value.code == "upstream_rejected"
    assert "Input validation failed" in exc.value.message
    assert "input.prompt_optimizer" in exc.value.message


async def test_failed_prediction_reports_the_reason(
    fake: FakeReplicate, adapter: ReplicateProvider
) -> None:
    fake.fail_tasks = ("E005", "The input or output was flagged as sensitive. (E005)")
    result = await adapter.submit(_spec(), idempotency_key="video_6", upstream_model=HAILUO)
    status = await adapter.status(task_of(result))
    status = await adapter.status(task_of(result))
    assert status.state == "failed" and status.error_code == "upstream_content_refused"
    assert status.error_message == (
        f"{adapter.name}: The input or output was flagged as sensitive. (E005)"
    )


async def test_aborted_prediction_is_a_failure(
    fake: FakeReplicate, adapter: ReplicateProvider
) -> None:
    fake.fail_tasks = ("aborted", "")
    fake.polls_to_finish = 1
    result = await adapter.submit(_spec(), idempotency_key="video_7", upstream_model=HAILUO)
    status = await adapter.status(task_of(result))
    assert (status.state, status.error_code) == ("failed", "upstream_timeout")


async def test_rate_limit_then_success(fake: FakeReplicate, adapter: ReplicateProvider) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "7"})
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="video_8", upstream_model=HAILUO)
    assert exc.value.retryable and exc.value.retry_after_s == 7.0
    assert "throttled" in exc.value.message
    result = await adapter.submit(_spec(), idempotency_key="video_8", upstream_model=HAILUO)
    assert result.upstream_id in fake.tasks and fake.submissions == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    fake: FakeReplicate, adapter: ReplicateProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="video_9", upstream_model=HAILUO)
    assert exc.value.retryable and not exc.value.unhealthy


async def test_wrong_token_marks_the_deployment_unhealthy(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    provider = _adapter(fake, _deps(tmp_path), key="r8_wrong")
    with pytest.raises(ProviderError) as exc:
        await provider.submit(_spec(), idempotency_key="video_10", upstream_model=HAILUO)
    with pytest.raises(ProviderError) as on_poll:
        await provider.status(task_by_id("abc"))
    await provider.aclose()
    for error in (exc.value, on_poll.value):
        assert error.unhealthy and not error.retryable
        assert "r8_wrong" not in str(error) and "authentication token" in error.message


async def test_expired_output_is_final(
    fake: FakeReplicate, adapter: ReplicateProvider, tmp_path: Path
) -> None:
    result = await adapter.submit(_spec(), idempotency_key="video_11", upstream_model=HAILUO)
    assert (await _until_done(adapter, task_of(result)))[-1][0] == "succeeded"
    fake.expire_urls = True
    fake.refresh_urls()
    reads = fake.reads
    with pytest.raises(ProviderError) as exc:
        await adapter.fetch(task_of(result), tmp_path)
    assert exc.value.code == "result_expired" and not exc.value.retryable
    assert fake.expired_downloads == 1 and fake.downloads == 0
    assert fake.reads == reads + 1  # no pointless re-reads: the output cannot change


async def test_cancel_hits_the_prediction(fake: FakeReplicate, adapter: ReplicateProvider) -> None:
    fake.polls_to_finish = 100
    result = await adapter.submit(_spec(), idempotency_key="video_12", upstream_model=HAILUO)
    await adapter.cancel(task_of(result))
    assert fake.cancelled == [result.upstream_id]
    assert (await adapter.status(task_of(result))).state == "cancelled"
    await adapter.cancel(task_by_id("no-such-prediction"))  # already gone: nothing to do


async def test_webhook_is_sent_for_completed_and_called_with_the_prediction(
    fake: FakeReplicate, tmp_path: Path
) -> None:
    from standardwebhooks import Webhook

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
                _spec(), idempotency_key="video_cb", upstream_model=HAILUO
            )
            request = fake.requests[-1]
            assert request["webhook"] == sink.url("video_cb")
            assert request["webhook_events_filter"] == ["completed"]
            # Only "completed" was asked for: no call while it runs.
            assert fake.send_callback(result.upstream_id) is None
            assert fake.finish() == [200]
            [call] = sink.received
            assert call.body["id"] == result.upstream_id and call.body["status"] == "succeeded"
            # Signed with Standard Webhooks (vidgate does not need to check it).
            raw = json.dumps(call.body)
            assert Webhook(WEBHOOK_SECRET).verify(raw, call.headers) == call.body
            assert (await adapter.status(task_of(result))).state == "succeeded"
        finally:
            await adapter.aclose()


# --- last frame and reference images ---------------------------------------------------

_IMAGE = ImageRef(sha256="a" * 64, width=320, height=180, content_type="image/png")


async def test_kling_last_frame_goes_as_end_image(
    fake: FakeReplicate, adapter: ReplicateProvider
) -> None:
    first_png = png_bytes(320, 180, (255, 0, 0))
    last_png = png_bytes(320, 180, (0, 0, 255))
    first = await adapter._deps.blobs.put_bytes(first_png)
    last = await adapter._deps.blobs.put_bytes(last_png)
    spec = _spec(
        seconds=5,
        image=_IMAGE.model_copy(update={"sha256": first.sha256}),
        last_frame=_IMAGE.model_copy(update={"sha256": last.sha256}),
    )
    adapter.validate(spec, KLING)
    await adapter.submit(spec, idempotency_key="video_lf", upstream_model=KLING)
    prefix = "data:image/png;base64,"
    assert fake.requests == [
        {
            "input": {
                "prompt": "a lighthouse at dusk",
                "duration": 5,
                "aspect_ratio": "16:9",
                "mode": "standard",
                "start_image": prefix + base64.b64encode(first_png).decode(),
                "end_image": prefix + base64.b64encode(last_png).decode(),
            }
        }
    ]


def test_end_image_only_beside_a_start_image() -> None:
    kling = replicate.input_map(replicate.parse_model(KLING))
    body = replicate.build_input(_spec(seconds=5), kling, "data:a", last_frame="data:b")
    assert (body["start_image"], body["end_image"]) == ("data:a", "data:b")
    assert "end_image" not in replicate.build_input(_spec(), kling, None, last_frame="data:b")
    hailuo = replicate.input_map(replicate.parse_model(HAILUO))
    assert set(replicate.build_input(_spec(), hailuo, "data:a", None, "data:b")) == {
        "prompt", "duration", "resolution", "first_frame_image",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        (HAILUO, {"image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "last frame is not supported"),
        (f"acme/text-to-video:{GENERIC_VERSION}", {"seconds": 4, "image": _IMAGE,
         "last_frame": _IMAGE}, "last_frame", "last frame is not supported"),
        (GENERIC_VERSION, {"seconds": 4, "image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "models that do: kwaivgi/kling-*"),
        (KLING, {"seconds": 5, "last_frame": _IMAGE}, "last_frame",
         "allowed: image with last_frame"),
        (KLING, {"seconds": 5, "reference_images": [_IMAGE]}, "reference_images",
         "allowed: none"),
        (HAILUO, {"reference_images": [_IMAGE]}, "reference_images",
         "reference images are not supported"),
        ("acme/text-to-video", {"seconds": 4, "reference_images": [_IMAGE] * 2},
         "reference_images", "reference images are not supported"),
    ],
)  # fmt: skip
def test_validate_rejects_frames_and_references(
    model: str, changes: dict[str, Any], param: str, words: str, tmp_path: Path
) -> None:
    config = DeploymentConfig(name=DEPLOYMENT, provider="replicate", credentials={"api_key": "k"})
    with pytest.raises(InvalidParameter) as exc:
        create(config, _deps(tmp_path)).validate(_spec(**changes), model)
    assert exc.value.param == param
    assert "Replicate" in exc.value.message and words in exc.value.message


_URI = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"end_image": _URI}, "- input.end_image: start_image is required with end_image"),
        ({"start_image": _URI, "end_image": "not a uri"},
         "- input.end_image: Does not match format 'uri'"),
    ],
)  # fmt: skip
async def test_fake_checks_the_kling_end_image(
    fake: FakeReplicate, inputs: dict[str, Any], message: str
) -> None:
    async with httpx.AsyncClient(base_url=f"{fake.base_url}{BASE_PATH}") as client:
        response = await client.post(
            f"/models/{KLING}/predictions",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            json={"input": {"prompt": "x", **inputs}},
        )
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert fake.submissions == 0
