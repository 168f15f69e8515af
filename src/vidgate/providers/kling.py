"""Kling (Kuaishou) video generation API (reference section 5).

- auth: a fresh HS256 JWT ``{"iss": access_key, "exp": now+1800, "nbf": now-5}`` signed
  with the secret key, sent as ``Authorization: Bearer <token>``; cached and re-signed
  5 minutes before it expires;
- create: ``POST /v1/videos/text2video`` or ``/v1/videos/image2video`` (the first frame as
  raw base64 with no ``data:`` prefix) with ``external_task_id`` = the job id, or
  ``POST /v1/videos/video-extend`` with the source's Kling *video* id;
- a last frame: image2video ``image_tail``, raw base64 like ``image`` and under the same
  rules (JPG/PNG, at least 300 px, aspect 1:2.5-2.5:1). ``image+image_tail``, the motion
  masks and ``camera_control`` are mutually exclusive; vidgate sends no masks or camera
  control, so nothing clashes. Which models and modes honour ``image_tail`` is not in
  the reference (UNVERIFIED): the upstream's 400 decides;
- reference images: ``POST /v1/videos/multi-image2video`` (``image_list``) exists, but its
  schema is UNVERIFIED, so ``validate`` refuses them;
- poll ``GET /v1/videos/{kind}/{task_id}``: ``submitted|processing|succeed|failed``, the
  result in ``task_result.videos[].url``;
- there is no cancel endpoint, and a result URL is not re-issued (results are cleared
  after 30 days), so an expired URL is final.

The upstream id is Kling's task id; the task's state holds ``kind`` (text2video |
image2video | video-extend) because the poll path depends on the endpoint that created
the task. An extend finds the source's video id by querying the source's task (its id
and state travel in the spec's source), since ``video-extend`` takes a video id, not a
task id.

With ``deps.callback_url`` (VIDGATE_PUBLIC_BASE_URL set) every create carries
``callback_url``: Kling POSTs the task's ``data`` object there on each status change,
and vidgate reads the status at once (a hint only; the body is not used).

Options: ``model`` (default upstream model), ``usd_per_unit`` (USD per unit of
``final_unit_deduction``; without it no cost is reported, as Kling bills in resource-
pack units whose USD price is not published, reference section 5 "Pricing").
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
import jwt
from jwt.warnings import InsecureKeyLengthWarning
from pydantic import Field, SecretStr

from vidgate.core.capabilities import CapabilityTable
from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers import adapter_config, base, failures
from vidgate.providers.http import UpstreamClient, UpstreamLimits
from vidgate.providers.inputs import image_base64
from vidgate.providers.result_urls import ResultUrls

DEFAULT_BASE_URL = "https://api-singapore.klingai.com"
DEFAULT_MODEL = "kling-v2-master"


class Options(adapter_config.AdapterSettings):
    # The upstream model when the catalogue names none.
    model: str = DEFAULT_MODEL
    # USD per Kling unit (``final_unit_deduction``); no cost is reported without it.
    usd_per_unit: Decimal | None = Field(default=None, ge=0)


class Credentials(adapter_config.AdapterSettings):
    access_key: SecretStr
    secret_key: SecretStr


# The host is the base URL (api-singapore.klingai.com); every path is under /v1.
ADAPTER = adapter_config.AdapterSpec(Options, Credentials, "/v1", DEFAULT_BASE_URL)
KINDS = ("text2video", "image2video", "video-extend")
# 3P: std is about 720p and pro about 1080p; Kling has no resolution field.
MODES = {"720p": "std", "1080p": "pro"}

TOKEN_TTL_S = 1800
_TOKEN_NBF_SKEW_S = 5
_TOKEN_REFRESH_S = 300
_SUBMIT_POLL_S = 2.0
# rateLimits doc: on 1303 back off, at least 1 s at first.
_BUSY_RETRY_S = 1.0

_STATES: dict[str, base.UpstreamState] = {
    "submitted": "queued",
    "processing": "running",
    "succeed": "succeeded",
    "failed": "failed",
}
_CODE_SUFFIX = re.compile(r"\(code (\d+)\)$")


# --- auth -------------------------------------------------------------------------


def encode_jwt(access_key: str, secret_key: str, *, now: float) -> str:
    """The token of Kling's official Python sample (commonInfo): HS256 over
    ``{"alg": "HS256", "typ": "JWT"}`` and these claims."""
    payload = {
        "iss": access_key,
        "exp": int(now) + TOKEN_TTL_S,
        # Backdated for clock skew, as in the sample.
        "nbf": int(now) - _TOKEN_NBF_SKEW_S,
    }
    with warnings.catch_warnings():
        # Kling issues the secret key; a short one is not the operator's to fix, and a
        # warning on every signing would only be noise. (Nothing here awaits, so the
        # filter never covers another coroutine.)
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(payload, secret_key, algorithm="HS256")


class TokenSigner:
    """Signs a token, and a new one shortly before the current one expires."""

    def __init__(
        self, access_key: str, secret_key: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._clock = clock
        self._token = ""
        self._expires = 0.0

    def headers(self) -> dict[str, str]:
        now = self._clock()
        if now >= self._expires - _TOKEN_REFRESH_S:
            self._token = encode_jwt(self._access_key, self._secret_key, now=now)
            self._expires = int(now) + TOKEN_TTL_S
        return {"Authorization": f"Bearer {self._token}"}


# --- request mapping --------------------------------------------------------------


def check_spec(spec: JobSpec, model: str, deployment: str, table: CapabilityTable) -> None:
    """What Kling cannot do, as InvalidParameter (no I/O): the catalogue's data for
    ``model``, then what it cannot say: video-extend takes a video of this deployment's
    (its task kind is in the source's upstream state), and no image."""
    table.check(spec, "kling", model, f"Kling {model}")
    if spec.kind != "extend":
        return
    source = spec.source
    if (
        source is None
        or source.provider != deployment
        or not source.upstream_id
        or (source.upstream_state or {}).get("kind") not in KINDS
    ):
        raise InvalidParameter(
            f"Kling: can extend only videos that deployment {deployment!r} generated",
            param="video_id",
        )
    if spec.image is not None:
        raise InvalidParameter("Kling: an extension takes no image", param="image")


def create_body(
    spec: JobSpec,
    model: str,
    *,
    external_task_id: str,
    image: str | None,
    image_tail: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(kind, body)`` for text2video / image2video. Kling has no seed or fps field, so
    those are not sent; ``image`` and ``image_tail`` are raw base64 (the docs stress: no
    ``data:`` prefix)."""
    body: dict[str, Any] = {
        "model_name": model,
        "prompt": spec.prompt,
        # A string: "5" | "10".
        "duration": str(spec.seconds),
        "mode": MODES[spec.resolution],
        # Unique per account: a resubmission with the same id is refused, which is how
        # a crashed submit finds its task again (see KlingProvider.submit).
        "external_task_id": external_task_id,
    }
    if spec.negative_prompt:
        body["negative_prompt"] = spec.negative_prompt
    if image is None:
        body["aspect_ratio"] = spec.aspect_ratio
        return "text2video", body
    # image2video takes its aspect ratio from the image.
    body["image"] = image
    if image_tail is not None:
        body["image_tail"] = image_tail
    return "image2video", body


def extend_body(spec: JobSpec, video_id: str) -> dict[str, Any]:
    """video-extend documents only video_id, prompt, negative_prompt, cfg_scale and
    callback_url, so external_task_id is not sent (UNVERIFIED whether it is accepted)."""
    body: dict[str, Any] = {"video_id": video_id, "prompt": spec.prompt}
    if spec.negative_prompt:
        body["negative_prompt"] = spec.negative_prompt
    return body


# --- response mapping -------------------------------------------------------------


def error_message(response: httpx.Response) -> str | None:
    """Kling's error envelope ``{code, message, request_id}`` as ``message (code N)``;
    the code travels in the text so ``reclassify`` can read it back."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or None
    if not isinstance(body, dict):
        return None
    message = str(body.get("message") or f"HTTP {response.status_code}")
    code = body.get("code")
    return f"{message} (code {code})" if isinstance(code, int) else message


def error_for_code(
    code: int, message: str, *, retry_after_s: float | None = None
) -> base.ProviderError | None:
    """The Kling codes whose meaning differs from their HTTP status (or that ride on a
    200). None where the HTTP translation already says it right."""
    if code in (1000, 1001, 1002, 1003, 1004, 1304):
        # Auth failures; 1304 (IP not whitelisted) is UNVERIFIED.
        return base.ProviderError("upstream_auth_failed", message, retryable=False, unhealthy=True)
    if code in (1100, 1101, 1102):
        # Account exception, arrears, resource pack used up: HTTP 429, but waiting will
        # not help; the deployment is out until someone pays.
        return base.ProviderError(
            "upstream_account_error", message, retryable=False, unhealthy=True
        )
    if code == 1301:
        # Content policy (UNVERIFIED code): the job fails with Kling's reason.
        return base.ProviderError(failures.CONTENT_REFUSED, message, retryable=False)
    if code in (1302, 1303):
        # 1303: too many parallel tasks for the resource pack (documented); 1302: rate.
        return base.ProviderError(
            "upstream_rate_limited",
            message,
            retryable=True,
            retry_after_s=retry_after_s if retry_after_s is not None else _BUSY_RETRY_S,
        )
    if code in (5000, 5001, 5002):
        return base.ProviderError(
            "upstream_error", message, retryable=True, retry_after_s=retry_after_s
        )
    return None


def reclassify(error: base.ProviderError) -> base.ProviderError:
    match = _CODE_SUFFIX.search(error.message)
    if match is None:
        return error
    better = error_for_code(int(match[1]), error.message, retry_after_s=error.retry_after_s)
    return better or error


def unwrap(body: Any, provider: str) -> dict[str, Any]:
    """``data`` of a ``{code: 0, data}`` envelope; a non-zero code on an HTTP 200 is an
    error all the same."""
    if not isinstance(body, dict):
        raise base.ProviderError(
            "upstream_bad_response", f"{provider}: a response that is not an object", retryable=True
        )
    code = body.get("code")
    if code != 0:
        message = f"{provider}: {body.get('message') or 'error'} (code {code})"
        known = error_for_code(code, message) if isinstance(code, int) else None
        raise known or base.ProviderError("upstream_rejected", message, retryable=False)
    data = body.get("data")
    if not isinstance(data, dict):
        raise base.ProviderError(
            "upstream_bad_response", f"{provider}: a response without data", retryable=True
        )
    return data


def videos(data: dict[str, Any]) -> list[dict[str, Any]]:
    result = data.get("task_result")
    items = result.get("videos") if isinstance(result, dict) else None
    return [v for v in items if isinstance(v, dict)] if isinstance(items, list) else []


def result_urls(data: dict[str, Any]) -> list[str]:
    return [str(v["url"]) for v in videos(data) if v.get("url")]


def parse_status(
    data: dict[str, Any], *, provider: str, usd_per_unit: Decimal | None = None
) -> base.UpstreamStatus:
    """Kling gives no progress and no failure code, only ``task_status_msg``: its words
    say whether the task was refused (risk control) or failed on Kling's side
    (providers/failures.py; Kling's messages are UNVERIFIED)."""
    state = _STATES.get(str(data.get("task_status")), "running")
    if state == "failed":
        reason = str(data.get("task_status_msg") or "the task failed")
        return failures.failed(failures.from_text(reason), provider, reason)
    if state != "succeeded":
        # No poll hint from Kling: the engine backs off by itself.
        return base.UpstreamStatus(state)
    return base.UpstreamStatus("succeeded", progress=100, cost=_cost(data, usd_per_unit))


def _cost(data: dict[str, Any], usd_per_unit: Decimal | None) -> Decimal | None:
    units = data.get("final_unit_deduction")
    if usd_per_unit is None or units in (None, ""):
        return None
    try:
        return Decimal(str(units)) * usd_per_unit
    except InvalidOperation:
        return None


# --- the adapter ------------------------------------------------------------------


# The message of result_expired when no fresh URL replaces an expired one.
_URL_GONE = "{}: the result URL no longer works and Kling issues no new one"


class KlingProvider:
    def __init__(
        self,
        config: DeploymentConfig,
        deps: base.ProviderDeps,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self._deps = deps
        options, credentials = adapter_config.read_config(config, ADAPTER)
        self._model = options.model
        self._usd_per_unit = options.usd_per_unit
        self.signer = TokenSigner(
            credentials.access_key.get_secret_value(),
            credentials.secret_key.get_secret_value(),
            clock,
        )
        self._http = UpstreamClient(
            provider=config.name,
            base_url=adapter_config.api_base_url(config.base_url, ADAPTER),
            headers=self.signer.headers,
            timeout_s=config.timeout_s,
            limits=UpstreamLimits.of(deps.settings),
            error_message=error_message,
        )
        self._urls = ResultUrls(self._http, gone=_URL_GONE.format(self.name))

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        model = upstream_model or self._model
        check_spec(spec, model, self.name, self._deps.capabilities)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            body = await self._http.json(method, path, **kwargs)
        except base.ProviderError as error:
            raise reclassify(error) from None
        return unwrap(body, self.name)

    async def _task(self, task_id: str, state: base.TaskState) -> dict[str, Any]:
        kind = state.get("kind")
        if kind not in KINDS:
            raise base.ProviderError(
                "upstream_bad_id",
                f"{self.name}: task {task_id!r} has no Kling endpoint kind",
                retryable=False,
            )
        return await self._call("GET", f"/videos/{kind}/{task_id}")

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> base.SubmitResult:
        model = upstream_model or self._model
        if spec.kind == "extend":
            kind, body = "video-extend", extend_body(spec, await self._source_video_id(spec))
        else:
            image = await image_base64(self._deps, spec.image) if spec.image else None
            tail = await image_base64(self._deps, spec.last_frame) if spec.last_frame else None
            kind, body = create_body(
                spec, model, external_task_id=idempotency_key, image=image, image_tail=tail
            )
        if self._deps.callback_url is not None:
            # Documented for text2video, image2video and video-extend alike.
            body["callback_url"] = self._deps.callback_url(idempotency_key)
        try:
            data = await self._call("POST", f"/videos/{kind}", json=body)
        except base.ProviderError as error:
            found = None
            if error.code == "upstream_rejected" and "external_task_id" in body:
                found = await self._find_external(kind, idempotency_key)
            if found is None:
                raise
            data = found
        task_id = data.get("task_id")
        if not task_id:
            raise base.ProviderError(
                "upstream_bad_response",
                f"{self.name}: create returned no task_id",
                retryable=False,
            )
        return base.SubmitResult(str(task_id), poll_after_s=_SUBMIT_POLL_S, state={"kind": kind})

    async def _find_external(self, kind: str, external_task_id: str) -> dict[str, Any] | None:
        """A resubmission (after a crash) is refused because the external_task_id is
        taken; the task it names is ours. The query path accepts an external_task_id in
        place of the task id [3P; UNVERIFIED against the live API]."""
        try:
            data = await self._call("GET", f"/videos/{kind}/{external_task_id}")
        except base.ProviderError:
            return None
        info = data.get("task_info")
        if isinstance(info, dict) and info.get("external_task_id") == external_task_id:
            return data
        return None

    async def _source_video_id(self, spec: JobSpec) -> str:
        source = spec.source
        upstream_id = source.upstream_id if source else None
        state = source.upstream_state if source else None
        data = await self._task(upstream_id or "", state or {})
        ids = [str(v["id"]) for v in videos(data) if v.get("id")]
        if data.get("task_status") != "succeed" or not ids:
            raise base.ProviderError(
                "source_unavailable",
                f"{self.name}: the source task has no video to extend (Kling keeps results"
                " 30 days)",
                retryable=False,
            )
        return ids[0]

    async def status(self, task: base.UpstreamTask) -> base.UpstreamStatus:
        data = await self._task(task.id, task.state)
        status = parse_status(data, provider=self.name, usd_per_unit=self._usd_per_unit)
        if status.state == "succeeded":
            self._urls.remember(task.id, result_urls(data))
        return status

    async def _result_urls(self, task: base.UpstreamTask) -> list[str]:
        data = await self._task(task.id, task.state)
        if data.get("task_status") != "succeed":
            raise base.ProviderError(
                "result_unavailable",
                f"{self.name}: the task is {data.get('task_status')}, not succeed",
                retryable=False,
            )
        urls = result_urls(data)
        if not urls:
            raise base.ProviderError(
                "result_expired",
                f"{self.name}: the task has no result URL (Kling clears them after 30 days)",
                retryable=False,
                expired=True,
            )
        return urls

    async def fetch(
        self, task: base.UpstreamTask, dest_dir: Path, progress: base.ProgressCallback | None = None
    ) -> list[Path]:
        # An expired URL is read again in case the task names a new one; Kling's are
        # static links kept for 30 days, so the same URL means the result is gone.
        return await self._urls.download(
            task.id, dest_dir, lambda: self._result_urls(task), progress
        )

    async def cancel(self, task: base.UpstreamTask) -> None:
        """A no-op: Kling documents no way to cancel a task (reference section 5)."""
        self._urls.forget(task.id)

    async def probe(self) -> None:
        """``GET /v1/videos/text2video?pageNum=1&pageSize=1``: the task list, one item,
        which takes the signed token (1000-1004 when it does not)."""
        params = {"pageNum": "1", "pageSize": "1"}
        try:
            body = await self._http.json("GET", "/videos/text2video", params=params)
        except base.ProviderError as error:
            raise reclassify(error) from None
        # A list's ``data`` is a list: only the envelope's code matters here.
        unwrap({**body, "data": {}} if isinstance(body, dict) else body, self.name)

    async def aclose(self) -> None:
        await self._http.aclose()


def create(config: DeploymentConfig, deps: base.ProviderDeps) -> KlingProvider:
    return KlingProvider(config, deps)
