"""A fake fal queue API (reference section 7), as ``fal-client`` 1.0.3 describes it.

Served at the root like ``https://queue.fal.run``. Covers: ``Authorization: Key <key>``;
``POST /{endpoint id}`` checking the body against a small per-endpoint schema (422 with a
pydantic-style ``{"detail": [{loc, msg, type}]}``), answering ``{request_id,
response_url, status_url, cancel_url, queue_position}`` with URLs built from
``{owner}/{app}`` only; ``GET /{owner}/{app}/requests/{id}/status[?logs=1]`` (``IN_QUEUE``
with ``queue_position`` -> ``IN_PROGRESS`` -> ``COMPLETED``, with ``error``/``error_type``
when the task failed); ``GET /{owner}/{app}/requests/{id}`` (``{"video": {url,
content_type, file_name, file_size}}``); ``PUT …/cancel`` (202 ``CANCELLATION_REQUESTED``,
400 ``ALREADY_COMPLETED``, 404 ``NOT_FOUND``); error bodies ``{"detail"}`` with
``x-fal-error-type`` and ``x-fal-request-id``; 502/503/504 from the ingress (plain text,
no ``x-fal-request-id``).

A result's URL is set once, when the request completes. ``expire_urls`` means the file
is gone: every result URL then answers 403, and nothing hands out a new one.

Inputs not in an endpoint's schema are refused (422 ``extra_forbidden``), so an input the
adapter misnames or sends to the wrong family shows; whether fal's apps refuse or ignore
extra inputs is UNVERIFIED. Kling image-to-video takes ``tail_image_url`` (the last
frame); no endpoint here takes reference images.

UNVERIFIED against the live service: every endpoint schema below (``acme/video-model``
is made up, for the generic mapping), the 401 body, whether a 429 carries Retry-After
(fal's SDK does not read one; tests pass it explicitly), what status a cancelled request
shows (here: COMPLETED with an error), the result endpoint's answer for unfinished or
failed requests, whether validation happens at submit (here) or when the app runs, and
file retention, and the webhook signature headers (not sent here).

Webhooks: ``?fal_webhook=<url>`` on submit is remembered (and the answer gains
``gateway_request_id``); ``finish()`` POSTs ``{request_id, gateway_request_id, status:
"OK", payload}`` there once the request has ended (``"ERROR"`` with ``error`` for a
failed one). Not covered: ``/status/stream``, uploads, keyless public apps.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import (
    TERMINAL_TASK_STATES,
    FakeTask,
    FakeUpstream,
    InjectedError,
    is_http_url,
)

FAL_KEY = "fal-key-id:fal-key-secret-0123"
BASE_PATH = ""
DEPLOYMENT: dict[str, Any] = {
    "provider": "fal",
    "credentials": {"api_key": FAL_KEY},
    "options": {"poll_s": 0.1},
}
UPSTREAM_MODEL = "fal-ai/kling-video/v2.1/master/text-to-video"
SUPPORTS_IMAGE = True  # the adapter switches to the image-to-video sibling endpoint
SUPPORTS_CANCEL = True
REFRESHES_URLS = False  # the output JSON is stored once; its URL never changes
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("internal_error", "Internal error")
CONTENT_REFUSAL = (
    "content_policy_violation",
    "The content could not be processed because it was flagged by a content checker.",
)

Check = Callable[[Any], tuple[str, str] | None]  # -> (type, msg) when invalid


def _literal(*allowed: Any) -> Check:
    def check(value: Any) -> tuple[str, str] | None:
        if value in allowed and type(value) is type(allowed[0]):
            return None
        shown = " or ".join(repr(a) if isinstance(a, str) else str(a) for a in allowed)
        return "literal_error", f"Input should be {shown}"

    return check


def _string(value: Any) -> tuple[str, str] | None:
    return None if isinstance(value, str) else ("string_type", "Input should be a valid string")


def _integer(value: Any) -> tuple[str, str] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return "int_type", "Input should be a valid integer"


def _boolean(value: Any) -> tuple[str, str] | None:
    return None if isinstance(value, bool) else ("bool_type", "Input should be a valid boolean")


def _number(value: Any) -> tuple[str, str] | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return None
    return "float_type", "Input should be a valid number"


def _image(value: Any) -> tuple[str, str] | None:
    # URLs or data: URIs [SDK encode_image].
    if isinstance(value, str) and value.startswith(("https://", "http://", "data:image/")):
        return None
    return "url_parsing", "Input should be a valid URL or data URI"


_KLING_T2V: dict[str, Check] = {
    "prompt": _string,
    "duration": _literal("5", "10"),
    "aspect_ratio": _literal("16:9", "9:16", "1:1"),
    "negative_prompt": _string,
    "cfg_scale": _number,
}
# tail_image_url (the end frame): UNVERIFIED, like every schema here.
_KLING_I2V = {k: v for k, v in _KLING_T2V.items() if k != "aspect_ratio"} | {
    "image_url": _image,
    "tail_image_url": _image,
}
_HAILUO_T2V: dict[str, Check] = {
    "prompt": _string,
    "duration": _literal("6", "10"),
    "prompt_optimizer": _boolean,
}
# endpoint id -> (required fields, {field: check})
ENDPOINTS: dict[str, tuple[set[str], dict[str, Check]]] = {
    "fal-ai/kling-video/v2.1/master/text-to-video": ({"prompt"}, _KLING_T2V),
    "fal-ai/kling-video/v2.1/master/image-to-video": ({"prompt", "image_url"}, _KLING_I2V),
    "fal-ai/minimax/hailuo-02/standard/text-to-video": ({"prompt"}, _HAILUO_T2V),
    "fal-ai/minimax/hailuo-02/standard/image-to-video": (
        {"prompt", "image_url"},
        _HAILUO_T2V | {"image_url": _image},
    ),
    "fal-ai/veo3": (
        {"prompt"},
        {
            "prompt": _string,
            "duration": _literal("4s", "6s", "8s"),
            "aspect_ratio": _literal("16:9", "9:16"),
            "resolution": _literal("720p", "1080p"),
            "negative_prompt": _string,
            "seed": _integer,
            "generate_audio": _boolean,
        },
    ),
    "acme/video-model": (
        {"prompt"},
        {
            "prompt": _string,
            "duration": _string,
            "aspect_ratio": _string,
            "seed": _integer,
            "negative_prompt": _string,
            "image_url": _image,
        },
    ),
}


def app_of(endpoint: str) -> str:
    parts = endpoint.split("/")
    return "/".join(parts[: 3 if parts[0] in ("workflows", "comfy") else 2])


def _detail(status: int, detail: Any, error_type: str | None = None) -> JSONResponse:
    headers = {"x-fal-request-id": str(uuid.uuid4())}
    if error_type:
        headers["x-fal-error-type"] = error_type
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class FakeFal(FakeUpstream):
    name = "fal"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []  # (endpoint, body) of accepted submits
        self.status_reads = 0
        self.result_reads = 0
        self.expired_downloads = 0
        self._outputs: dict[str, str] = {}

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        merged = {k.lower(): v for k, v in headers.items()}
        if status in (502, 503, 504):
            # From the ingress in front of fal: no x-fal-request-id, not JSON [SDK retry rule].
            return InjectedError(status, f"<html><body>{status}</body></html>", merged)
        fal = {"x-fal-request-id": str(uuid.uuid4()), **merged}
        if status == 401:
            return InjectedError(401, {"detail": "Invalid API key"}, fal)
        if status == 429:
            fal.setdefault("x-fal-error-type", "rate_limited")
            return InjectedError(429, {"detail": "Too many concurrent requests"}, fal)
        return InjectedError(status, {"detail": f"injected {status}"}, fal)

    def routes(self) -> list[Route]:
        return [
            Route("/{app:path}/requests/{request_id}/status", self._status, methods=["GET"]),
            Route("/{app:path}/requests/{request_id}/cancel", self._cancel, methods=["PUT"]),
            Route("/{app:path}/requests/{request_id}", self._result, methods=["GET"]),
            Route("/{endpoint:path}", self._submit, methods=["POST"]),
        ]

    # --- helpers -------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Key {FAL_KEY}"

    def _unauthorized(self) -> Response:
        return _detail(401, "Invalid API key")

    def _task(self, request: Request) -> FakeTask | None:
        task = self.tasks.get(request.path_params["request_id"])
        # Only {owner}/{app} reaches the request; the endpoint's subpath does not.
        if task is None or task.request["app"] != request.path_params["app"]:
            return None
        return task

    def _urls(self, task: FakeTask) -> dict[str, str]:
        base = f"{self.base_url}/{task.request['app']}/requests/{task.id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _output_url(self, task: FakeTask) -> str:
        if task.id not in self._outputs:
            self._outputs[task.id] = self.result_url(task)  # stored once, on completion
        return self._outputs[task.id]

    def _video(self, task: FakeTask) -> dict[str, Any]:
        return {
            "url": self._output_url(task),
            "content_type": "video/mp4",
            "file_name": "output.mp4",
            "file_size": len(self.video),
        }

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        ids = {"request_id": task.id, "gateway_request_id": task.id}
        if task.state == "succeeded":
            return {**ids, "status": "OK", "payload": {"video": self._video(task)}}
        error = task.error_message or "Request was cancelled"
        return {**ids, "status": "ERROR", "error": error, "payload": None}

    def callback_wanted(self, task: FakeTask) -> bool:
        return task.state in TERMINAL_TASK_STATES  # fal calls back only when it ends

    def _validate(self, endpoint: str, body: Any) -> Response | None:
        if not isinstance(body, dict):
            return _detail(422, [{"loc": ["body"], "msg": "Input should be a valid dictionary",
                                  "type": "dict_type"}])  # fmt: skip
        required, checks = ENDPOINTS[endpoint]
        errors = [
            {"loc": ["body", name], "msg": "Field required", "type": "missing", "input": body}
            for name in sorted(required - set(body))
        ]
        for name, value in body.items():
            check = checks.get(name)
            if check is None:
                # The fake's own strictness (extra="forbid"): a misnamed or unsupported
                # input shows as a 422 instead of being dropped silently.
                msg = "Extra inputs are not permitted"
                errors.append({"loc": ["body", name], "msg": msg, "type": "extra_forbidden",
                               "input": value})  # fmt: skip
                continue
            problem = check(value)
            if problem:
                kind, msg = problem
                errors.append({"loc": ["body", name], "msg": msg, "type": kind, "input": value})
        return _detail(422, errors) if errors else None

    @staticmethod
    def _logs(task: FakeTask) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC).isoformat()
        return [
            {"message": f"step {i}", "level": "INFO", "source": "user", "timestamp": now}
            for i in range(task.polls)
        ]

    # --- endpoints -------------------------------------------------------------------

    async def _submit(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        injected = self.check_create()
        if injected is not None:
            return injected
        endpoint = request.path_params["endpoint"].strip("/")
        if endpoint not in ENDPOINTS:
            return _detail(404, f"Application '{endpoint}' not found", "application_not_found")
        try:
            body = await request.json()
        except ValueError:
            return _detail(400, "Invalid JSON body")
        refused = self._validate(endpoint, body)
        if refused is not None:
            return refused
        webhook = request.query_params.get("fal_webhook")
        if webhook is not None and not is_http_url(webhook):
            return _detail(422, "fal_webhook must be an http(s) URL")
        self.requests.append({"endpoint": endpoint, "body": body})
        task = self.accept(
            {"endpoint": endpoint, "app": app_of(endpoint), "input": body},
            task_id=str(uuid.uuid4()),
        )
        answer = {"status": "IN_QUEUE", "request_id": task.id, **self._urls(task)}
        if webhook:
            self.remember_callback(task, webhook)
            answer["gateway_request_id"] = task.id
        return JSONResponse({**answer, "queue_position": 0})

    async def _status(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.status_reads += 1
        task = self._task(request)
        if task is None:
            return _detail(404, "Request not found")
        task = self.advance(task)
        with_logs = request.query_params.get("logs") == "1"
        body: dict[str, Any] = {"response_url": self._urls(task)["response_url"]}
        if task.state == "queued":
            body |= {"status": "IN_QUEUE", "queue_position": 0}
        elif task.state == "running":
            body |= {"status": "IN_PROGRESS", "logs": self._logs(task) if with_logs else None}
        else:
            body |= {
                "status": "COMPLETED",
                "logs": self._logs(task) if with_logs else None,
                "metrics": {"inference_time": 41.7} if task.state == "succeeded" else {},
            }
            if task.state == "succeeded":
                self._output_url(task)
            elif task.state == "failed":
                body |= {"error": task.error_message, "error_type": task.error_code}
            else:  # cancelled: how fal shows it is UNVERIFIED
                body |= {"error": "Request was cancelled", "error_type": "request_cancelled"}
        return JSONResponse(body)

    async def _result(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        self.result_reads += 1
        task = self._task(request)
        if task is None:
            return _detail(404, "Request not found")
        if task.state in ("queued", "running"):
            return _detail(400, "Request is still in progress")
        if task.state != "succeeded":
            message = task.error_message or "Request was cancelled"
            return _detail(422, message, task.error_code or "request_cancelled")
        return JSONResponse({"video": self._video(task)}, headers={"x-fal-request-id": task.id})

    async def _cancel(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._unauthorized()
        task = self._task(request)
        if task is None:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        if task.state in ("succeeded", "failed"):
            return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
        self.cancel(task)
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)

    async def _serve_file(self, request: Request) -> Response:
        if self.expire_urls:
            self.expired_downloads += 1
            return Response("<Error><Code>AccessDenied</Code></Error>", status_code=403)
        return await super()._serve_file(request)
