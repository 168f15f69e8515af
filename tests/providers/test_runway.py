"""The Runway adapter against a fake Runway API on loopback (reference section 4)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.harness import FakeServer
from tests.fakes.runway import API_KEY, FakeRunway
from tests.fakes.runway import MODELS as fake_models
from tests.providers.tasks import spec_of, task_of
from vidgate.config import Settings
from vidgate.core.capabilities import Capabilities
from vidgate.core.catalog import builtin_upstreams
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers import runway
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamTask
from vidgate.providers.runway import RunwayProvider, create


@pytest.fixture
def fake() -> Iterator[FakeRunway]:
    upstream = FakeRunway()
    with FakeServer(upstream):
        yield upstream


def _deps(tmp_path: Path) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )


def _adapter(fake: FakeRunway, tmp_path: Path, key: str = API_KEY) -> RunwayProvider:
    config = DeploymentConfig(
        name="runway-test",
        provider="runway",
        base_url=fake.base_url,
        credentials={"api_key": SecretStr(key)},
        options={"min_poll_s": 0.05},
    )
    return create(config, _deps(tmp_path))


@pytest.fixture
async def adapter(fake: FakeRunway, tmp_path: Path) -> AsyncIterator[RunwayProvider]:
    provider = _adapter(fake, tmp_path)
    yield provider
    await provider.aclose()


def _spec(**changes: Any) -> JobSpec:
    base: dict[str, Any] = dict(model="runway-gen4.5", prompt="a fox in the snow")
    base.update(changes)
    return spec_of(**base)


async def _image(tmp_path: Path, data: bytes | None = None) -> ImageRef:
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(data or png_bytes())
    return ImageRef(sha256=blob.sha256, width=64, height=48, content_type="image/png")


async def _until_done(
    adapter: RunwayProvider, upstream: UpstreamTask
) -> list[tuple[str, int | None]]:
    seen: list[tuple[str, int | None]] = []
    for _ in range(10):
        status = await adapter.status(upstream)
        seen.append((status.state, status.progress))
        if status.state in ("succeeded", "failed", "cancelled"):
            break
    return seen


# --- pure mapping -------------------------------------------------------------------


def test_request_for_veo_with_seed_and_negative_prompt() -> None:
    spec = _spec(
        seconds=8, width=1080, height=1920, resolution="1080p", aspect_ratio="9:16",
        seed=42, negative_prompt="blur",
    )  # fmt: skip
    path, body = runway.build_request(spec, "veo3.1", None)
    assert path == "/text_to_video"
    assert body == {
        "model": "veo3.1",
        "ratio": "1080:1920",
        "duration": 8,
        "promptText": "a fox in the snow",
        "seed": 42,
        "negativePrompt": "blur",
    }
    path, body = runway.build_request(spec, "veo3.1", "data:image/png;base64,AAAA")
    assert path == "/image_to_video" and body["promptImage"] == "data:image/png;base64,AAAA"


def test_parse_task_states_progress_and_cost() -> None:
    assert runway.parse_task({"status": "PENDING"}, 5.0).state == "queued"
    throttled = runway.parse_task({"status": "THROTTLED"}, 6.0)
    assert (throttled.state, throttled.poll_after_s) == ("queued", 6.0)
    running = runway.parse_task({"status": "RUNNING", "progress": 0.42})
    assert (running.state, running.progress) == ("running", 42)
    done = runway.parse_task(
        {"status": "SUCCEEDED", "output": ["https://x/v.mp4"], "cost": {"credits": 60}}
    )
    assert (done.state, done.progress, done.cost) == ("succeeded", 100, Decimal("0.60"))
    failed = runway.parse_task(
        {"status": "FAILED", "failure": "Prompt flagged", "failureCode": "SAFETY.INPUT.TEXT"}
    )
    assert (failed.state, failed.error_code, failed.transient) == (
        "failed",
        "upstream_content_refused",
        False,
    )
    assert failed.error_message == "runway: Prompt flagged (SAFETY.INPUT.TEXT)"
    for code, expected in [
        ("INTERNAL.BAD_OUTPUT.CODE01", ("upstream_failed", True)),
        ("INTERNAL", ("upstream_failed", True)),
        ("INPUT_PREPROCESSING.INTERNAL", ("upstream_failed", True)),
        ("INPUT_PREPROCESSING.SAFETY.TEXT", ("upstream_content_refused", False)),
        ("ASSET.INVALID", ("upstream_rejected", False)),
    ]:
        got = runway.parse_task({"status": "FAILED", "failure": "x", "failureCode": code})
        assert (got.error_code, got.transient) == expected, code
    assert runway.parse_task({"status": "CANCELLED", "cost": {"credits": 0}}).state == "cancelled"
    with pytest.raises(ProviderError) as exc:
        runway.parse_task({"status": "WEIRD"})
    assert exc.value.retryable


def test_error_message_reads_issues() -> None:
    body = {"error": "Validation of body failed", "issues": [{"path": ["ratio"], "message": "bad"}]}
    assert (
        runway.error_message(httpx.Response(400, json=body))
        == "Validation of body failed (ratio: bad)"
    )
    assert runway.error_message(httpx.Response(401, json={"error": "Invalid API key"})) == (
        "Invalid API key"
    )


_IMAGE = ImageRef(sha256="a" * 64, width=64, height=48, content_type="image/png")


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        ("gen4.5", {"seconds": 11}, "seconds", "allowed: 2, 3"),
        ("veo3.1", {"seconds": 5}, "seconds", "allowed: 4, 6, 8"),
        ("gen4.5", {"width": 1920, "height": 1080, "resolution": "1080p"}, "size", "1280x720"),
        ("gen4.5", {"width": 720, "height": 720, "aspect_ratio": "1:1"}, "size", "720x1280"),
        ("gen4_turbo", {}, "image", "image-to-video only"),
        ("gen4.5", {"negative_prompt": "blur"}, "negative_prompt", "veo3.1"),
        ("gen4.5", {"n": 2}, "n", "one video"),
        ("gen4.5", {"kind": "remix"}, "video", "generate"),
        ("gen4.5", {"fps": 30}, "fps", "24"),
        ("gen4.5", {"seed": -1}, "seed", "4294967295"),
        ("gen4.5", {"prompt": "x" * 1001}, "prompt", "1000"),
        ("gen3", {}, "model", "gen4.5, gen4_turbo, veo3.1"),
        ("gen4.5", {"image": _IMAGE.model_copy(update={"content_type": "image/gif"})}, "image",
         "image/png"),
        ("gen4.5", {"image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "last frame is not supported; allowed: a first frame only; models that do: veo3.1,"
         " veo3.1_fast"),
        ("gen4_turbo", {"image": _IMAGE, "last_frame": _IMAGE}, "last_frame", "veo3.1"),
        ("veo3.1", {"seconds": 8, "last_frame": _IMAGE}, "last_frame", "needs a first frame"),
        ("veo3.1_fast", {"seconds": 8, "image": _IMAGE,
                         "last_frame": _IMAGE.model_copy(update={"content_type": "image/gif"})},
         "last_frame", "image/png"),
        ("gen4.5", {"reference_images": [_IMAGE]}, "reference_images", "reference images"),
        ("veo3.1", {"seconds": 8, "reference_images": [_IMAGE]}, "reference_images",
         "allowed: none"),
    ],
)  # fmt: skip
def test_validate_rejects(
    model: str, changes: dict[str, Any], param: str, words: str, tmp_path: Path
) -> None:
    provider = create(
        DeploymentConfig(name="r", provider="runway", credentials={"api_key": "k"}),
        _deps(tmp_path),
    )
    with pytest.raises(InvalidParameter) as exc:
        provider.validate(_spec(**changes), model)
    assert exc.value.param == param
    assert "runway" in exc.value.message and words in exc.value.message


async def test_validate_rejects_an_image_over_5_mb_as_data_uri(tmp_path: Path) -> None:
    provider = create(
        DeploymentConfig(name="r", provider="runway", credentials={"api_key": "k"}),
        _deps(tmp_path),
    )
    # 3.8 MB of bytes is over 5,000,000 once base64-encoded.
    big = await _image(tmp_path, png_bytes() + b"\0" * 3_800_000)
    with pytest.raises(InvalidParameter, match="data URI") as exc:
        provider.validate(_spec(image=big), "gen4.5")
    assert exc.value.param == "image"
    provider.validate(_spec(image=await _image(tmp_path)), "gen4.5")  # small: fine
    provider.validate(_spec(image=await _image(tmp_path)), "gen4_turbo")


def test_image_to_video_allows_more_ratios_than_text(tmp_path: Path) -> None:
    provider = create(
        DeploymentConfig(name="r", provider="runway", credentials={"api_key": "k"}),
        _deps(tmp_path),
    )
    square = _spec(width=960, height=960, aspect_ratio="1:1")
    with pytest.raises(InvalidParameter):
        provider.validate(square, "gen4.5")
    provider.validate(square.model_copy(update={"image": _IMAGE}), "gen4.5")


# --- against the fake ---------------------------------------------------------------


async def test_text_to_video_round_trip(
    fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    result = await adapter.submit(_spec(seed=7), idempotency_key="video_1", upstream_model=None)
    assert result.poll_after_s == 0.05
    assert fake.requests == [
        (
            "/v1/text_to_video",
            {
                "model": "gen4.5",
                "ratio": "1280:720",
                "duration": 5,
                "promptText": "a fox in the snow",
                "seed": 7,
            },
        )
    ]
    fake.polls_to_finish = 4
    seen = await _until_done(adapter, task_of(result))
    assert seen == [("queued", None), ("running", 50), ("running", 75), ("succeeded", 100)]
    final = await adapter.status(task_of(result))
    assert final.cost == Decimal("0.60")  # 60 credits at $0.01 (UNVERIFIED rate)
    out = tmp_path / "out"
    out.mkdir()
    paths = await adapter.fetch(task_of(result), out)
    assert paths == [out / "0.mp4"]
    info = probe_video(paths[0])
    assert (info.width, info.height, info.codec) == (160, 96, "h264")


async def test_veo_request_fields(fake: FakeRunway, adapter: RunwayProvider) -> None:
    spec = _spec(
        seconds=6, width=1920, height=1080, resolution="1080p", seed=3, negative_prompt="blur"
    )
    await adapter.submit(spec, idempotency_key="v", upstream_model="veo3.1")
    assert fake.requests[0][1] == {
        "model": "veo3.1",
        "ratio": "1920:1080",
        "duration": 6,
        "promptText": "a fox in the snow",
        "seed": 3,
        "negativePrompt": "blur",
    }


async def test_image_to_video_sends_a_data_uri(
    fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    image = await _image(tmp_path)
    spec = _spec(image=image, seconds=10, width=720, height=1280, aspect_ratio="9:16")
    await adapter.submit(spec, idempotency_key="v", upstream_model="gen4_turbo")
    path, body = fake.requests[0]
    assert path == "/v1/image_to_video"
    assert body["model"] == "gen4_turbo" and body["ratio"] == "720:1280"
    assert body["duration"] == 10
    prefix = "data:image/png;base64,"
    assert body["promptImage"].startswith(prefix)
    assert base64.b64decode(body["promptImage"][len(prefix) :]) == png_bytes()


def test_request_with_a_last_frame_uses_the_position_array() -> None:
    spec = _spec(seconds=8, image=_IMAGE, last_frame=_IMAGE)
    path, body = runway.build_request(spec, "veo3.1_fast", "data:image/png;base64,AA", "data:x")
    assert path == "/image_to_video"
    assert body["promptImage"] == [
        {"uri": "data:image/png;base64,AA", "position": "first"},
        {"uri": "data:x", "position": "last"},
    ]


async def test_first_and_last_frame_go_as_promptimage_positions(
    fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    first_png = png_bytes(64, 48, (255, 0, 0))
    last_png = png_bytes(64, 48, (0, 0, 255))
    first = await _image(tmp_path, first_png)
    last = await _image(tmp_path, last_png)
    spec = _spec(image=first, last_frame=last, seconds=8)
    adapter.validate(spec, "veo3.1")
    await adapter.submit(spec, idempotency_key="v", upstream_model="veo3.1")
    path, body = fake.requests[0]
    prefix = "data:image/png;base64,"
    assert path == "/v1/image_to_video"
    assert body == {
        "model": "veo3.1",
        "ratio": "1280:720",
        "duration": 8,
        "promptText": "a fox in the snow",
        "promptImage": [
            {"uri": prefix + base64.b64encode(first_png).decode(), "position": "first"},
            {"uri": prefix + base64.b64encode(last_png).decode(), "position": "last"},
        ],
    }


async def test_an_oversized_last_frame_is_refused_before_upload(
    fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    big = await _image(tmp_path, png_bytes() + b"\0" * 3_800_000)
    spec = _spec(image=await _image(tmp_path), last_frame=big, seconds=8)
    with pytest.raises(InvalidParameter) as exc:
        adapter.validate(spec, "veo3.1")
    assert exc.value.param == "last_frame" and "data URI" in exc.value.message
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(spec, idempotency_key="v", upstream_model="veo3.1")
    assert caught.value.code == "image_too_large" and "last frame" in caught.value.message
    assert fake.create_calls == 0


_URI = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
_BOTH = [{"uri": _URI, "position": "first"}, {"uri": _URI, "position": "last"}]


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"promptImage": [{"uri": _URI, "position": "last"}]}, "promptImage", "needs a first"),
        (
            {"model": "gen4.5", "duration": 5, "promptImage": _BOTH},
            "promptImage", "position must be one of",
        ),
        (
            {"promptImage": [{"uri": _URI, "position": "first"}] * 2},
            "promptImage", "only once",
        ),
        (
            {"promptImage": [*_BOTH, {"uri": _URI, "position": "last"}]},
            "promptImage", "at most 2",
        ),
        ({"references": [{"uri": _URI}]}, "references", "Unrecognized key"),
    ],
)  # fmt: skip
async def test_fake_refuses_bad_frame_and_reference_fields(
    fake: FakeRunway, changes: dict[str, Any], path: str, message: str
) -> None:
    body = {"model": "veo3.1", "ratio": "1280:720", "duration": 8, "promptText": "x",
            "promptImage": _URI, **changes}  # fmt: skip
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post(
            "/v1/image_to_video",
            headers={"Authorization": f"Bearer {API_KEY}", "X-Runway-Version": "2024-11-06"},
            json=body,
        )
    assert response.status_code == 400
    [issue] = response.json()["issues"]
    assert issue["path"] == [path] and message in issue["message"]
    assert fake.submissions == 0


async def test_throttled_task_is_queued(fake: FakeRunway, adapter: RunwayProvider) -> None:
    fake.throttle = True
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    status = await adapter.status(task_of(result))
    assert (status.state, status.poll_after_s) == ("queued", 0.05)


async def test_failed_task_reports_code_and_reason(
    fake: FakeRunway, adapter: RunwayProvider
) -> None:
    fake.fail_tasks = ("SAFETY.INPUT.TEXT", "The prompt was flagged by content moderation.")
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    seen = await _until_done(adapter, task_of(result))
    assert seen[-1][0] == "failed"
    status = await adapter.status(task_of(result))
    assert status.error_code == "upstream_content_refused"
    assert status.error_message == (
        "runway: The prompt was flagged by content moderation. (SAFETY.INPUT.TEXT)"
    )
    assert status.cost == Decimal("0")


async def test_rate_limit_is_retryable_with_retry_after(
    fake: FakeRunway, adapter: RunwayProvider
) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "12"})
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    assert exc.value.retryable and exc.value.retry_after_s == 12.0
    assert "rate limit" in exc.value.message
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    assert result.upstream_id in fake.tasks
    assert (fake.create_calls, fake.submissions) == (2, 1)


async def test_server_error_is_retryable(fake: FakeRunway, adapter: RunwayProvider) -> None:
    fake.fail_next_creates(1, 502)
    with pytest.raises(ProviderError) as exc:
        await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    assert exc.value.retryable and exc.value.code == "upstream_error"


async def test_wrong_key_marks_the_deployment_unhealthy(fake: FakeRunway, tmp_path: Path) -> None:
    provider = _adapter(fake, tmp_path, key="key_wrong")
    try:
        with pytest.raises(ProviderError) as exc:
            await provider.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    finally:
        await provider.aclose()
    assert exc.value.unhealthy and not exc.value.retryable
    assert "key_wrong" not in str(exc.value)
    assert (fake.auth_failures, fake.version_failures, fake.submissions) == (1, 0, 0)


async def test_fake_requires_the_version_header(fake: FakeRunway) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post(
            "/v1/text_to_video",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "gen4.5", "promptText": "x", "ratio": "1280:720", "duration": 5},
        )
    assert response.status_code == 400 and "X-Runway-Version" in response.json()["error"]
    assert fake.submissions == 0


async def test_fake_refuses_a_field_the_model_does_not_take(fake: FakeRunway) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        response = await client.post(
            "/v1/text_to_video",
            headers={"Authorization": f"Bearer {API_KEY}", "X-Runway-Version": "2024-11-06"},
            json={
                "model": "gen4.5", "promptText": "x", "ratio": "1280:720", "duration": 5,
                "negativePrompt": "blur",
            },
        )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["negativePrompt"]


async def test_expired_urls_are_refreshed_by_reading_the_task(
    fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    fake.expire_urls = True
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    assert (await _until_done(adapter, task_of(result)))[-1][0] == "succeeded"
    fake.refresh_urls()  # the URL the adapter saw in that status read is now stale
    reads = fake.reads
    paths = await adapter.fetch(task_of(result), tmp_path)
    assert probe_video(paths[0]).codec == "h264"
    # The remembered URL was tried and refused, then one re-read gave a working one.
    assert (fake.expired_downloads, fake.reads - reads, fake.downloads) == (1, 1, 1)


async def test_cancel_hits_delete(fake: FakeRunway, adapter: RunwayProvider) -> None:
    result = await adapter.submit(_spec(), idempotency_key="v", upstream_model="gen4.5")
    await adapter.cancel(task_of(result))
    assert fake.cancelled == [result.upstream_id]
    status = await adapter.status(task_of(result))
    assert status.state == "cancelled"
    await adapter.cancel(task_of(result))  # a finished task is deleted
    with pytest.raises(ProviderError) as exc:
        await adapter.status(task_of(result))
    assert exc.value.code == "upstream_not_found"
    await adapter.cancel(task_of(result))  # already gone: not an error


# --- the whole SDK 5.24.0 model list ------------------------------------------------

# Reference section 4, "Model literals (SDK 5.24.0)" for POST /v1/image_to_video; every
# one except gen4_turbo is also a /v1/text_to_video model.
REFERENCE_MODELS = (
    "gen4.5", "gen4_turbo", "veo3.1", "veo3.1_fast", "klingO3_4k", "hailuo3", "kling3.0_4k",
    "happyhorse_1_0", "kling2.5_turbo_pro", "kling3.0_pro", "kling3.0_standard",
    "klingO3_pro", "klingO3_standard", "seedance2", "seedance2_fast", "seedance2_mini",
    "gemini_omni_flash", "grok_imagine_1_5", "wan3", "gemini_omni_flash_1.1", "wan3_prime",
    "h3_max", "seedance2_5", "grok_imagine_1_5_lite", "kling_4",
)  # fmt: skip
IMAGE_ONLY = ("gen4_turbo",)
_4K = {"seconds": 5, "width": 3840, "height": 2160, "resolution": "4K"}
_1080 = {"seconds": 5, "width": 1920, "height": 1080, "resolution": "1080p"}
# A spec each model takes (720p 16:9, 5 s unless said here).
_REPRESENTATIVE: dict[str, dict[str, Any]] = {
    "veo3.1": {"seconds": 8},
    "veo3.1_fast": {"seconds": 8},
    "klingO3_4k": _4K,
    "kling3.0_4k": _4K,
    "kling3.0_pro": _1080,
    "klingO3_pro": _1080,
}
_MODES = [
    (model, mode)
    for model in REFERENCE_MODELS
    for mode in ("image", "text")
    if mode == "image" or model not in IMAGE_ONLY
]


def _provider(tmp_path: Path) -> RunwayProvider:
    return create(
        DeploymentConfig(name="r", provider="runway", credentials={"api_key": "k"}),
        _deps(tmp_path),
    )


async def _sized_image(tmp_path: Path, width: int = 400, height: int = 300) -> ImageRef:
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(png_bytes(width, height))
    return ImageRef(sha256=blob.sha256, width=width, height=height, content_type="image/png")


def test_the_table_is_the_reference_model_list() -> None:
    assert set(runway.MODELS) == set(REFERENCE_MODELS) == set(fake_models)
    text = {m for m, c in runway.MODELS.items() if c.text is not None}
    assert text == set(REFERENCE_MODELS) - set(IMAGE_ONLY)
    assert text == {m for m, c in fake_models.items() if c.text is not None}


def _caps(model: str) -> Capabilities:
    caps = builtin_upstreams().lookup("runway", model)
    assert caps is not None
    return caps


@pytest.mark.parametrize("model", REFERENCE_MODELS)
def test_adapter_and_fake_share_the_rules(model: str) -> None:
    """Every value the adapter can send is one the fake takes, and the flags agree (the
    frames are the adapter's table, the rest the catalogue's upstreams.runway)."""
    ours, theirs = runway.MODELS[model], fake_models[model]
    caps = _caps(model)
    durations = None if caps.durations is None else tuple(caps.durations.allowed or ())
    assert durations == (None if theirs.durations is None else tuple(sorted(theirs.durations)))
    assert ours.max_prompt == theirs.max_prompt
    assert caps.image_min_side == theirs.min_image_side
    assert caps.last_frame == ("last" in theirs.image.positions)
    for frame, endpoint in ((ours.image, theirs.image), (ours.text, theirs.text)):
        if frame is None or endpoint is None:
            assert frame is None and endpoint is None
            continue
        assert caps.seed == ("seed" in endpoint.fields)
        assert caps.negative_prompt == ("negativePrompt" in endpoint.fields)
        sent_ratios = set(frame.ratios) if frame.ratio in ("pixels", "aspect") else set()
        sent_resolutions = {sent for _, sent in frame.resolutions}
        if frame.ratio == "auto":
            sent_ratios, sent_resolutions = sent_resolutions, set()
        assert sent_ratios <= endpoint.ratios
        assert sent_resolutions <= endpoint.resolutions
        assert ("ratio" in endpoint.fields) == (frame.ratio is not None)
        assert ("resolution" in endpoint.fields) == bool(sent_resolutions)


@pytest.mark.parametrize(("model", "mode"), _MODES)
async def test_every_reference_model_is_accepted_and_the_fake_takes_it(
    model: str, mode: str, fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    image = await _sized_image(tmp_path) if mode == "image" else None
    spec = _spec(image=image, **_REPRESENTATIVE.get(model, {}))
    adapter.validate(spec, model)
    await adapter.submit(spec, idempotency_key="v", upstream_model=model)
    path, body = fake.requests[-1]
    assert path == f"/v1/{mode}_to_video" and body["model"] == model
    if _caps(model).last_frame and image is not None:
        both = spec.model_copy(update={"last_frame": image})
        adapter.validate(both, model)
        await adapter.submit(both, idempotency_key="v2", upstream_model=model)
        assert [p["position"] for p in fake.requests[-1][1]["promptImage"]] == ["first", "last"]
    elif image is not None:
        with pytest.raises(InvalidParameter) as exc:
            adapter.validate(spec.model_copy(update={"last_frame": image}), model)
        assert exc.value.param == "last_frame"


def test_gen4_turbo_is_refused_for_text_to_video(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as exc:
        _provider(tmp_path).validate(_spec(), "gen4_turbo")
    assert exc.value.param == "image" and "image-to-video only" in exc.value.message
    _provider(tmp_path).validate(_spec(image=_IMAGE), "gen4_turbo")


async def test_fake_refuses_gen4_turbo_on_text_to_video(fake: FakeRunway) -> None:
    response = await _post(
        fake, "/v1/text_to_video",
        {"model": "gen4_turbo", "promptText": "x", "ratio": "1280:720", "duration": 5},
    )  # fmt: skip
    assert response.status_code == 400
    [issue] = response.json()["issues"]
    assert issue["path"] == ["model"] and "gen4_turbo" not in issue["message"]
    assert fake.submissions == 0


async def _post(fake: FakeRunway, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        return await client.post(
            path,
            headers={"Authorization": f"Bearer {API_KEY}", "X-Runway-Version": "2024-11-06"},
            json=body,
        )


@pytest.mark.parametrize("seconds", [5, 10])
async def test_kling_2_5_turbo_pro_takes_5_or_10_seconds(
    seconds: int, fake: FakeRunway, adapter: RunwayProvider, tmp_path: Path
) -> None:
    spec = _spec(seconds=seconds)
    await adapter.submit(spec, idempotency_key="v", upstream_model="kling2.5_turbo_pro")
    assert fake.requests[-1] == (
        "/v1/text_to_video",
        {"model": "kling2.5_turbo_pro", "ratio": "1280:720", "duration": seconds,
         "promptText": "a fox in the snow"},
    )  # fmt: skip
    # Image-to-video takes no ratio: the output follows the image.
    image = await _sized_image(tmp_path)
    await adapter.submit(
        spec.model_copy(update={"image": image}), idempotency_key="i",
        upstream_model="kling2.5_turbo_pro",
    )  # fmt: skip
    path, body = fake.requests[-1]
    assert path == "/v1/image_to_video" and "ratio" not in body
    assert body["duration"] == seconds


@pytest.mark.parametrize("seconds", [4, 6, 8])
async def test_kling_2_5_turbo_pro_refuses_other_durations(
    seconds: int, fake: FakeRunway, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameter) as exc:
        _provider(tmp_path).validate(_spec(seconds=seconds), "kling2.5_turbo_pro")
    assert exc.value.param == "seconds" and "allowed: 5, 10" in exc.value.message
    response = await _post(
        fake, "/v1/text_to_video",
        {"model": "kling2.5_turbo_pro", "promptText": "x", "ratio": "1280:720",
         "duration": seconds},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["issues"][0]["path"] == ["duration"]


@pytest.mark.parametrize(
    ("model", "width", "height", "aspect"),
    [("klingO3_4k", 3840, 2160, "16:9"), ("kling3.0_4k", 2160, 3840, "9:16")],
)
async def test_4k_kling_ratio(
    model: str, width: int, height: int, aspect: str, fake: FakeRunway, adapter: RunwayProvider
) -> None:
    spec = _spec(width=width, height=height, resolution="4K", aspect_ratio=aspect)
    await adapter.submit(spec, idempotency_key="v", upstream_model=model)
    assert fake.requests[-1][1]["ratio"] == f"{width}:{height}"
    with pytest.raises(InvalidParameter) as exc:
        adapter.validate(_spec(**_1080), model)
    assert exc.value.param == "size"
    assert "allowed sizes: 3840x2160, 2160x3840, 2880x2880" in exc.value.message


@pytest.mark.parametrize(
    ("resolution", "width", "sent"), [("720p", 1280, "768p"), ("1080p", 1920, "2k")]
)
async def test_hailuo3_resolution_mapping(
    resolution: str, width: int, sent: str, fake: FakeRunway, adapter: RunwayProvider,
    tmp_path: Path,
) -> None:  # fmt: skip
    spec = _spec(width=width, height=width * 9 // 16, resolution=resolution)
    await adapter.submit(spec, idempotency_key="v", upstream_model="hailuo3")
    assert fake.requests[-1][1] == {
        "model": "hailuo3", "ratio": "16:9", "resolution": sent, "duration": 5,
        "promptText": "a fox in the snow",
    }  # fmt: skip
    image = await _sized_image(tmp_path)
    await adapter.submit(
        spec.model_copy(update={"image": image}), idempotency_key="i", upstream_model="hailuo3"
    )
    assert fake.requests[-1][1]["resolution"] == sent


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        ("hailuo3", {"width": 854, "height": 480, "resolution": "480p"}, "resolution",
         "allowed resolutions: 720p (sent as 768p), 1080p (sent as 2k)"),
        ("hailuo3", {"width": 1440, "height": 720, "aspect_ratio": "2:1"}, "aspect_ratio",
         "21:9, 16:9, 4:3, 1:1, 3:4, 9:16"),
        ("h3_max", {"width": 720, "height": 1280, "aspect_ratio": "9:16"}, "aspect_ratio",
         "allowed aspect ratios: 16:9"),
        ("h3_max", {"width": 1920, "height": 1080, "resolution": "1080p"}, "resolution",
         "480p, 720p (sent as 768p)"),
        ("h3_max", {"image": _IMAGE}, "image", "at least 256 px on each side"),
        ("grok_imagine_1_5", {"image": _IMAGE.model_copy(update={"width": 300})}, "image",
         "allowed: width/height 0.4-2.5"),
        ("kling_4", {"image": _IMAGE, "width": 854, "height": 480, "resolution": "480p"},
         "resolution", "allowed resolutions: 720p (sent as auto_720p)"),
        ("gemini_omni_flash", {"seconds": 2}, "seconds", "allowed: 3, 4, 5"),
        ("kling3.0_standard", {"seed": 1}, "seed", "models that do: gen4.5"),
        ("seedance2", {"prompt": "x" * 3501}, "prompt", "3500"),
        ("wan3", {"image": _IMAGE, "last_frame": _IMAGE, "negative_prompt": "blur"},
         "negative_prompt", "veo3.1"),
        ("gemini_omni_flash", {"image": _IMAGE, "last_frame": _IMAGE}, "last_frame",
         "models that do"),
    ],
)  # fmt: skip
def test_validate_rejects_per_model_rules(
    model: str, changes: dict[str, Any], param: str, words: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameter) as exc:
        _provider(tmp_path).validate(_spec(**changes), model)
    assert exc.value.param == param
    assert model in exc.value.message and words in exc.value.message


def test_a_model_without_a_stated_duration_range_passes_seconds_through() -> None:
    # UNVERIFIED range: Runway validates it.
    path, body = runway.build_request(_spec(seconds=13), "seedance2", None)
    assert (path, body["duration"], body["ratio"]) == ("/text_to_video", 13, "1280:720")


@pytest.mark.parametrize(
    ("model", "image", "frame"),
    [
        ("h3_max", False, {"resolution": "768p"}),
        ("h3_max", True, {"resolution": "768p"}),
        ("grok_imagine_1_5", False, {"ratio": "16:9", "resolution": "720p"}),
        ("grok_imagine_1_5", True, {"resolution": "720p"}),
        ("happyhorse_1_0", True, {"resolution": "720p"}),
        ("wan3", True, {"ratio": "auto_720p"}),
        ("grok_imagine_1_5_lite", True, {"ratio": "auto_720p"}),
        ("wan3_prime", False, {"ratio": "1280:720"}),
    ],
)
def test_frame_fields_per_model(model: str, image: bool, frame: dict[str, str]) -> None:
    spec = _spec(image=_IMAGE.model_copy(update={"width": 400, "height": 300}) if image else None)
    _, body = runway.build_request(spec, model, "data:image/png;base64,AA" if image else None)
    assert {k: body[k] for k in ("ratio", "resolution") if k in body} == frame


async def test_fake_refuses_what_a_model_does_not_take(fake: FakeRunway) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model": "kling3.0_pro", "ratio": "1280:720", "promptText": "x"}, "ratio"),
        ({"model": "klingO3_pro", "ratio": "1920:1080", "promptText": "x", "seed": 1}, "seed"),
        ({"model": "hailuo3", "ratio": "16:9", "resolution": "1080p", "promptText": "x"},
         "resolution"),
        ({"model": "hailuo3", "ratio": "adaptive", "promptText": "x"}, "ratio"),
        ({"model": "h3_max", "ratio": "1280:720", "promptText": "x"}, "ratio"),
        ({"model": "kling3.0_4k", "promptText": "x"}, "ratio"),
        ({"model": "seedance2_fast", "ratio": "1920:1080", "promptText": "x"}, "ratio"),
        ({"model": "gemini_omni_flash", "ratio": "1280:720", "promptText": "x",
          "duration": 11}, "duration"),
    ]  # fmt: skip
    for body, field in cases:
        response = await _post(fake, "/v1/text_to_video", body)
        assert response.status_code == 400, body
        assert response.json()["issues"][0]["path"] == [field], body
    assert fake.submissions == 0
