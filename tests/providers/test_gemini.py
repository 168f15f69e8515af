"""The Gemini API adapter (Omni interactions and legacy Veo operations) against a fake
Gemini API on loopback (reference 2.2, 2.3)."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from tests.conftest import png_bytes
from tests.fakes.gemini import API_KEY, FakeGemini
from tests.fakes.harness import FakeServer, FakeTask, tiny_mp4
from tests.providers.tasks import spec_of, task_by_id, task_of
from vidgate.config import Settings
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef, JobSpec, SourceRef
from vidgate.media.probe import probe_video
from vidgate.media.storage import LocalBlobStore
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamTask
from vidgate.providers.gemini import GeminiProvider, create, omni_status, omni_video

OMNI = "gemini-omni-1.1-flash"
VEO = "veo-3.1-generate-preview"
Fake = tuple[FakeGemini, FakeServer]


@pytest.fixture
def fake() -> Iterator[Fake]:
    upstream = FakeGemini()
    with FakeServer(upstream) as server:
        yield upstream, server


def _adapter(server: FakeServer, tmp_path: Path, key: str = API_KEY) -> GeminiProvider:
    config = DeploymentConfig(
        name="gm",
        provider="gemini",
        base_url=server.url,
        credentials={"api_key": SecretStr(key)},
        options={"poll_interval_s": 0.2},
    )
    deps = ProviderDeps(
        blobs=LocalBlobStore(tmp_path / "blobs"), settings=Settings(data_dir=tmp_path)
    )
    return create(config, deps)


@pytest.fixture
async def adapter(fake: Fake, tmp_path: Path) -> AsyncIterator[GeminiProvider]:
    provider = _adapter(fake[1], tmp_path)
    yield provider
    await provider.aclose()


def _spec(**changes: object) -> JobSpec:
    base: dict[str, object] = dict(model="veo-3", prompt="a fox", seconds=8)
    return spec_of(**{**base, **changes})


async def _finish(adapter: GeminiProvider, upstream: UpstreamTask) -> list[str]:
    seen = []
    for _ in range(5):
        status = await adapter.status(upstream)
        seen.append(status.state)
        if status.state == "succeeded":
            return seen
        assert status.poll_after_s == pytest.approx(0.2)
    raise AssertionError(f"never finished: {seen}")


# --- Gemini Omni (Interactions) ------------------------------------------------------


async def test_omni_text_to_video_end_to_end(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.polls_to_finish = 3
    result = await adapter.submit(_spec(), idempotency_key="job-1", upstream_model=OMNI)
    assert result.upstream_id.startswith("v1_") and result.state == {"api": "interactions"}
    assert await _finish(adapter, task_of(result)) == ["queued", "running", "succeeded"]
    [path] = await adapter.fetch(task_of(result), tmp_path)
    info = probe_video(path)
    assert info.codec == "h264" and (info.width, info.height) == (160, 96)
    assert upstream.requests == [
        {
            "model": OMNI,
            "input": "a fox",
            "response_modalities": ["video"],
            "response_format": {
                "type": "video",
                "aspect_ratio": "16:9",
                "resolution": "720p",
                "duration": "8s",
                "delivery": "uri",
            },
            "background": True,
        }
    ]


async def test_omni_request_fields_for_a_representative_spec(
    fake: Fake, adapter: GeminiProvider
) -> None:
    upstream, _ = fake
    spec = _spec(seconds=5, resolution="4K", aspect_ratio="9:16", width=2160, height=3840, seed=7)
    await adapter.submit(spec, idempotency_key="job-2", upstream_model=OMNI)
    body = upstream.requests[0]
    assert body["response_format"] == {
        "type": "video",
        "aspect_ratio": "9:16",
        "resolution": "4k",
        "duration": "5s",
        "delivery": "uri",
    }
    assert body["generation_config"] == {"seed": 7}


def _user_input(*content: dict[str, Any]) -> list[dict[str, Any]]:
    """``input`` as google-genai 3.x sends content blocks: one ``user_input`` step."""
    return [{"type": "user_input", "content": list(content)}]


async def test_omni_image_goes_as_a_bare_base64_content_block_of_a_user_input_step(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    data = png_bytes(320, 180)
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=320, height=180, content_type="image/png")
    await adapter.submit(_spec(image=image), idempotency_key="job-3", upstream_model=OMNI)
    assert upstream.requests[0]["input"] == _user_input(
        {"type": "text", "text": "a fox"},
        {"type": "image", "data": base64.b64encode(data).decode(), "mime_type": "image/png"},
    )


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (0, 128, 255)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
async def test_omni_takes_the_image_types_its_api_lists_as_they_are(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path, fmt: str
) -> None:
    upstream, _ = fake
    data = _encoded(fmt)
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(data)
    kind = f"image/{fmt.lower()}"
    image = ImageRef(sha256=blob.sha256, width=64, height=36, content_type=kind)
    spec = _spec(image=image)
    adapter.validate(spec, OMNI)
    result = await adapter.submit(spec, idempotency_key=f"t-{fmt}", upstream_model=OMNI)
    [step] = upstream.requests[0]["input"]
    assert step["content"][1] == {
        "type": "image",
        "data": base64.b64encode(data).decode(),
        "mime_type": kind,
    }
    await _finish(adapter, task_of(result))
    assert await adapter.fetch(task_of(result), tmp_path)


def test_fake_omni_refuses_the_legacy_bare_list_of_content_blocks(fake: Fake) -> None:
    _, server = fake
    body = {
        "model": OMNI,
        "input": [{"type": "text", "text": "a fox"}, _block()],
        "response_modalities": ["video"],
        "response_format": {"type": "video", "duration": "8s"},
        "background": True,
    }
    response = httpx.post(
        f"{server.url}/v1/interactions", json=body, headers={"x-goog-api-key": API_KEY}
    )
    assert response.status_code == 400 and "legacy" in response.text


async def test_omni_extend_sends_the_source_video_and_the_task(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(tiny_mp4())
    source = SourceRef(video_id="v", sha256=blob.sha256, seconds=8, width=160, height=96, fps=24)
    await adapter.submit(
        _spec(kind="extend", source=source, seconds=6), idempotency_key="j", upstream_model=OMNI
    )
    body = upstream.requests[0]
    assert body["generation_config"] == {"video_config": {"task": "extend"}}
    [step] = body["input"]
    assert step["type"] == "user_input"
    text, video = step["content"]
    assert text == {"type": "text", "text": "a fox"}
    assert video["type"] == "video" and video["mime_type"] == "video/mp4"
    assert base64.b64decode(video["data"]) == tiny_mp4()


async def _stored_image(
    tmp_path: Path, color: tuple[int, int, int], kind: str = "image/png"
) -> tuple[ImageRef, str]:
    """A stored input image and the bare base64 the API should receive for it."""
    data = png_bytes(32, 18, color)
    blob = await LocalBlobStore(tmp_path / "blobs").put_bytes(data)
    image = ImageRef(sha256=blob.sha256, width=32, height=18, content_type=kind)
    return image, base64.b64encode(data).decode()


async def test_omni_first_and_last_frame_are_ordered_image_blocks(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    first, first_b64 = await _stored_image(tmp_path, (255, 0, 0))
    last, last_b64 = await _stored_image(tmp_path, (0, 0, 255), "image/jpeg")
    spec = _spec(image=first, last_frame=last)
    adapter.validate(spec, OMNI)
    await adapter.submit(spec, idempotency_key="lf", upstream_model=OMNI)
    body = upstream.requests[0]
    assert body["input"] == _user_input(
        {"type": "text", "text": "a fox"},
        {"type": "image", "data": first_b64, "mime_type": "image/png"},
        {"type": "image", "data": last_b64, "mime_type": "image/jpeg"},
    )
    assert body["generation_config"] == {"video_config": {"task": "image_to_video"}}


async def test_omni_reference_images_are_image_blocks_with_the_reference_task(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    stored = [
        await _stored_image(tmp_path, (255, 0, 0)),
        await _stored_image(tmp_path, (0, 255, 0), "image/webp"),
        await _stored_image(tmp_path, (0, 0, 255)),
    ]
    spec = _spec(reference_images=[ref for ref, _ in stored], seed=3)
    adapter.validate(spec, OMNI)
    await adapter.submit(spec, idempotency_key="refs", upstream_model=OMNI)
    body = upstream.requests[0]
    assert body["input"] == _user_input(
        {"type": "text", "text": "a fox"},
        {"type": "image", "data": stored[0][1], "mime_type": "image/png"},
        {"type": "image", "data": stored[1][1], "mime_type": "image/webp"},
        {"type": "image", "data": stored[2][1], "mime_type": "image/png"},
    )
    assert body["generation_config"] == {
        "seed": 3,
        "video_config": {"task": "reference_to_video"},
    }


async def test_veo_first_and_last_frame_and_references(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.legacy_veo_available = True
    first, first_b64 = await _stored_image(tmp_path, (255, 0, 0))
    last, last_b64 = await _stored_image(tmp_path, (0, 0, 255), "image/jpeg")
    frames = _spec(image=first, last_frame=last, seconds=6)
    adapter.validate(frames, VEO)
    await adapter.submit(frames, idempotency_key="veo-lf", upstream_model=VEO)
    assert upstream.requests[0]["instances"] == [
        {
            "prompt": "a fox",
            "image": {"bytesBase64Encoded": first_b64, "mimeType": "image/png"},
            "lastFrame": {"bytesBase64Encoded": last_b64, "mimeType": "image/jpeg"},
        }
    ]
    refs = _spec(reference_images=[first, last])
    adapter.validate(refs, VEO)
    await adapter.submit(refs, idempotency_key="veo-refs", upstream_model=VEO)
    assert upstream.requests[1]["instances"] == [
        {
            "prompt": "a fox",
            "referenceImages": [
                {
                    "image": {"bytesBase64Encoded": first_b64, "mimeType": "image/png"},
                    "referenceType": "ASSET",
                },
                {
                    "image": {"bytesBase64Encoded": last_b64, "mimeType": "image/jpeg"},
                    "referenceType": "ASSET",
                },
            ],
        }
    ]


_REF = ImageRef(sha256="1" * 64, width=32, height=18, content_type="image/png")
_SOURCE = SourceRef(video_id="v", sha256="0" * 64, seconds=8, width=1280, height=720, fps=24)


@pytest.mark.parametrize(
    ("model", "changes", "param", "words"),
    [
        (OMNI, {"reference_images": [_REF] * 4}, "reference_images", "allowed: 0-3"),
        (OMNI, {"reference_images": [_REF], "image": _REF}, "reference_images", "first frame"),
        (
            OMNI,
            {"reference_images": [_REF], "kind": "extend", "source": _SOURCE, "seconds": 4},
            "reference_images",
            "a source video",
        ),
        (OMNI, {"last_frame": _REF}, "last_frame", "allowed: image with last_frame"),
        (
            OMNI,
            {"image": _REF, "last_frame": _REF, "kind": "extend", "source": _SOURCE, "seconds": 4},
            "last_frame",
            "cannot be used to extend",
        ),
        (
            OMNI,
            {"image": _REF, "last_frame": _REF.model_copy(update={"content_type": "image/x"})},
            "last_frame",
            "image/x is not supported",
        ),
        (
            OMNI,
            {"reference_images": [_REF.model_copy(update={"content_type": "image/x"})]},
            "reference_images",
            "allowed: image/png",
        ),
        (VEO, {"reference_images": [_REF] * 4}, "reference_images", "allowed: 0-3"),
        (VEO, {"reference_images": [_REF], "image": _REF}, "reference_images", "first frame"),
        (VEO, {"reference_images": [_REF], "seconds": 6}, "seconds", "allowed: 8"),
        (VEO, {"last_frame": _REF}, "last_frame", "needs a first frame"),
    ],
)
async def test_validate_rejects_frame_and_reference_combinations(
    adapter: GeminiProvider, model: str, changes: dict[str, object], param: str, words: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        adapter.validate(_spec(**changes), model)
    assert caught.value.param == param
    assert words in caught.value.message and "Gemini API" in caught.value.message


def _block(mime: str = "image/png") -> dict[str, str]:
    return {"type": "image", "data": base64.b64encode(png_bytes()).decode(), "mime_type": mime}


def _veo_image() -> dict[str, str]:
    return {"bytesBase64Encoded": base64.b64encode(png_bytes()).decode(), "mimeType": "image/png"}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/v1/interactions",
            {"input": _user_input({"type": "text", "text": "x"}, *[_block()] * 4)},
            "At most 3 input images",
        ),
        (
            "/v1/interactions",
            {
                "input": _user_input({"type": "text", "text": "x"}, *[_block()] * 3),
                "generation_config": {"video_config": {"task": "image_to_video"}},
            },
            "1-2 images",
        ),
        (
            "/v1/interactions",
            {
                "input": _user_input({"type": "text", "text": "x"}),
                "generation_config": {"video_config": {"task": "reference_to_video"}},
            },
            "reference_to_video takes 1-3",
        ),
        ("/v1/interactions", {"input": _user_input(_block("image/avif"))}, "mime_type must be"),
        (
            "/v1/interactions",
            {"input": _user_input({**_block(), "role": "last_frame"})},
            "unknown field role",
        ),
        (
            f"/v1beta/models/{VEO}:predictLongRunning",
            {"instances": [{"prompt": "x", "lastFrame": _veo_image()}]},
            "lastFrame requires image",
        ),
        (
            f"/v1beta/models/{VEO}:predictLongRunning",
            {
                "instances": [
                    {
                        "prompt": "x",
                        "referenceImages": [{"image": _veo_image(), "referenceType": "STYLE"}],
                    }
                ]
            },
            "only ASSET",
        ),
        (
            f"/v1beta/models/{VEO}:predictLongRunning",
            {
                "instances": [
                    {
                        "prompt": "x",
                        "image": _veo_image(),
                        "referenceImages": [{"image": _veo_image(), "referenceType": "ASSET"}],
                    }
                ]
            },
            "cannot be used together with image",
        ),
        (
            f"/v1beta/models/{VEO}:predictLongRunning",
            {
                "instances": [
                    {
                        "prompt": "x",
                        "referenceImages": [{"image": _veo_image(), "referenceType": "ASSET"}],
                    }
                ],
                "parameters": {"durationSeconds": 6},
            },
            "require durationSeconds 8",
        ),
    ],
)
async def test_fake_refuses_what_the_api_refuses(
    fake: Fake, path: str, body: dict[str, Any], message: str
) -> None:
    upstream, server = fake
    upstream.legacy_veo_available = True
    if path.endswith("/interactions"):
        body = {
            "model": OMNI,
            "response_modalities": ["video"],
            "response_format": {"type": "video"},
            **body,
        }
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(path, headers={"x-goog-api-key": API_KEY}, json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert upstream.submissions == 0


@pytest.mark.parametrize(
    ("model", "changes", "param", "allowed"),
    [
        (OMNI, {"seconds": 12}, "seconds", "3-10"),
        (OMNI, {"n": 2}, "n", "1"),
        (OMNI, {"negative_prompt": "blur"}, "negative_prompt", "none"),
        (OMNI, {"aspect_ratio": "1:1", "width": 720, "height": 720}, "aspect_ratio", "16:9"),
        (OMNI, {"resolution": "540p", "width": 960, "height": 540}, "resolution", "360p"),
        (OMNI, {"fps": 30}, "fps", "24"),
        (VEO, {"seed": 1}, "seed", "none"),
        (VEO, {"seconds": 5}, "seconds", "4, 6, 8"),
        (VEO, {"seconds": 6, "resolution": "1080p", "width": 1920, "height": 1080}, "seconds", "8"),
        (VEO, {"n": 5}, "n", "1-4"),
        ("imagen-4", {}, "model", "gemini-omni-1.2*, gemini-omni-*, veo-*"),
    ],
)
async def test_validate_rejects_what_the_model_cannot_do(
    adapter: GeminiProvider, model: str, changes: dict[str, object], param: str, allowed: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        adapter.validate(_spec(**changes), model)
    assert caught.value.param == param
    assert f"allowed: {allowed}" in caught.value.message and "Gemini API" in caught.value.message


async def test_validate_accepts_longer_clips_on_omni_1_2_and_caps_extensions(
    adapter: GeminiProvider,
) -> None:
    adapter.validate(_spec(seconds=12), "gemini-omni-1.2-flash")
    source = SourceRef(video_id="v", sha256="0" * 64, seconds=36, width=1280, height=720, fps=24)
    with pytest.raises(InvalidParameter, match="allowed: up to 4 more seconds"):
        adapter.validate(_spec(kind="extend", source=source, seconds=8), OMNI)
    with pytest.raises(InvalidParameter, match="remix is not supported"):
        adapter.validate(_spec(kind="remix", source=source), VEO)


async def test_omni_failure_carries_the_reason(fake: Fake, adapter: GeminiProvider) -> None:
    upstream, _ = fake
    upstream.fail_tasks = ("content_policy", "the prompt was refused by the provider")
    result = await adapter.submit(_spec(), idempotency_key="job-5", upstream_model=OMNI)
    await adapter.status(task_of(result))
    status = await adapter.status(task_of(result))
    # "content_policy" says what it is: a refusal, final.
    assert (status.state, status.error_code, status.transient) == (
        "failed",
        "upstream_content_refused",
        False,
    )
    assert status.error_message == (
        f"{adapter.name}: the prompt was refused by the provider (content_policy)"
    )


def test_omni_status_and_result_shapes() -> None:
    assert omni_status({"status": "budget_exceeded"}, 1).state == "failed"
    incomplete = omni_status({"status": "incomplete", "errors": [{"message": "cut short"}]}, 1)
    assert (incomplete.error_code, incomplete.error_message) == (
        "upstream_failed",
        "gemini: cut short (incomplete)",
    )
    empty = omni_status({"status": "completed"}, 1)
    assert (empty.error_code, empty.transient) == ("upstream_failed", True)
    internal = omni_status({"status": "failed", "errors": [{"code": "INTERNAL"}]}, 1, "g")
    assert (internal.error_code, internal.error_message, internal.transient) == (
        "upstream_failed",
        "g: INTERNAL",
        True,
    )
    assert omni_status({"status": "in_progress"}, 1.5).poll_after_s == 1.5
    inline = {"type": "video", "data": "AA==", "mime_type": "video/mp4"}
    assert omni_video({"status": "completed", "output_video": inline}) == inline
    assert omni_video({"outputs": [{"type": "text"}, inline]}) == inline
    # Only the model output after the last user input counts.
    steps = [{"type": "model_output", "content": [inline]}, {"type": "user_input"}]
    assert omni_video({"steps": steps}) is None


async def test_rate_limit_retry_info_then_success(fake: Fake, adapter: GeminiProvider) -> None:
    upstream, _ = fake
    upstream.fail_next_creates(1, 429)
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(_spec(), idempotency_key="job-6", upstream_model=OMNI)
    # Google's 429 carries RetryInfo in the body, no Retry-After header.
    assert caught.value.retryable and caught.value.retry_after_s == 1
    upstream.fail_next_creates(1, 429, {"Retry-After": "9"})
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(_spec(), idempotency_key="job-6", upstream_model=OMNI)
    assert caught.value.retry_after_s == 9
    await adapter.submit(_spec(), idempotency_key="job-6", upstream_model=OMNI)
    assert upstream.create_calls == 3 and upstream.submissions == 1


async def test_server_error_is_retryable(fake: Fake, adapter: GeminiProvider) -> None:
    upstream, _ = fake
    upstream.fail_next_creates(1, 500)
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(_spec(), idempotency_key="job-7", upstream_model=OMNI)
    assert caught.value.retryable and caught.value.code == "upstream_error"


async def test_invalid_key_is_unhealthy_and_not_echoed(fake: Fake, tmp_path: Path) -> None:
    provider = _adapter(fake[1], tmp_path, key="AIza-wrong-secret")
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.submit(_spec(), idempotency_key="job-8", upstream_model=OMNI)
    finally:
        await provider.aclose()
    # Google answers a bad key with 400 INVALID_ARGUMENT / API_KEY_INVALID, not a 401.
    assert caught.value.unhealthy and not caught.value.retryable
    assert "API key not valid" in caught.value.message
    assert "wrong-secret" not in str(caught.value)


async def test_omni_expired_url_is_refreshed_by_re_reading(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream, _ = fake
    upstream.expire_urls = True
    result = await adapter.submit(_spec(), idempotency_key="job-9", upstream_model=OMNI)
    await _finish(adapter, task_of(result))
    handed_out: list[str] = []
    original = upstream.result_url

    def stale_once(task: FakeTask) -> str:
        # The URL fetch reads goes stale before it is downloaded (as after a long wait).
        url = original(task)
        handed_out.append(url)
        if len(handed_out) == 1:
            upstream.refresh_urls()
        return url

    monkeypatch.setattr(upstream, "result_url", stale_once)
    [path] = await adapter.fetch(task_of(result), tmp_path)
    assert probe_video(path).codec == "h264"
    assert len(handed_out) == 2 and handed_out[0] != handed_out[1]
    assert upstream.downloads == 1


async def test_omni_cancel_hits_the_cancel_endpoint(fake: Fake, adapter: GeminiProvider) -> None:
    upstream, _ = fake
    upstream.polls_to_finish = 100
    result = await adapter.submit(_spec(), idempotency_key="job-10", upstream_model=OMNI)
    await adapter.status(task_of(result))
    await adapter.cancel(task_of(result))
    assert upstream.cancelled == [result.upstream_id]
    assert (await adapter.status(task_of(result))).state == "cancelled"
    await adapter.cancel(task_of(result))  # already cancelled: not an error
    await adapter.cancel(task_by_id("v1_missing", {"api": "interactions"}))  # gone: not an error


# --- legacy Veo (operations) ---------------------------------------------------------


async def test_veo_is_shut_down_on_the_gemini_api(fake: Fake, adapter: GeminiProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await adapter.submit(_spec(), idempotency_key="job-11", upstream_model=VEO)
    assert caught.value.code == "upstream_not_found" and not caught.value.retryable
    assert "no longer available" in caught.value.message


async def test_veo_operation_end_to_end(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.legacy_veo_available = True
    spec = _spec(n=2, negative_prompt="blur", seconds=6)
    result = await adapter.submit(spec, idempotency_key="job-12", upstream_model=VEO)
    assert result.upstream_id.startswith(f"models/{VEO}/operations/") and result.state == {}
    assert upstream.requests[0] == {
        "instances": [{"prompt": "a fox"}],
        "parameters": {
            "sampleCount": 2,
            "durationSeconds": 6,
            "aspectRatio": "16:9",
            "resolution": "720p",
            "negativePrompt": "blur",
        },
    }
    assert await _finish(adapter, task_of(result, spec)) == ["running", "succeeded"]
    paths = await adapter.fetch(task_of(result, spec), tmp_path)
    assert [p.name for p in paths] == ["0.mp4", "1.mp4"] and upstream.downloads == 2
    await adapter.cancel(task_of(result, spec))  # no cancel for operations: a no-op
    assert upstream.cancelled == []


async def test_veo_failure_and_rai_filtering(fake: Fake, adapter: GeminiProvider) -> None:
    upstream, _ = fake
    upstream.legacy_veo_available = True
    upstream.fail_tasks = ("x", "the prompt was refused by the provider")
    result = await adapter.submit(_spec(), idempotency_key="job-13", upstream_model=VEO)
    await _finish_failed(adapter, task_of(result), "upstream_rejected")
    upstream.rai_failures = True
    result = await adapter.submit(_spec(), idempotency_key="job-14", upstream_model=VEO)
    status = await _finish_failed(adapter, task_of(result), "upstream_content_refused")
    assert "refused" in (status.error_message or "")


async def _finish_failed(adapter: GeminiProvider, upstream: UpstreamTask, code: str) -> Any:
    await adapter.status(upstream)
    status = await adapter.status(upstream)
    assert status.state == "failed" and status.error_code == code
    return status


async def test_veo_expired_file_cannot_be_re_issued(
    fake: Fake, adapter: GeminiProvider, tmp_path: Path
) -> None:
    upstream, _ = fake
    upstream.legacy_veo_available = True
    result = await adapter.submit(_spec(), idempotency_key="job-15", upstream_model=VEO)
    await _finish(adapter, task_of(result))
    upstream.expire_urls = True
    with pytest.raises(ProviderError) as caught:
        await adapter.fetch(task_of(result), tmp_path)
    assert caught.value.code == "result_expired" and not caught.value.retryable
    assert upstream.downloads == 0
