"""Luma Dream Machine (Ray 2), reference section 3.

- create: ``POST /generations/video`` JSON ``{model, prompt, duration: "5s"|"9s",
  resolution, aspect_ratio, keyframes?}``; the answer is the Generation object;
- image-to-video: ``keyframes.frame0 = {type: "image", url}``. Luma takes input images
  only as URLs (no upload endpoint, data URIs UNVERIFIED), so the gateway hands it a
  signed link to the stored image (``deps.input_url``; needs VIDGATE_PUBLIC_BASE_URL);
- a last frame: ``keyframes.frame1 = {type: "image", url}`` beside frame0 (the SDK's
  start/end-frame keyframes), again a signed URL; not with an extend (frame0 is then the
  source generation, and a generation with an image end frame is UNVERIFIED);
- reference images: Luma's create body has no such field (``concepts`` are named camera
  moves, not images), so ``validate`` refuses them;
- extend: ``keyframes.frame0 = {type: "generation", id}`` naming a generation made on
  this same deployment (its upstream id);
- poll ``GET /generations/{id}``: ``queued`` -> ``dreaming`` -> ``completed`` (with
  ``assets.video``) | ``failed`` (``failure_reason``); no numeric progress;
- cancel: ``DELETE /generations/{id}`` (it deletes the generation; Luma has no separate
  cancel, and a deleted generation cannot be read or extended afterwards).

Not supported by the API, so refused in ``validate``: seed, negative prompt, a frame
rate other than 24 (Luma does not take one; 24 fps output is UNVERIFIED), n > 1 (one
video per generation), remix. There is no idempotency key: a submit re-run after a
crash makes a second generation.

The upstream id is Luma's generation id, unchanged: it is all status/fetch/cancel need,
and an extend references the source by it.

With ``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) the create carries
``callback_url``: Luma POSTs the Generation there on each state change, and vidgate
reads the status at once (a hint only; the body is not used).

Options: ``poll_s`` (seconds between status reads, default 2; Luma gives no hint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field

from vidgate.core.capabilities import CapabilityTable
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits, default_error_message
from vidgate.providers.inputs import image_public_url
from vidgate.providers.result_urls import ResultUrls

DEFAULT_BASE_URL = "https://api.lumalabs.ai/dream-machine/v1"
DEFAULT_MODEL = "ray-2"
# Section 3 "Create video body": durations are strings with an "s" suffix.
DURATIONS = {5: "5s", 9: "9s"}
# vidgate resolution name -> Luma's (Luma writes 4K in lower case).
RESOLUTIONS = {"540p": "540p", "720p": "720p", "1080p": "1080p", "4K": "4k"}
_DEFAULT_POLL_S = 2.0


class Options(adapter_config.AdapterSettings):
    # Seconds between status reads (Luma gives no hint).
    poll_s: float = Field(default=_DEFAULT_POLL_S, gt=0)


ADAPTER = adapter_config.AdapterSpec(
    Options, adapter_config.ApiKey, "/dream-machine/v1", DEFAULT_BASE_URL
)
_STATES = {"queued": "queued", "dreaming": "running", "completed": "succeeded", "failed": "failed"}


def check_spec(
    spec: JobSpec,
    upstream_model: str | None,
    table: CapabilityTable,
    *,
    deployment: str,
    has_input_url: bool,
) -> None:
    """What Luma cannot do, as ``InvalidParameter`` (the create-time 400): the
    catalogue's data for the model, then what it cannot say (images go up as public
    URLs; an extend names a generation of this deployment, and takes no image)."""
    model = upstream_model or DEFAULT_MODEL
    table.check(spec, "luma", model, f"luma {model}")
    if spec.kind == "extend":
        source = spec.source
        if source is None or source.provider != deployment or not source.upstream_id:
            raise InvalidParameter(
                f"luma can extend only videos generated on deployment {deployment!r}",
                param="video_id",
            )
        if spec.image is not None:
            raise InvalidParameter(
                "luma cannot take a first-frame image when extending a video", param="image"
            )
    for param, image in (("last_frame", spec.last_frame), ("image", spec.image)):
        if image is not None and not has_input_url:
            raise InvalidParameter(
                f"luma takes {'input images' if param == 'image' else 'a last frame'} only as"
                " public URLs: set VIDGATE_PUBLIC_BASE_URL to an address Luma can reach",
                param=param,
            )


def build_body(
    spec: JobSpec,
    upstream_model: str | None,
    image_url: str | None,
    last_frame_url: str | None = None,
) -> dict[str, Any]:
    """The ``POST /generations/video`` body for a spec that passed ``check_spec``."""
    body: dict[str, Any] = {
        "generation_type": "video",
        "model": upstream_model or DEFAULT_MODEL,
        "prompt": spec.prompt,
        "duration": DURATIONS[spec.seconds],
        "resolution": RESOLUTIONS[spec.resolution],
        "aspect_ratio": spec.aspect_ratio,
    }
    if spec.kind == "extend" and spec.source is not None and spec.source.upstream_id:
        # frame0 = a generation extends it forward (section 3, keyframes).
        body["keyframes"] = {"frame0": {"type": "generation", "id": spec.source.upstream_id}}
    elif image_url is not None:
        keyframes = {"frame0": {"type": "image", "url": image_url}}
        if last_frame_url is not None:
            # frame1: the end frame (section 3, keyframes); image type, URL only.
            keyframes["frame1"] = {"type": "image", "url": last_frame_url}
        body["keyframes"] = keyframes
    return body


# ``failure_code`` where a generation carries one (section 11: Luma's newer API names
# these three; the Dream Machine API gives ``failure_reason`` text only, read from its
# words by providers/failures.py).
FAILURES: dict[str, failures.Failure] = {
    "content_moderated": failures.REFUSED,
    "rate_limited": failures.TRANSIENT,
    "budget_exhausted": failures.FAILED,
}


def parse_generation(body: Any, poll_s: float = _DEFAULT_POLL_S) -> base.UpstreamStatus:
    """A Generation object as an ``UpstreamStatus``."""
    if not isinstance(body, dict) or body.get("state") not in _STATES:
        state = body.get("state") if isinstance(body, dict) else None
        raise base.ProviderError(
            "upstream_bad_response", f"luma: unknown generation state {state!r}", retryable=True
        )
    state = _STATES[body["state"]]
    if state == "failed":
        reason = str(body["failure_reason"]) if body.get("failure_reason") else None
        code = str(body["failure_code"]) if body.get("failure_code") else None
        failure = failures.lookup(FAILURES, code, reason)
        return failures.failed(failure, "luma", reason or "the generation failed", code)
    if state == "succeeded":
        if not result_urls(body):
            # Luma's own fault, not the request's: worth another deployment.
            return failures.failed(
                failures.TRANSIENT, "luma", "the generation completed without a video"
            )
        return base.UpstreamStatus("succeeded", progress=100)
    return base.UpstreamStatus(state, poll_after_s=poll_s)  # type: ignore[arg-type]


def result_urls(body: dict[str, Any]) -> list[str]:
    assets = body.get("assets")
    video = assets.get("video") if isinstance(assets, dict) else None
    return [video] if isinstance(video, str) and video else []


def error_message(response: httpx.Response) -> str | None:
    """Luma's error body: ``{"detail": "..."}`` or a validation list
    ``{"detail": [{"loc", "msg"}]}`` (shape UNVERIFIED, section 3)."""
    try:
        body = response.json()
    except ValueError:
        return default_error_message(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = ".".join(str(part) for part in first.get("loc", []) if part != "body")
        msg = str(first.get("msg", "invalid request"))
        return f"{loc}: {msg}" if loc else msg
    return default_error_message(response)


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = "luma: the result URL has expired and no fresh one is available"


class LumaProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._poll_s = options.poll_s
        self._client = UpstreamClient(
            provider="luma",
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers={"Authorization": f"Bearer {credentials.api_key.get_secret_value()}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._client, gone=_URL_GONE)

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(
            spec,
            upstream_model,
            self._deps.capabilities,
            deployment=self.name,
            has_input_url=self._deps.input_url is not None,
        )

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """Luma has no idempotency key; ``idempotency_key`` (the job id) only names the
        callback URL."""
        try:
            # The public URL may have gone since create (a configuration change): that
            # refusal must fail the job, not crash the step.
            image_url = last_frame_url = None
            if spec.image is not None and spec.kind == "generate":
                image_url = image_public_url(self._deps, spec.image, provider="luma")
                if spec.last_frame is not None:
                    last_frame_url = image_public_url(self._deps, spec.last_frame, provider="luma")
        except InvalidParameter as exc:
            raise base.ProviderError("invalid_request", exc.message, retryable=False) from exc
        request = build_body(spec, upstream_model, image_url, last_frame_url)
        if self._deps.callback_url is not None:
            request["callback_url"] = self._deps.callback_url(idempotency_key)
        body = await self._client.json("POST", "/generations/video", json=request)
        generation_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(generation_id, str) or not generation_id:
            raise base.ProviderError(
                "upstream_bad_response", "luma: the create answer has no id", retryable=True
            )
        return base.SubmitResult(generation_id, poll_after_s=self._poll_s)

    async def _read(self, task_id: str) -> tuple[base.UpstreamStatus, list[str]]:
        body = await self._client.json("GET", f"/generations/{quote(task_id, safe='')}")
        status = parse_generation(body, self._poll_s)
        return status, result_urls(body) if status.state == "succeeded" else []

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        status, urls = await self._read(task.id)
        self._urls.remember(task.id, urls)
        return status

    async def _fresh_urls(self, task_id: str) -> list[str]:
        status, urls = await self._read(task_id)
        if status.state != "succeeded":
            raise base.ProviderError(
                "result_not_ready",
                f"luma: generation {task_id} is {status.state}, not completed",
                retryable=status.state in ("queued", "running"),
            )
        return urls

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        """Download ``assets.video``. A URL remembered from the last status read is
        tried first; if it has expired, the generation is read once more for the
        current URL (whether Luma ever re-issues one is UNVERIFIED)."""
        return await self._urls.download(
            task.id, dest_dir, lambda: self._fresh_urls(task.id), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """``DELETE /generations/{id}``: Luma deletes the generation (no separate cancel)."""
        self._urls.forget(task.id)
        try:
            await self._client.request("DELETE", f"/generations/{quote(task.id, safe='')}")
        except base.ProviderError as error:
            if error.code != "upstream_not_found":  # already gone: nothing to cancel
                raise

    async def probe(self) -> None:
        """``GET /credits`` (the SDK's ``credits.get``): the key's credit balance."""
        await self._client.json("GET", "/credits")

    async def aclose(self) -> None:
        await self._client.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> LumaProvider:
    return LumaProvider(config, deps)
