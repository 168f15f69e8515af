"""MiniMax Hailuo video API (reference section 8).

- auth: ``Authorization: Bearer <api_key>``;
- create: ``POST /v1/video_generation`` ``{model, prompt, duration (int 6|10),
  resolution (768P|1080P), first_frame_image (a data URL)}`` -> ``{task_id, base_resp}``;
- a last frame: ``last_frame_image``, a data URL under the first frame's rules. The
  reference lists first+last frame for ``MiniMax-Hailuo-02`` only, so ``validate``
  refuses it on every other model;
- reference images: ``subject_reference`` belongs to S2V-01, which this adapter refuses
  (vidgate has no subject input), so ``validate`` refuses reference images;
- poll ``GET /v1/query/video_generation?task_id=``: ``Preparing|Queueing|Processing|
  Success|Fail``, with ``file_id`` on success;
- result: ``GET /v1/files/retrieve?file_id=`` -> ``file.download_url``, valid 9 hours;
  asking again gives a fresh URL, so an expired one is recoverable;
- business errors ride on HTTP 200 with ``base_resp.status_code != 0`` and are
  translated here; there is no cancel endpoint and no idempotency key.

With ``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) the create carries
``callback_url``. MiniMax validates it first (``{"challenge": X}``, echoed by the
callback route), then POSTs the query-shaped body on each status change, and vidgate
reads the status at once (a hint only; the body is not used).

The upstream id is MiniMax's task id as is.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx

from vidgate.core.capabilities import CapabilityTable
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits, retry_after_s
from vidgate.providers.inputs import image_data_url
from vidgate.providers.result_urls import ResultUrls

DEFAULT_BASE_URL = "https://api.minimax.io"
DEFAULT_MODEL = "MiniMax-Hailuo-02"


class Options(adapter_config.AdapterSettings):
    # The upstream model when the catalogue names none.
    model: str = DEFAULT_MODEL


# The host is the base URL (api.minimax.io, api.minimaxi.com); every path is under /v1.
ADAPTER = adapter_config.AdapterSpec(Options, adapter_config.ApiKey, "/v1", DEFAULT_BASE_URL)
# A query's answer to a task id it does not know (UNVERIFIED: the fake's, from 3P docs):
# the key was taken.
_NOT_FOUND_CODE = 2013
RESOLUTIONS = {"720p": "768P", "1080p": "1080P"}

_SUBMIT_POLL_S = 2.0

_STATES: dict[str, base.UpstreamState] = {
    "Preparing": "queued",
    "Queueing": "queued",
    "Processing": "running",
    "Success": "succeeded",
    "Fail": "failed",
}
_RETRY_LATER = {1000, 1001, 1024}  # unknown error, request timeout, internal error
# 1004 not authorized / key mismatch; 2049 "invalid api key" [3P: GitHub issues];
# 2038 real-name verification required (UNVERIFIED).
_AUTH = {1004, 2049, 2038}
_CONTENT = {1026, 1027}  # input / output content sensitive (UNVERIFIED)
# A failed task's ``base_resp.status_code`` (errorcode.md; 1026, 1027 and 2013 are
# UNVERIFIED): MiniMax's own errors are worth another deployment, a refusal is not.
_TASK_FAILURES: dict[int, failures.Failure] = {
    1000: failures.TRANSIENT,
    1001: failures.TIMED_OUT,
    1002: failures.TRANSIENT,
    1024: failures.TRANSIENT,
    1026: failures.REFUSED,
    1027: failures.REFUSED,
    2013: failures.INVALID,
}


# --- request mapping --------------------------------------------------------------


def check_spec(spec: JobSpec, model: str, table: CapabilityTable) -> None:
    """What MiniMax cannot do, as InvalidParameter (no I/O): the catalogue's data for
    ``model``; the S2V models need a subject reference, which vidgate does not send."""
    if model.startswith("S2V-"):
        raise InvalidParameter(
            f"MiniMax: {model} needs a subject reference, which vidgate does not send",
            param="model",
        )
    table.check(spec, "minimax", model, f"MiniMax {model}")


def create_body(
    spec: JobSpec, model: str, *, first_frame: str | None, last_frame: str | None = None
) -> dict[str, Any]:
    """MiniMax has no seed, fps, aspect-ratio or negative-prompt field; the frames are
    data URLs."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": spec.prompt,
        "duration": spec.seconds,  # an integer
        "resolution": RESOLUTIONS[spec.resolution],
    }
    if first_frame is not None:
        body["first_frame_image"] = first_frame
    if last_frame is not None:
        body["last_frame_image"] = last_frame
    return body


# --- response mapping -------------------------------------------------------------


def base_resp(body: Any) -> tuple[int, str]:
    resp = body.get("base_resp") if isinstance(body, dict) else None
    if not isinstance(resp, dict):
        return 0, ""
    code = resp.get("status_code")
    return (code if isinstance(code, int) else 0), str(resp.get("status_msg") or "")


def error_for(
    code: int, message: str, *, provider: str, retry_after: float | None = None
) -> base.ProviderError:
    """A non-zero ``base_resp.status_code`` as a ProviderError (errorcode.md)."""
    text = f"{provider}: {message or 'error'} (status_code {code})"
    if code == 1002:
        return base.ProviderError(
            "upstream_rate_limited", text, retryable=True, retry_after_s=retry_after
        )
    if code in _RETRY_LATER:
        return base.ProviderError("upstream_error", text, retryable=True, retry_after_s=retry_after)
    if code in _AUTH:
        return base.ProviderError("upstream_auth_failed", text, retryable=False, unhealthy=True)
    if code == 1008:
        # Insufficient balance: waiting will not help, and other deployments may serve.
        return base.ProviderError(
            "upstream_insufficient_balance", text, retryable=False, unhealthy=True
        )
    if code in _CONTENT:
        return base.ProviderError(failures.CONTENT_REFUSED, text, retryable=False)
    # 2013 invalid parameters, and codes we do not know.
    return base.ProviderError("upstream_rejected", text, retryable=False)


def error_message(response: httpx.Response) -> str | None:
    """For non-200 answers: ``base_resp`` when there is one."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or None
    code, message = base_resp(body)
    if code:
        return f"{message} (status_code {code})"
    return None


def parse_status(
    body: dict[str, Any], *, provider: str, retry_after: float | None = None
) -> base.UpstreamStatus:
    """A query answer as UpstreamStatus. A non-zero ``base_resp`` without a task status
    is the query failing (raised); with ``Fail`` it is why the task failed."""
    code, message = base_resp(body)
    state = _STATES.get(str(body.get("status")))
    if state is None:
        if code in _CONTENT:
            return failures.failed(failures.REFUSED, provider, message, f"status_code {code}")
        if code:
            raise error_for(code, message, provider=provider, retry_after=retry_after)
        # An undocumented status: keep polling.
        return base.UpstreamStatus("running")
    if state == "failed":
        # UNVERIFIED: where the reason of a failed task is; base_resp, else error_message.
        reason = message if code else str(body.get("error_message") or "the task failed")
        failure = _TASK_FAILURES.get(code) or failures.from_text(reason)
        return failures.failed(failure, provider, reason, f"status_code {code}" if code else None)
    if state == "succeeded":
        return base.UpstreamStatus("succeeded", progress=100)
    # No progress field and no poll hint: the engine backs off by itself.
    return base.UpstreamStatus(state)


def download_url(body: dict[str, Any]) -> str | None:
    file = body.get("file")
    url = file.get("download_url") if isinstance(file, dict) else None
    return str(url) if url else None


# --- the adapter ------------------------------------------------------------------


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = "{}: the download URL has expired and MiniMax gives no new one"


class MiniMaxProvider:
    def __init__(self, config: DeploymentConfig, deps: base.ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._model = options.model
        self._http = UpstreamClient(
            provider=config.name,
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers={"Authorization": f"Bearer {credentials.api_key.get_secret_value()}"},
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._http, gone=_URL_GONE.format(self.name))

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        model = upstream_model or self._model
        check_spec(spec, model, self._deps.capabilities)

    async def _send(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[dict[str, Any], float | None]:
        """The JSON body and any Retry-After; HTTP errors are already translated."""
        response = await self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise base.ProviderError(
                "upstream_bad_response",
                f"{self.name}: a response that is not an object",
                retryable=True,
            )
        return body, retry_after_s(response)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body, retry_after = await self._send(method, path, **kwargs)
        code, message = base_resp(body)
        if code:
            raise error_for(code, message, provider=self.name, retry_after=retry_after)
        return body

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        """MiniMax takes no idempotency key: a submit re-run after a crash makes a second
        task (the first is billed but never fetched)."""
        first_frame = await image_data_url(self._deps, spec.image) if spec.image else None
        last_frame = await image_data_url(self._deps, spec.last_frame) if spec.last_frame else None
        body = create_body(
            spec, upstream_model or self._model, first_frame=first_frame, last_frame=last_frame
        )
        if self._deps.callback_url is not None:
            body["callback_url"] = self._deps.callback_url(idempotency_key)
        answer = await self._call("POST", "/video_generation", json=body)
        task_id = answer.get("task_id")
        if not task_id:
            raise base.ProviderError(
                "upstream_bad_response",
                f"{self.name}: create returned no task_id",
                retryable=False,
            )
        return base.SubmitResult(str(task_id), poll_after_s=_SUBMIT_POLL_S)

    async def _query(self, task_id: str) -> tuple[base.UpstreamStatus, str | None]:
        body, retry_after = await self._send(
            "GET", "/query/video_generation", params={"task_id": task_id}
        )
        status = parse_status(body, provider=self.name, retry_after=retry_after)
        file_id = body.get("file_id")
        return status, (str(file_id) if file_id else None)

    async def _retrieve(self, file_id: str) -> str:
        body = await self._call("GET", "/files/retrieve", params={"file_id": file_id})
        url = download_url(body)
        if url is None:
            raise base.ProviderError(
                "upstream_bad_response",
                f"{self.name}: the file has no download_url",
                retryable=True,
            )
        return url

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        status, file_id = await self._query(task.id)
        if status.state == "succeeded" and file_id:
            # Ask for the URL now so fetch() can start downloading at once; if this
            # fails, fetch() asks again.
            with contextlib.suppress(base.ProviderError):
                self._urls.remember(task.id, [await self._retrieve(file_id)])
        return status

    async def _file_urls(self, task_id: str) -> list[str]:
        status, file_id = await self._query(task_id)
        if status.state != "succeeded" or not file_id:
            raise base.ProviderError(
                "result_unavailable",
                f"{self.name}: the task is {status.state}, with no file to download",
                retryable=False,
            )
        return [await self._retrieve(file_id)]

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        # download_url lives 9 hours; files/retrieve hands out a fresh one.
        return await self._urls.download(
            task.id, dest_dir, lambda: self._file_urls(task.id), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """A no-op: MiniMax has no cancel endpoint for video tasks (reference section 8,
        UNVERIFIED)."""
        self._urls.forget(task.id)

    async def probe(self) -> None:
        """A query of a task that does not exist: "task not found" (2013) once the key
        is taken; an auth code (1004, 2049) when it is not."""
        params = {"task_id": adapter_config.PROBE_ID}
        body, retry_after = await self._send("GET", "/query/video_generation", params=params)
        code, message = base_resp(body)
        if code and code != _NOT_FOUND_CODE:
            raise error_for(code, message, provider=self.name, retry_after=retry_after)

    async def aclose(self) -> None:
        await self._http.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> MiniMaxProvider:
    return MiniMaxProvider(config, deps)
