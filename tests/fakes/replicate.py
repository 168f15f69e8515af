"""A fake Replicate predictions API (reference section 6), as ``replicate`` 1.0.7 describes it.

Served under ``/v1`` like the real base URL. Covers: Bearer auth; ``POST
/v1/models/{owner}/{name}/predictions`` ``{input}`` and ``POST /v1/predictions``
``{version, input}``, each checking ``input`` against a small per-model schema (422 with
Replicate's "Input validation failed" body); ``Prefer: wait`` (the create answers with the
prediction as far as it got); the prediction object (``starting`` -> ``processing`` with
tqdm lines in ``logs`` -> ``succeeded`` with ``output`` | ``failed`` with ``error`` |
``canceled``; ``aborted`` when ``fail_tasks`` has the code "aborted"); ``GET
/v1/predictions/{id}``; ``POST /v1/predictions/{id}/cancel``; RFC 7807 error bodies; 429
with ``Retry-After``.

Output URLs are set once, when the prediction succeeds, and never change (Replicate cannot
re-issue them). ``expire_urls`` means the 1 h retention has passed: every output file
then answers 404, whatever ``refresh_urls()`` did.

UNVERIFIED against the live service: the exact titles/details of error bodies, the 404
for deleted files, the schema of ``kwaivgi/kling-v2.1`` (its ``end_image``, the last
frame, needs ``start_image`` here), and ``acme/text-to-video``, which is made up to
exercise the generic input mapping and a list-shaped ``output``. Extra input fields are
ignored, as Cog's schemas allow (UNVERIFIED).

Webhooks: ``webhook`` (an http(s) URL) and ``webhook_events_filter`` (a subset of start,
output, logs, completed; all of them when absent) are checked and remembered at create;
``finish()`` POSTs the prediction there when ``completed`` is wanted, signed with
Standard Webhooks headers under ``WEBHOOK_SECRET``. Not covered: deployments,
``/v1/files``, list, streaming, ``Cancel-After``, ``GET /v1/webhooks/default/secret``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from standardwebhooks import Webhook
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

API_TOKEN = "r8_fake_replicate_token_0123"
# What GET /v1/webhooks/default/secret would answer; webhooks are signed with it.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"fake-replicate-webhook-secret-32b").decode()
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
BASE_PATH = "/v1"
DEPLOYMENT: dict[str, Any] = {
    "provider": "replicate",
    "credentials": {"api_key": API_TOKEN},
    "options": {"poll_s": 0.1},
}
UPSTREAM_MODEL = "minimax/hailuo-2.3"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = True
REFRESHES_URLS = False  # outputs are deleted after 1 h; nothing re-issues them
SECONDS = 6
SIZE = "1280x720"  # 720p asks hailuo-2.3 for 768p, the nearest it makes
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("x", "CUDA out of memory. Tried to allocate 2.00 GiB")
CONTENT_REFUSAL = ("E005", "The input or output was flagged as sensitive. (E005)")

Check = Callable[[Any], str | None]


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else f"Invalid type. Expected: string, given: {_t(value)}"


def _integer(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"Invalid type. Expected: integer, given: {_t(value)}"


def _boolean(value: Any) -> str | None:
    return (
        None if isinstance(value, bool) else f"Invalid type. Expected: boolean, given: {_t(value)}"
    )


def _uri(value: Any) -> str | None:
    # File inputs are an http(s) URL or a data: URI [SDK file_encoding_strategy].
    if isinstance(value, str) and value.startswith(("https://", "http://", "data:")):
        return None
    return "Does not match format 'uri'"


def _enum(*allowed: Any) -> Check:
    def check(value: Any) -> str | None:
        kind = _integer if isinstance(allowed[0], int) else _string
        wrong_type = kind(value)
        if wrong_type:
            return wrong_type
        if value in allowed:
            return None
        return f"must be one of the following: {', '.join(map(str, allowed))}"

    return check


def _t(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), "null"
    )


# model -> (required inputs, {input: check}, output is a list)
SCHEMAS: dict[str, tuple[set[str], dict[str, Check], bool]] = {
    "minimax/hailuo-2.3": (
        {"prompt"},
        {
            "prompt": _string,
            "duration": _enum(6, 10),
            "resolution": _enum("768p", "1080p"),
            "first_frame_image": _uri,
            "prompt_optimizer": _boolean,
        },
        False,
    ),
    "kwaivgi/kling-v2.1": (
        {"prompt"},
        {
            "prompt": _string,
            "duration": _enum(5, 10),
            "aspect_ratio": _enum("16:9", "9:16", "1:1"),
            "mode": _enum("standard", "pro"),
            "start_image": _uri,
            # The end frame; needs start_image (UNVERIFIED, like this whole schema).
            "end_image": _uri,
            "negative_prompt": _string,
        },
        False,
    ),
    "acme/text-to-video": (
        {"prompt"},
        {
            "prompt": _string,
            "duration": _integer,
            "aspect_ratio": _string,
            "seed": _integer,
            "negative_prompt": _string,
            "image": _uri,
        },
        True,
    ),
}
# input -> the input it cannot go without (the Kling end frame needs a start frame).
_DEPENDS = {"end_image": "start_image"}
VERSIONS = {hashlib.sha256(name.encode()).hexdigest(): name for name in SCHEMAS}
_STATUS = {
    "queued": "starting",
    "running": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}


def _problem(status: int, detail: str, title: str | None = None, **extra: Any) -> dict[str, Any]:
    title = title or HTTPStatus(status).phrase
    return {"type": None, "title": title, "status": status, "detail": detail, **extra}


def _error(status: int, detail: str, title: str | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(_problem(status, detail, title, **extra), status_code=status)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _prediction_id() -> str:
    # Replicate ids look like "gm3qorzdhgbfurvjtvhg6dckhu": 26 lowercase base32 characters.
    return base64.b32encode(secrets.token_bytes(17)).decode().lower()[:26]


class FakeReplicate(FakeUpstream):
    name = "replicate"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.create_headers: list[dict[str, str]] = []
        self.reads = 0
        self.expired_downloads = 0
        self._outputs: dict[str, Any] = {}
        # Prediction id -> its webhook_events_filter.
        self.webhook_events: dict[str, tuple[str, ...]] = {}

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        merged = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            merged = {"retry-after": "1", **merged}
            wait = merged["retry-after"]
            detail = f"Request was throttled. Your rate limit resets in ~{wait}s."
            return InjectedError(429, _problem(429, detail), merged)
        if status == 401:
            return InjectedError(401, self._unauthenticated_body(), merged)
        return InjectedError(status, _problem(status, f"injected {status}"), merged)

    def routes(self) -> list[Route]:
        p = BASE_PATH
        return [
            Route(f"{p}/models/{{owner}}/{{model}}/predictions", self._create, methods=["POST"]),
            Route(f"{p}/predictions", self._create, methods=["POST"]),
            Route(f"{p}/predictions/{{id}}", self._get, methods=["GET"]),
            Route(f"{p}/account", self._account, methods=["GET"]),
            Route(f"{p}/predictions/{{id}}/cancel", self._cancel, methods=["POST"]),
        ]

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def _unauthenticated_body() -> dict[str, Any]:
        return _problem(401, "You did not pass a valid authentication token", "Unauthenticated")

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {API_TOKEN}"

    def _validate(self, model: str, inputs: Any) -> Response | None:
        if not isinstance(inputs, dict):
            return _error(
                422, "- input: Invalid type. Expected: object\n", "Input validation failed"
            )
        required, checks, _ = SCHEMAS[model]
        problems = [(f"input.{name}", "is required") for name in sorted(required - set(inputs))]
        for name, needs in _DEPENDS.items():
            if name in inputs and name in checks and needs not in inputs:
                problems.append((f"input.{name}", f"{needs} is required with {name}"))
        for name, value in inputs.items():
            check = checks.get(name)
            problem = check(value) if check else None
            if problem:
                problems.append((f"input.{name}", problem))
        if not problems:
            return None
        return _error(
            422,
            "".join(f"- {where}: {what}\n" for where, what in problems),
            "Input validation failed",
            invalid_fields=[
                {"type": "invalid", "field": where, "description": what} for where, what in problems
            ],
        )

    def _prediction(self, task: FakeTask) -> dict[str, Any]:
        pid = task.id
        status = _STATUS[task.state]
        if task.state == "failed" and task.error_code == "aborted":
            status = "aborted"
        if task.state == "succeeded" and pid not in self._outputs:
            # Set once when the prediction finishes; later reads return the same value.
            url = self.result_url(task)
            self._outputs[pid] = [url] if SCHEMAS[task.request["model"]][2] else url
        base = f"{self.base_url}{BASE_PATH}/predictions/{pid}"
        return {
            "id": pid,
            "model": task.request["model"],
            "version": task.request["version"],
            "input": task.request["input"],
            "logs": self._logs(task),
            "output": self._outputs.get(pid) if task.state == "succeeded" else None,
            "data_removed": False,
            "error": task.error_message if status == "failed" else None,
            "status": status,
            "source": "api",
            "created_at": dt.datetime.fromtimestamp(task.created_at, dt.UTC).isoformat(),
            "started_at": _now() if status != "starting" else None,
            "completed_at": _now() if status in ("succeeded", "failed", "canceled") else None,
            "metrics": {"predict_time": 12.5} if status == "succeeded" else {},
            "urls": {
                "get": base,
                "cancel": f"{base}/cancel",
                "stream": f"{self.base_url}/_stream/{pid}",
                "web": f"https://replicate.com/p/{pid}",
            },
        }

    def callback_payload(self, task: FakeTask) -> dict[str, Any]:
        return self._prediction(task)

    def callback_headers(self, task: FakeTask, body: bytes) -> dict[str, str]:
        message_id = f"msg_{secrets.token_hex(12)}"
        now = dt.datetime.now(dt.UTC)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(WEBHOOK_SECRET).sign(message_id, now, body.decode()),
        }

    def callback_wanted(self, task: FakeTask) -> bool:
        events = self.webhook_events.get(task.id, WEBHOOK_EVENTS)
        if task.state in TERMINAL_TASK_STATES:
            return "completed" in events
        return bool({"start", "output", "logs"} & set(events))

    def _check_webhook(self, body: dict[str, Any]) -> Response | None:
        if "webhook" in body and not is_http_url(body["webhook"]):
            return _error(422, "- webhook: Does not match format 'uri'\n", "Invalid webhook")
        events = body.get("webhook_events_filter")
        if events is not None and (
            not isinstance(events, list) or not events or set(events) - set(WEBHOOK_EVENTS)
        ):
            return _error(
                422,
                "- webhook_events_filter: must be a list of start, output, logs, completed\n",
                "Invalid webhook_events_filter",
            )
        return None

    def _logs(self, task: FakeTask) -> str:
        if task.state == "queued":
            return ""
        total = 20
        done = total if task.state == "succeeded" else total * task.polls // self.polls_to_finish
        done = max(0, min(total, done))
        lines = ["Generating video..."]
        for step in sorted({total // 4, done}):
            pct = 100 * step // total
            bar = "█" * (pct // 10) + " " * (10 - pct // 10)
            lines.append(f"{pct:3d}%|{bar}| {step}/{total} [00:0{step % 10}<00:05,  2.00it/s]")
        return "\n".join(lines) + "\n"

    async def _serve_file(self, request: Request) -> Response:
        if self.expire_urls:
            # Past the 1 h retention the file is deleted; no URL will work again.
            self.expired_downloads += 1
            return Response("Not Found", status_code=404)
        return await super()._serve_file(request)

    # --- endpoints -------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(self._unauthenticated_body(), status_code=401)
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Invalid JSON in request body")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        if "owner" in request.path_params:
            model = f"{request.path_params['owner']}/{request.path_params['model']}"
            if model not in SCHEMAS:
                return _error(404, "The requested resource could not be found.")
            version = next(v for v, m in VERSIONS.items() if m == model)
        else:
            version = str(body.get("version", "")).rpartition(":")[2]
            if version not in VERSIONS:
                return _error(
                    422,
                    "The specified version does not exist (or perhaps you don't have "
                    "permission to use it?)",
                    "Invalid version or not permitted",
                )
            model = VERSIONS[version]
        refused = self._validate(model, body.get("input")) or self._check_webhook(body)
        if refused is not None:
            return refused
        self.requests.append(body)
        self.create_headers.append({k.lower(): v for k, v in request.headers.items()})
        task = self.accept(
            {"model": model, "version": version, "input": body["input"]}, task_id=_prediction_id()
        )
        if body.get("webhook"):
            events = body.get("webhook_events_filter") or WEBHOOK_EVENTS
            self.webhook_events[task.id] = tuple(events)
            self.remember_callback(task, body["webhook"])
        if request.headers.get("prefer", "").startswith("wait"):
            # Sync mode: hold the response while the prediction runs (here: a few steps).
            for _ in range(min(self.polls_to_finish, 5)):
                self.advance(task)
        return JSONResponse(self._prediction(task), status_code=201)

    async def _account(self, request: Request) -> Response:
        """``GET /v1/account``: the SDK's ``Account`` (type, username, name)."""
        if not self._authorized(request):
            return JSONResponse(self._unauthenticated_body(), status_code=401)
        return JSONResponse(
            {"type": "organization", "username": "vidgate-test", "name": "vidgate test"}
        )

    async def _get(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(self._unauthenticated_body(), status_code=401)
        self.reads += 1
        task = self.tasks.get(request.path_params["id"])
        if task is None:
            return _error(404, "Not found.")
        return JSONResponse(self._prediction(self.advance(task)))

    async def _cancel(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse(self._unauthenticated_body(), status_code=401)
        task = self.tasks.get(request.path_params["id"])
        if task is None:
            return _error(404, "Not found.")
        self.cancel(task)
        return JSONResponse(self._prediction(task))
