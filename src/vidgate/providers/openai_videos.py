"""Upstreams that speak the OpenAI Videos API (``/v1/videos``).

Azure OpenAI, vLLM-Omni, SGLang and other gateways (another vidgate included) serve
this shape; OpenAI's own Sora API was shut down on 2026-09-24 (reference section 1).

- create: multipart ``POST /videos`` (what the official SDK sends): prompt, model,
  seconds (a string), size "WxH", and the first frame as the ``input_reference`` part,
  fitted first to exactly that size (OpenAI refused any other: "Inpaint image must
  match the requested width and height"), so any image vidgate reads is taken; a seed
  or negative prompt goes as a field too (vidgate's own extensions): OpenAI's models
  refuse both at create (the catalogue's ``upstreams.openai_videos``), so they reach
  only other servers of this shape, which decide. The frame rate is never sent;
- remix: ``POST /videos/{id}/remix`` JSON ``{prompt}`` on a video made here;
- extend: ``POST /videos/extensions`` JSON ``{prompt, seconds, video: {id}}`` (the SDK's
  multipart form of ``video`` is broken in 3.57.0; the JSON form is UNVERIFIED beyond
  servers that accept JSON, such as vidgate);
- poll ``GET /videos/{id}``, honouring the ``openai-poll-after-ms`` header;
- download ``GET /videos/{id}/content`` with the key; once ``expires_at`` has passed the
  bytes are gone and cannot be asked for again;
- cancel: ``DELETE /videos/{id}``.

Options: ``api_key_header`` ("authorization" sends ``Bearer``; Azure uses "api-key"),
``query`` (extra query parameters on every call, e.g. Azure's ``api-version``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.media.images import CONTENT_TYPES
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits
from vidgate.providers.inputs import fitted_image

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class Options(adapter_config.AdapterSettings):
    # "authorization" sends ``Bearer <key>``; any other name carries the bare key.
    api_key_header: str = "authorization"
    # Extra query parameters on every call (Azure's api-version).
    query: dict[str, str] = {}


ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "/v1", DEFAULT_BASE_URL)
_DEFAULT_POLL_S = 1.0
_STATES = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
}


def create_form(spec: JobSpec, upstream_model: str | None) -> dict[str, str]:
    form = {"prompt": spec.prompt, "seconds": str(spec.seconds), "size": spec.size}
    if upstream_model:
        form["model"] = upstream_model
    # Never dropped without a word: the models that take neither refuse them at create.
    if spec.seed is not None:
        form["seed"] = str(spec.seed)
    if spec.negative_prompt is not None:
        form["negative_prompt"] = spec.negative_prompt
    return form


# A failed video's ``error.code`` (the Video object's ``VideoCreateError``). The codes are
# not listed in the SDK: these are the ones OpenAI's own error vocabulary uses
# (UNVERIFIED for videos); others are read from their words (providers/failures.py).
FAILURES: dict[str, failures.Failure] = {
    "moderation_blocked": failures.REFUSED,
    "content_policy_violation": failures.REFUSED,
    "server_error": failures.TRANSIENT,
    "internal_error": failures.TRANSIENT,
    "rate_limit_exceeded": failures.TRANSIENT,
    "invalid_request_error": failures.INVALID,
}


def parse_status(
    body: dict[str, Any], poll_after_ms: str | None, provider: str = "openai"
) -> base.UpstreamStatus:
    state = _STATES.get(str(body.get("status")), "running")
    # Without the server's own hint, the engine's adaptive cadence decides.
    poll_after: float | None = None
    if poll_after_ms:
        with contextlib.suppress(ValueError):
            poll_after = max(0.05, int(poll_after_ms) / 1000)
    raw_error = body.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    progress = body.get("progress")
    percent = int(progress) if isinstance(progress, int | float) else None
    if state == "failed":
        code = str(error["code"]) if error.get("code") else None
        text = str(error["message"]) if error.get("message") else None
        failure = failures.lookup(FAILURES, code, text)
        if isinstance(error.get("headers"), dict) and any(
            str(k).lower() == "x-openai-inference-capacity-reason" for k in error["headers"]
        ):
            # Out of capacity [SDK VideoCreateError.headers]: another deployment may serve.
            failure = failures.TRANSIENT
        return failures.failed(failure, provider, text, code, progress=percent)
    return base.UpstreamStatus(
        state,  # type: ignore[arg-type]
        progress=percent,
        poll_after_s=poll_after,
    )


class OpenAIVideosProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        key = credentials.api_key.get_secret_value()
        header = options.api_key_header.lower()
        auth = {"Authorization": f"Bearer {key}"} if header == "authorization" else {header: key}
        self._query = dict(options.query)
        self._http = UpstreamClient(
            provider=config.name,
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers=auth,
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
        )

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        model = upstream_model or spec.model
        self._deps.capabilities.check(
            spec, "openai_videos", model, f"{self.name} ({model})", bridged_types=CONTENT_TYPES
        )
        if spec.kind in ("remix", "extend"):
            source = spec.source
            if source is None or source.provider != self.name or not source.upstream_id:
                raise InvalidParameter(
                    f"{self.name} can {spec.kind} only videos it generated itself",
                    param="video_id",
                )

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        headers = {"Idempotency-Key": idempotency_key}
        if spec.kind == "remix" and spec.source and spec.source.upstream_id:
            body = await self._http.json(
                "POST",
                f"/videos/{spec.source.upstream_id}/remix",
                json={"prompt": spec.prompt},
                params=self._query,
                headers=headers,
            )
        elif spec.kind == "extend" and spec.source and spec.source.upstream_id:
            body = await self._http.json(
                "POST",
                "/videos/extensions",
                json={
                    "prompt": spec.prompt,
                    "seconds": str(spec.seconds),
                    "video": {"id": spec.source.upstream_id},
                },
                params=self._query,
                headers=headers,
            )
        else:
            # Every field as a multipart part, as the official SDK sends it.
            parts: list[tuple[str, tuple[str | None, bytes | str, str | None]]] = [
                (key, (None, value, None))
                for key, value in create_form(spec, upstream_model).items()
            ]
            if spec.image is not None:
                image = await fitted_image(
                    self._deps, spec.image, spec.width, spec.height, param="input_reference"
                )
                parts.append(("input_reference", ("input", image.data, image.content_type)))
            body = await self._http.json(
                "POST", "/videos", files=parts, params=self._query, headers=headers
            )
        video_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(video_id, str):
            raise base.ProviderError(
                "upstream_bad_response", f"{self.name}: create returned no id", retryable=False
            )
        return base.SubmitResult(video_id, poll_after_s=_DEFAULT_POLL_S)

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        response = await self._http.request("GET", f"/videos/{task.id}", params=self._query)
        return parse_status(
            response.json(), response.headers.get("openai-poll-after-ms"), self.name
        )

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        # The content lives only until expires_at and there is no way to ask again, so
        # the download's own result_expired is final.
        path = await self._http.download(
            f"/videos/{task.id}/content",
            dest_dir / "0.mp4",
            authenticated=True,
            params=self._query,
        )
        return [path]

    async def cancel(self, task: base.UpstreamTask) -> None:
        try:
            await self._http.request("DELETE", f"/videos/{task.id}", params=self._query)
        except base.ProviderError as error:
            if error.code != "upstream_not_found":
                raise

    async def probe(self) -> None:
        """A status read of a video that does not exist: 404 once the key is taken."""
        await adapter_config.probe_missing(
            lambda: self._http.request(
                "GET", f"/videos/{adapter_config.PROBE_ID}", params=self._query
            )
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> OpenAIVideosProvider:
    return OpenAIVideosProvider(config, deps)
