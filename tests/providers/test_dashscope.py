"""The DashScope (Wan on Alibaba Cloud Model Studio) adapter against a fake DashScope API
on loopback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import png_bytes
from tests.fakes.dashscope import API_KEY, BASE_PATH, SECONDS, SIZE, UPSTREAM_MODEL, FakeDashScope
from tests.fakes.harness import FakeServer
from tests.providers.tasks import task_of
from vidgate.config import Settings
from vidgate.core.catalog import load_catalog
from vidgate.core.deployments import DeploymentConfig, env_deployments
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, VideoRequest, normalize
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus, UpstreamTask
from vidgate.providers.dashscope import DashScopeProvider, create, parse_task
from vidgate.providers.registry import ENV_DEFAULTS, factory_for

# The sandbox card is permissive (1-60 s, 240p-1080p, many ratios and frame rates), so
# specs that Wan must refuse can be built with it.
CARD = load_catalog().get("sandbox")
PUBLIC = "https://gateway.example/v1/inputs"


def make_spec(**fields: Any) -> JobSpec:
    fields.setdefault("prompt", "a koi pond at dawn")
    fields.setdefault("seconds", 5)  # the sandbox card's default, 4 s, is not Wan's
    return normalize(VideoRequest(model="sandbox", **fields), CARD)


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    upstream = FakeDashScope()
    with FakeServer(upstream):
        yield upstream


def _deps(tmp_path: Path, *, public: bool = False) -> ProviderDeps:
    return ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"),
        settings=Settings(data_dir=tmp_path),
        input_url=(lambda sha: f"{PUBLIC}/{sha}") if public else None,
    )


@pytest.fixture
def deps(tmp_path: Path) -> ProviderDeps:
    return _deps(tmp_path)


def make_provider(
    fake: FakeDashScope, deps: ProviderDeps, key: str = API_KEY, **options: Any
) -> DashScopeProvider:
    config = DeploymentConfig(
        name="dashscope",
        provider="dashscope",
        base_url=fake.base_url + BASE_PATH,
        credentials={"api_key": key},
        options=options,
    )
    return create(config, deps)


@pytest.fixture
async def provider(fake: FakeDashScope, deps: ProviderDeps) -> AsyncIterator[DashScopeProvider]:
    adapter = make_provider(fake, deps)
    yield adapter
    await adapter.aclose()


async def run_to_end(provider: DashScopeProvider, upstream: UpstreamTask) -> list[UpstreamStatus]:
    seen = []
    for _ in range(10):
        status = await provider.status(upstream)
        seen.append(status)
        if status.state not in ("queued", "running"):
            return seen
    raise AssertionError(f"never finished: {seen}")


async def submit(
    provider: DashScopeProvider, spec: JobSpec, model: str = UPSTREAM_MODEL
) -> UpstreamTask:
    provider.validate(spec, model)
    result = await provider.submit(spec, idempotency_key="job", upstream_model=model)
    return task_of(result, spec, model)


async def _stored(deps: ProviderDeps, color: tuple[int, int, int]) -> tuple[ImageRef, bytes]:
    png = png_bytes(640, 360, color)
    blob = await deps.blobs.put_bytes(png)
    return ImageRef(sha256=blob.sha256, width=640, height=360, content_type="image/png"), png


# --- text-to-video and image-to-video, end to end -------------------------------------


async def test_text_to_video_end_to_end(
    fake: FakeDashScope, provider: DashScopeProvider, tmp_path: Path
) -> None:
    fake.polls_to_finish = 3
    spec = make_spec(seconds=SECONDS, size=SIZE)
    result = await provider.submit(spec, idempotency_key="job-1", upstream_model=UPSTREAM_MODEL)
    assert result.upstream_id in fake.tasks and result.poll_after_s == 5.0
    assert result.state == {}
    seen = await run_to_end(provider, task_of(result))
    # DashScope reports no progress and no cost.
    assert seen == [
        UpstreamStatus("queued"),
        UpstreamStatus("running"),
        UpstreamStatus("succeeded", progress=100),
    ]
    paths = await provider.fetch(task_of(result), tmp_path)
    assert paths == [tmp_path / "0.mp4"]
    assert probe_video(paths[0]).frames > 0
    assert fake.downloads == 1
    # The async header is what makes it a task; the key goes as a Bearer token.
    assert fake.last_headers["x-dashscope-async"] == "enable"
    assert fake.last_headers["authorization"] == f"Bearer {API_KEY}"


async def test_text_request_body_uses_wans_own_size(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    spec = make_spec(
        seconds=10, resolution="1080p", aspect_ratio="3:4", seed=7, negative_prompt="blur"
    )
    await submit(provider, spec)
    assert fake.last_body == {
        "model": "wan2.6-t2v",
        "input": {"prompt": "a koi pond at dawn", "negative_prompt": "blur"},
        "parameters": {"size": "1248*1632", "duration": 10, "seed": 7},
    }


async def test_wan27_text_request_takes_resolution_and_ratio(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    await submit(
        provider, make_spec(seconds=7, resolution="720p", aspect_ratio="9:16"), "wan2.7-t2v"
    )
    assert fake.last_body == {
        "model": "wan2.7-t2v",
        "input": {"prompt": "a koi pond at dawn"},
        "parameters": {"resolution": "720P", "ratio": "9:16", "duration": 7},
    }


async def test_image_to_video_sends_img_url_as_a_data_uri(
    fake: FakeDashScope, provider: DashScopeProvider, deps: ProviderDeps, tmp_path: Path
) -> None:
    image, png = await _stored(deps, (200, 40, 40))
    upstream = await submit(provider, make_spec(image=image, seconds=5), "wan2.6-i2v")
    assert fake.last_body is not None
    assert fake.last_body["parameters"] == {"resolution": "720P", "duration": 5}
    url = fake.last_body["input"]["img_url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png
    assert (await run_to_end(provider, upstream))[-1].state == "succeeded"
    assert probe_video((await provider.fetch(upstream, tmp_path))[0]).frames > 0


async def test_wan27_images_go_as_media_urls(fake: FakeDashScope, tmp_path: Path) -> None:
    deps = _deps(tmp_path, public=True)
    adapter = make_provider(fake, deps)
    try:
        first, _ = await _stored(deps, (255, 0, 0))
        last, _ = await _stored(deps, (0, 0, 255))
        spec = make_spec(image=first, last_frame=last, seconds=4, resolution="1080p")
        upstream = await submit(adapter, spec, "wan2.7-i2v")
        assert (await run_to_end(adapter, upstream))[-1].state == "succeeded"
    finally:
        await adapter.aclose()
    assert fake.last_body == {
        "model": "wan2.7-i2v",
        "input": {
            "prompt": "a koi pond at dawn",
            "media": [
                {"type": "first_frame", "url": f"{PUBLIC}/{first.sha256}"},
                {"type": "last_frame", "url": f"{PUBLIC}/{last.sha256}"},
            ],
        },
        "parameters": {"resolution": "1080P", "duration": 4},
    }


async def test_wan27_reference_images_go_as_reference_image_media(
    fake: FakeDashScope, tmp_path: Path
) -> None:
    deps = _deps(tmp_path, public=True)
    adapter = make_provider(fake, deps)
    try:
        refs = [(await _stored(deps, c))[0] for c in ((255, 0, 0), (0, 255, 0))]
        spec = make_spec(reference_images=refs, aspect_ratio="1:1")
        upstream = await submit(adapter, spec, "wan2.7-r2v")
        assert (await run_to_end(adapter, upstream))[-1].state == "succeeded"
    finally:
        await adapter.aclose()
    assert fake.last_body == {
        "model": "wan2.7-r2v",
        "input": {
            "prompt": "a koi pond at dawn",
            "media": [{"type": "reference_image", "url": f"{PUBLIC}/{r.sha256}"} for r in refs],
        },
        "parameters": {"resolution": "720P", "ratio": "1:1", "duration": 5},
    }


# --- refused at create, naming the parameter -------------------------------------------

_IMG = ImageRef(sha256="c" * 64, width=640, height=360, content_type="image/png")
_SMALL = ImageRef(sha256="d" * 64, width=320, height=180, content_type="image/png")


@pytest.mark.parametrize(
    ("spec", "model", "param", "words"),
    [
        (make_spec(seconds=7), "wan2.6-t2v", "seconds", "allowed: 5, 10, 15"),
        (make_spec(seconds=16), "wan2.7-t2v", "seconds", "allowed: 2-15"),
        (make_spec(seconds=15), "wan2.5-t2v-preview", "seconds", "allowed: 5, 10"),
        (make_spec(resolution="480p"), "wan2.6-t2v", "resolution", "allowed: 720p, 1080p"),
        (make_spec(aspect_ratio="21:9"), "wan2.6-t2v", "aspect_ratio", "allowed: 16:9"),
        (make_spec(resolution="480p", aspect_ratio="4:3"), "wan2.5-t2v-preview",
         "aspect_ratio", "allowed: 16:9, 9:16, 1:1"),
        (make_spec(n=2), "wan2.6-t2v", "n", "allowed: 1"),
        (make_spec(fps=30), "wan2.6-t2v", "fps", "allowed: 24"),
        (make_spec(seed=2**31), "wan2.6-t2v", "seed", "allowed: 0-2147483647"),
        (make_spec(negative_prompt="x" * 501), "wan2.6-t2v", "negative_prompt",
         "at most 500 characters"),
        (make_spec(prompt="x" * 1501), "wan2.6-t2v", "prompt", "at most 1500 characters"),
        (make_spec(image=_IMG), "wan2.6-t2v", "image", "text-to-video only"),
        (make_spec(), "wan2.6-i2v", "image", "a first frame is needed"),
        (make_spec(image=_IMG, last_frame=_IMG), "wan2.6-i2v", "last_frame",
         "models that do: wan2.7-i2v*"),
        (make_spec(reference_images=[_IMG]), "wan2.7-t2v", "reference_images",
         "models that do: wan2.7-r2v*"),
        (make_spec().model_copy(update={"reference_images": (_IMG,) * 6}), "wan2.7-r2v",
         "reference_images", "allowed: 0-5"),
        (make_spec(image=_IMG, reference_images=[_IMG]), "wan2.7-r2v", "reference_images",
         "cannot be combined with a first frame"),
        (make_spec(), "wan2.7-r2v", "image", "an image or reference images"),
        (make_spec(), "wan2.1-t2v-plus", "model", "allowed: wan2.7-t2v*"),
    ],
)  # fmt: skip
def test_validate_refuses_what_the_model_cannot_take(
    provider: DashScopeProvider, spec: JobSpec, model: str, param: str, words: str
) -> None:
    with pytest.raises(InvalidParameter) as info:
        provider.validate(spec, model)
    assert info.value.param == param
    assert info.value.message.startswith("dashscope") and words in info.value.message


def test_validate_accepts_the_edges(provider: DashScopeProvider) -> None:
    provider.validate(make_spec(seconds=15, resolution="1080p", aspect_ratio="4:3"), "wan2.6-t2v")
    provider.validate(make_spec(seconds=2), "wan2.7-t2v")
    provider.validate(make_spec(resolution="480p", aspect_ratio="1:1"), "wan2.5-t2v-preview")
    # An image-to-video frame follows the image: the requested ratio is not checked.
    provider.validate(make_spec(image=_IMG, aspect_ratio="21:9", seconds=10), "wan2.6-i2v-flash")
    provider.validate(make_spec(seed=2**31 - 1), "wan2.6-t2v")


def test_wan27_images_need_a_public_base_url(provider: DashScopeProvider) -> None:
    with pytest.raises(InvalidParameter) as info:
        provider.validate(make_spec(image=_IMG), "wan2.7-i2v")
    assert info.value.param == "image" and "VIDGATE_PUBLIC_BASE_URL" in info.value.message
    with pytest.raises(InvalidParameter) as info:
        provider.validate(make_spec(reference_images=[_IMG]), "wan2.7-r2v")
    assert info.value.param == "reference_images"
    provider.validate(make_spec(image=_IMG), "wan2.6-i2v")  # data URIs need no public URL


@pytest.mark.parametrize(
    ("card", "fields", "image", "param", "words"),
    [
        ("wan-2.6", {"seconds": 7}, None, "seconds", "allowed: 5, 10, 15"),
        ("wan-2.6", {"resolution": "480p"}, None, "resolution", "allowed: 720p, 1080p"),
        ("wan-2.7", {"seconds": 20}, None, "seconds", "allowed: 2-15"),
        ("wan-2.6", {}, _SMALL, "image", "at least 360 px"),
        ("wan-2.7", {"resolution": "1080p"}, _IMG, "image", "VIDGATE_PUBLIC_BASE_URL"),
    ],
)
def test_built_in_cards_refuse_out_of_range_requests(
    provider: DashScopeProvider,
    card: str,
    fields: dict[str, Any],
    image: ImageRef | None,
    param: str,
    words: str,
) -> None:
    """A request outside what Wan takes is a 400 naming the parameter: the card's own
    limits, else the first refusal of its deployments' upstream models when every one
    refuses it (routing's rule), which says why for an image too."""
    model = load_catalog().get(card)
    with pytest.raises(InvalidParameter) as info:
        spec = normalize(VideoRequest(model=card, prompt="a heron", **fields), model)
        spec = spec.model_copy(update={"image": image})
        refusals = []
        for ref in model.deployments:
            try:
                provider.validate(spec, ref.upstream_model)
            except InvalidParameter as exc:
                refusals.append(exc)
        assert len(refusals) == len(model.deployments)
        raise refusals[0]
    assert info.value.param == param and words in info.value.message


def test_wan25_text_frames_it_does_not_make_are_refused(provider: DashScopeProvider) -> None:
    card = load_catalog().get("wan-2.5")
    spec = normalize(
        VideoRequest(model="wan-2.5", prompt="a heron", resolution="480p", aspect_ratio="4:3"),
        card,
    )
    with pytest.raises(InvalidParameter) as info:
        provider.validate(spec, "wan2.5-t2v-preview")
    assert info.value.param == "aspect_ratio" and "allowed: 16:9, 9:16, 1:1" in info.value.message


def test_built_in_cards_route_text_and_image_to_their_models(provider: DashScopeProvider) -> None:
    for card_id in ("wan-2.5", "wan-2.6", "wan-2.7"):
        card = load_catalog().get(card_id)
        text = normalize(VideoRequest(model=card_id, prompt="a heron"), card)
        image = normalize(VideoRequest(model=card_id, prompt="a heron"), card).model_copy(
            update={"image": _IMG}
        )
        takes_text, takes_image = [], []
        for ref in card.deployments:
            assert ref.upstream_model is not None
            for spec, takers in ((text, takes_text), (image, takes_image)):
                try:
                    provider.validate(spec, ref.upstream_model)
                except InvalidParameter:
                    continue
                takers.append(ref.upstream_model)
        assert [m.split("-")[1] for m in takes_text] == ["t2v"], card_id
        if card_id != "wan-2.7":  # wan2.7 images need VIDGATE_PUBLIC_BASE_URL
            assert [m.split("-")[1] for m in takes_image] == ["i2v"], card_id
        # Image-to-video first: an image refused by both gets the i2v model's reason.
        assert "-i2v" in str(card.deployments[0].upstream_model), card_id


async def test_reference_images_route_to_wan27_r2v_only(
    fake: FakeDashScope, tmp_path: Path
) -> None:
    adapter = make_provider(fake, _deps(tmp_path, public=True))
    try:
        for card_id in ("wan-2.5", "wan-2.6", "wan-2.7"):
            card = load_catalog().get(card_id)
            spec = normalize(VideoRequest(model=card_id, prompt="a heron"), card)
            spec = spec.model_copy(update={"reference_images": (_IMG,)})
            takers = []
            for ref in card.deployments:
                assert ref.upstream_model is not None
                try:
                    adapter.validate(spec, ref.upstream_model)
                except InvalidParameter:
                    continue
                takers.append(ref.upstream_model)
            assert takers == (["wan2.7-r2v"] if card_id == "wan-2.7" else []), card_id
    finally:
        await adapter.aclose()


async def test_upstream_refusal_names_the_parameter(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    # Sent without validate: the fake refuses it as the service does.
    spec = make_spec(seconds=7)
    with pytest.raises(ProviderError) as info:
        await provider.submit(spec, idempotency_key="j", upstream_model="wan2.6-t2v")
    assert info.value.code == "upstream_rejected" and not info.value.retryable
    assert "parameters.duration" in info.value.message
    assert info.value.message.endswith("(InvalidParameter)")
    assert fake.submissions == 0


# --- failures --------------------------------------------------------------------------


async def test_content_refusal_of_a_task(fake: FakeDashScope, provider: DashScopeProvider) -> None:
    fake.fail_tasks = ("DataInspectionFailed", "Output data may contain inappropriate content.")
    final = (await run_to_end(provider, await submit(provider, make_spec())))[-1]
    assert final.state == "failed" and final.error_code == "upstream_content_refused"
    assert final.error_message == (
        "dashscope: Output data may contain inappropriate content. (DataInspectionFailed)"
    )


async def test_other_task_failures_keep_the_reason(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    fake.fail_tasks = ("InternalError.Algo", "Algorithm process error.")
    final = (await run_to_end(provider, await submit(provider, make_spec())))[-1]
    assert final.state == "failed" and final.error_code == "upstream_failed"
    assert final.error_message is not None and "Algorithm process error." in final.error_message


async def test_content_refusal_at_create(fake: FakeDashScope, provider: DashScopeProvider) -> None:
    fake.refuse_next_create(
        400, "DataInspectionFailed", "Input data may contain inappropriate content."
    )
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec())
    assert info.value.code == "upstream_content_refused" and not info.value.retryable
    assert not info.value.unhealthy


async def test_an_overdue_account_marks_the_deployment_unhealthy(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    fake.refuse_next_create(
        400, "Arrearage", "Access denied, please make sure your account is in good standing."
    )
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec())
    assert info.value.code == "upstream_auth_failed" and info.value.unhealthy
    assert not info.value.retryable


async def test_a_forgotten_task_is_unknown_and_fails(
    fake: FakeDashScope, provider: DashScopeProvider, tmp_path: Path
) -> None:
    upstream = await submit(provider, make_spec())
    fake.forget(upstream.id)  # its 24 hours have passed
    final = await provider.status(upstream)
    assert final.state == "failed" and final.error_code == "upstream_task_expired"
    with pytest.raises(ProviderError) as info:
        await provider.fetch(upstream, tmp_path)
    assert info.value.code == "result_expired"


async def test_rate_limit_then_success(fake: FakeDashScope, provider: DashScopeProvider) -> None:
    fake.fail_next_creates(1, 429, {"Retry-After": "3"})
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec())
    assert info.value.retryable and info.value.retry_after_s == 3
    assert info.value.code == "upstream_rate_limited"
    assert info.value.message.endswith("(Throttling.RateQuota)")
    assert (await submit(provider, make_spec())).id in fake.tasks


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    fake: FakeDashScope, provider: DashScopeProvider, status: int
) -> None:
    fake.fail_next_creates(1, status)
    with pytest.raises(ProviderError) as info:
        await submit(provider, make_spec())
    assert info.value.retryable and not info.value.unhealthy


async def test_wrong_key_marks_the_deployment_unhealthy(
    fake: FakeDashScope, deps: ProviderDeps
) -> None:
    adapter = make_provider(fake, deps, key="sk-wrong-secret")
    try:
        with pytest.raises(ProviderError) as info:
            await submit(adapter, make_spec())
    finally:
        await adapter.aclose()
    assert info.value.unhealthy and not info.value.retryable
    assert info.value.message == "dashscope: Invalid API-key provided. (InvalidApiKey)"
    assert "wrong-secret" not in str(info.value)


async def test_expired_url_is_result_expired(
    fake: FakeDashScope, provider: DashScopeProvider, tmp_path: Path
) -> None:
    upstream = await submit(provider, make_spec())
    await run_to_end(provider, upstream)
    fake.reads = 0
    fake.expire_urls = True  # the URL's 24 hours have passed
    with pytest.raises(ProviderError) as info:
        await provider.fetch(upstream, tmp_path)
    assert info.value.code == "result_expired" and not info.value.retryable
    # The adapter read the task once for a fresh URL before giving up.
    assert fake.reads == 1
    assert fake.expired_downloads == 1 and fake.downloads == 0


# --- cancel ----------------------------------------------------------------------------


async def test_cancel_a_pending_task(fake: FakeDashScope, provider: DashScopeProvider) -> None:
    upstream = await submit(provider, make_spec())
    await provider.cancel(upstream)
    assert fake.cancelled == [upstream.id]
    assert (await provider.status(upstream)).state == "cancelled"
    await provider.cancel(upstream)  # refused upstream, but already cancelled: fine
    assert fake.cancelled == [upstream.id]


async def test_cancel_a_running_task_is_refused(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    fake.polls_to_finish = 5
    upstream = await submit(provider, make_spec())
    await provider.status(upstream)
    assert (await provider.status(upstream)).state == "running"
    with pytest.raises(ProviderError) as info:
        await provider.cancel(upstream)
    assert info.value.code == "cancel_refused" and not info.value.retryable
    assert "(UnsupportedOperation)" in info.value.message
    assert fake.cancelled == []


async def test_cancel_a_finished_or_unknown_task_is_a_no_op(
    fake: FakeDashScope, provider: DashScopeProvider
) -> None:
    upstream = await submit(provider, make_spec())
    await run_to_end(provider, upstream)
    await provider.cancel(upstream)
    fake.forget(upstream.id)
    await provider.cancel(upstream)
    assert fake.cancelled == []


# --- options, configuration, the fake itself -----------------------------------------


async def test_options_are_sent(fake: FakeDashScope, deps: ProviderDeps) -> None:
    adapter = make_provider(
        fake, deps, prompt_extend=False, watermark=True, shot_type="multi", workspace="ws-1"
    )
    try:
        await submit(adapter, make_spec())
    finally:
        await adapter.aclose()
    assert fake.last_body is not None
    assert fake.last_body["parameters"] == {
        "size": "1280*720",
        "duration": 5,
        "prompt_extend": False,
        "watermark": True,
        "shot_type": "multi",
    }
    assert fake.last_headers["x-dashscope-workspace"] == "ws-1"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"promt_extend": True}, "promt_extend"),
        ({"shot_type": "many"}, "shot_type"),
        ({"watermark": "yes"}, "watermark"),
    ],
)
def test_bad_options_are_refused(deps: ProviderDeps, options: dict[str, Any], words: str) -> None:
    config = DeploymentConfig(
        name="wan", provider="dashscope", credentials={"api_key": "k"}, options=options
    )
    with pytest.raises(ValueError, match=f"options.{words}: ") as info:
        create(config, deps)
    assert "promt" not in words or "accepted: prompt_extend" in str(info.value)


def test_the_api_key_variable_makes_a_default_deployment() -> None:
    found = env_deployments({"DASHSCOPE_API_KEY": "sk-x"}, ENV_DEFAULTS)
    assert found["dashscope"].provider == "dashscope"
    assert found["dashscope"].secret("api_key") == "sk-x"
    assert factory_for("dashscope") is create
    # Every built-in Wan card routes to that deployment.
    for card_id in ("wan-2.5", "wan-2.6", "wan-2.7"):
        refs = load_catalog().get(card_id).deployments
        assert {r.provider for r in refs} == {"dashscope"}, card_id


async def test_probe_reads_a_task_nobody_has(fake: FakeDashScope, deps: ProviderDeps) -> None:
    good = make_provider(fake, deps)
    wrong_key = make_provider(fake, deps, key="sk-wrong-secret")
    config = DeploymentConfig(
        name="no-prefix",
        provider="dashscope",
        base_url=fake.base_url,  # without /api/v1
        credentials={"api_key": API_KEY},
    )
    no_prefix = create(config, deps)
    try:
        await good.probe()
        assert fake.reads == 1 and fake.submissions == 0
        with pytest.raises(ProviderError) as info:
            await wrong_key.probe()
        assert info.value.unhealthy and "InvalidApiKey" in info.value.message
        # A base_url without the API's /api/v1 is taken: the prefix is added.
        await no_prefix.probe()
        assert fake.reads == 2
    finally:
        for adapter in (good, wrong_key, no_prefix):
            await adapter.aclose()


def test_parse_task() -> None:
    assert parse_task({"output": {"task_status": "SUSPENDED"}}).status.state == "queued"
    assert parse_task({"output": {"task_status": "CANCELED"}}).status.state == "cancelled"
    done = parse_task(
        {"output": {"task_status": "SUCCEEDED", "video_url": "https://oss.example/v.mp4"}}
    )
    assert done.video_url == "https://oss.example/v.mp4"
    for bad in ({"output": {"task_status": "PAUSED"}}, {"code": "x"}, []):
        with pytest.raises(ProviderError) as info:
            parse_task(bad)
        assert info.value.code == "upstream_bad_response" and info.value.retryable


async def test_fake_refuses_a_create_without_the_async_header(fake: FakeDashScope) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url + BASE_PATH) as client:
        response = await client.post(
            "/services/aigc/video-generation/video-synthesis",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": UPSTREAM_MODEL, "input": {"prompt": "x"}},
        )
        assert response.status_code == 403
        assert response.json()["code"] == "AccessDenied"
        unknown = await client.get(
            "/tasks/no-such-task", headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert unknown.status_code == 200
    assert unknown.json()["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}
    assert fake.submissions == 0
