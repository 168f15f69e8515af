"""A fake Alibaba Cloud Model Studio (DashScope) video-synthesis API, for Wan
(reference section 11; paths, headers and bodies as the official ``dashscope`` package
2.0.2 sends and reads them).

- ``POST /api/v1/services/aigc/video-generation/video-synthesis``: Bearer auth
  (``InvalidApiKey``, 401, otherwise); ``X-DashScope-Async: enable`` required (403
  ``AccessDenied`` "current user api does not support synchronous calls" without it);
  ``{model, input, parameters}``. wan2.5/2.6 (``MODELS``): ``input.prompt``,
  ``input.negative_prompt``, ``input.img_url`` (i2v models only, required there: an
  http(s) URL or a base64 ``data:image/...`` URI), ``parameters.size`` ("W*H", t2v) or
  ``parameters.resolution`` ("720P", i2v). wan2.7: ``input.media`` ``[{type, url}]``
  (i2v: one first_frame required, one last_frame optional; r2v: 1-5 reference_image
  items and no frames; http(s) URLs only) and ``parameters.resolution`` +
  ``parameters.ratio`` (t2v and r2v). ``duration``, ``seed``
  (0-2147483647), ``prompt_extend``, ``watermark``, ``audio``, ``shot_type`` (2.6).
  Answers ``{output: {task_id, task_status: PENDING}, request_id}``; a bad value is 400
  ``InvalidParameter`` naming the parameter; an unknown model 400 "Model not exist.".
- ``GET /api/v1/tasks/{task_id}``: ``PENDING`` -> ``RUNNING`` -> ``SUCCEEDED`` with
  ``output.video_url`` and ``usage``; ``FAILED`` with ``output.code`` / ``message``; a
  task id it does not hold (or ``forget()``-ed: ids last 24 hours) is HTTP 200 with
  ``task_status: UNKNOWN``, as the SDK describes.
- ``POST /api/v1/tasks/{task_id}/cancel``: PENDING -> CANCELED; anything else 400
  ``UnsupportedOperation`` (the code and message of that refusal are UNVERIFIED).

``video_url`` is fixed per task (valid about 24 h). ``expire_urls`` means that time has
passed: every result URL answers 403 and no read hands out a new one.

Checked on the wire: the official SDK (dashscope 2.0.2), pointed here with
``DASHSCOPE_HTTP_BASE_URL``, runs ``VideoSynthesis.async_call/fetch/wait/cancel`` (1.x)
and ``client.videos.jobs.create/wait`` (2.0, wan2.7 media) unchanged, and reads a wrong
key and a bad duration as DashScope errors.

Stricter than the service where it cannot be checked: unknown ``input`` and
``parameters`` keys are refused (the service may ignore them), so a misspelt field
fails here. The per-model tables are UNVERIFIED as the adapter's are.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError

API_KEY = "sk-dashscope-test-0123456789"
BASE_PATH = "/api/v1"
DEPLOYMENT: dict[str, Any] = {
    "provider": "dashscope",
    "credentials": {"api_key": API_KEY},
    "options": {},
}
UPSTREAM_MODEL = "wan2.6-t2v"
# Wan's text-to-video models take no image: image-to-video is its own model
# (wan2.6-i2v), tested in tests/providers/test_dashscope.py.
SUPPORTS_IMAGE = False
SUPPORTS_CANCEL = True
REFRESHES_URLS = False
SECONDS = 5
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("InternalError.Algo", "An internal error occurred in the algorithm.")
CONTENT_REFUSAL = (
    "DataInspectionFailed",
    "Output data may contain inappropriate content.",
)

_SIZES = {
    "480P": {"832*480", "480*832", "624*624"},
    "720P": {"1280*720", "720*1280", "960*960", "1088*832", "832*1088"},
    "1080P": {"1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632"},
}
_RATIOS = {"16:9", "9:16", "1:1", "4:3", "3:4"}


@dataclass(frozen=True)
class Model:
    i2v: bool
    durations: frozenset[int]
    resolutions: frozenset[str]
    max_prompt: int
    media: bool = False
    # Reference-to-video: how many reference items it takes instead of frames.
    references: int = 0


def _ints(low: int, high: int) -> frozenset[int]:
    return frozenset(range(low, high + 1))


_HD = frozenset({"720P", "1080P"})
MODELS: dict[str, Model] = {
    "wan2.5-t2v-preview": Model(False, frozenset({5, 10}), frozenset(_SIZES), 2000),
    "wan2.5-i2v-preview": Model(True, frozenset({5, 10}), frozenset(_SIZES), 2000),
    "wan2.6-t2v": Model(False, frozenset({5, 10, 15}), _HD, 1500),
    "wan2.6-i2v": Model(True, frozenset({5, 10, 15}), _HD, 1500),
    "wan2.6-i2v-flash": Model(True, _ints(5, 15), _HD, 1500),
    "wan2.7-t2v": Model(False, _ints(2, 15), _HD, 5000, media=True),
    "wan2.7-i2v": Model(True, _ints(2, 15), _HD, 5000, media=True),
    "wan2.7-r2v": Model(False, _ints(2, 15), _HD, 5000, media=True, references=5),
}
# The 1.x SDK sends on every call extend_prompt (prompt_extend's deprecated spelling)
# and function ("video-synthesis", from its module name).
_INPUT_KEYS = {
    "prompt",
    "negative_prompt",
    "img_url",
    "media",
    "audio_url",
    "extend_prompt",
    "function",
}
_PARAMETER_KEYS = {
    "size",
    "resolution",
    "ratio",
    "duration",
    "seed",
    "prompt_extend",
    "watermark",
    "audio",
    "shot_type",
}
_MEDIA_TYPES = {"first_frame", "last_frame", "driving_audio", "first_clip"}
_REFERENCE_TYPES = {"reference_image", "reference_video"}
_DATA_URI = re.compile(r"data:image/(png|jpeg|jpg|webp|bmp);base64,(.+)", re.S)
_STATUS = {
    "queued": "PENDING",
    "running": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "cancelled": "CANCELED",
}


def dashscope_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> InjectedError:
    body = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    return InjectedError(status, body, headers or {})


class _Invalid(Exception):
    def __init__(self, param: str, why: str) -> None:
        super().__init__(why)
        self.param = param
        self.why = why


class FakeDashScope(FakeUpstream):
    name = "dashscope"

    def __init__(self) -> None:
        super().__init__()
        self.api_key = API_KEY
        self.last_body: dict[str, Any] | None = None
        self.last_headers: dict[str, str] = {}
        self.reads = 0
        self.expired_downloads = 0
        # Task ids past their 24 hours: read as UNKNOWN.
        self.forgotten: set[str] = set()
        self._pinned: dict[str, str] = {}

    def forget(self, task_id: str) -> None:
        self.forgotten.add(task_id)

    def refuse_next_create(self, status: int, code: str, message: str) -> None:
        """The next create answers this DashScope error (a code error_for does not make)."""
        self._next_create_errors.append(dashscope_error(status, code, message))

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        if status == 401:
            return self._unauthorized(headers)
        if status == 429:
            return dashscope_error(
                429,
                "Throttling.RateQuota",
                "Requests rate limit exceeded, please try again later.",
                headers,
            )
        if status >= 500:
            return dashscope_error(
                status,
                "InternalError",
                "An internal error has occured, please try again later.",
                headers,
            )
        return dashscope_error(status, "InvalidParameter", f"Injected error {status}.", headers)

    def _unauthorized(self, headers: dict[str, str] | None = None) -> InjectedError:
        return dashscope_error(401, "InvalidApiKey", "Invalid API-key provided.", headers)

    def _auth(self, request: Request) -> Response | None:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or secret.strip() != self.api_key:
            return self._unauthorized().response()
        return None

    def routes(self) -> list[Route]:
        p = BASE_PATH
        return [
            Route(
                f"{p}/services/aigc/video-generation/video-synthesis",
                self._create,
                methods=["POST"],
            ),
            Route(f"{p}/tasks/{{task_id}}", self._get, methods=["GET"]),
            Route(f"{p}/tasks/{{task_id}}/cancel", self._cancel, methods=["POST"]),
        ]

    # --- create ----------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        if request.headers.get("x-dashscope-async") != "enable":
            return dashscope_error(
                403, "AccessDenied", "current user api does not support synchronous calls"
            ).response()
        injected = self.check_create()
        if injected is not None:
            return injected
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self._invalid(_Invalid("body", "the request body is not JSON"))
        if not isinstance(body, dict):
            return self._invalid(_Invalid("body", "the request body is not an object"))
        self.last_body = body
        self.last_headers = {k.lower(): v for k, v in request.headers.items()}
        model = MODELS.get(str(body.get("model")))
        if model is None:
            return dashscope_error(400, "InvalidParameter", "Model not exist.").response()
        try:
            _check(body, model)
        except _Invalid as exc:
            return self._invalid(exc)
        task = self.accept(body, task_id=str(uuid.uuid4()))
        return JSONResponse(
            {
                "request_id": str(uuid.uuid4()),
                "output": {"task_id": task.id, "task_status": "PENDING"},
            }
        )

    def _invalid(self, exc: _Invalid) -> Response:
        return dashscope_error(
            400, "InvalidParameter", f"The parameter {exc.param} is invalid: {exc.why}."
        ).response()

    # --- status ----------------------------------------------------------------

    async def _get(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        self.reads += 1
        task_id = request.path_params["task_id"]
        task = self.tasks.get(task_id)
        if task is None or task_id in self.forgotten:
            output: dict[str, Any] = {"task_id": task_id, "task_status": "UNKNOWN"}
            return JSONResponse({"request_id": str(uuid.uuid4()), "output": output})
        return JSONResponse(self._render(self.advance(task)))

    def _render(self, task: FakeTask) -> dict[str, Any]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.000", time.localtime(task.created_at))
        output: dict[str, Any] = {
            "task_id": task.id,
            "task_status": _STATUS[task.state],
            "submit_time": stamp,
        }
        view: dict[str, Any] = {"request_id": str(uuid.uuid4()), "output": output}
        if task.state in ("running", "succeeded", "failed"):
            output["scheduled_time"] = stamp
        if task.state == "failed":
            output["end_time"] = time.strftime("%Y-%m-%d %H:%M:%S.000")
            output["code"] = task.error_code
            output["message"] = task.error_message
        if task.state == "succeeded":
            output["end_time"] = time.strftime("%Y-%m-%d %H:%M:%S.000")
            output["orig_prompt"] = task.request["input"].get("prompt", "")
            output["video_url"] = self._pinned.setdefault(task.id, self.result_url(task))
            parameters = task.request.get("parameters", {})
            view["usage"] = {
                "video_duration": parameters.get("duration", 5),
                "video_ratio": parameters.get("size", parameters.get("ratio", "1920*1080")),
                "video_count": 1,
            }
        return view

    async def _serve_file(self, request: Request) -> Response:
        if self.expire_urls:
            self.expired_downloads += 1
            return Response(
                "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
                status_code=403,
                media_type="application/xml",
            )
        return await super()._serve_file(request)

    # --- cancel ----------------------------------------------------------------

    async def _cancel(self, request: Request) -> Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        task_id = request.path_params["task_id"]
        task = self.tasks.get(task_id)
        if task is None or task_id in self.forgotten or task.state != "queued":
            return dashscope_error(
                400,
                "UnsupportedOperation",
                "Failed to cancel the task, please confirm if the task is in PENDING status.",
            ).response()
        self.cancel(task)
        return JSONResponse({"request_id": str(uuid.uuid4())})


def _check(body: dict[str, Any], model: Model) -> None:
    unknown = sorted(set(body) - {"model", "input", "parameters"})
    if unknown:
        raise _Invalid(unknown[0], "unknown field")
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        raise _Invalid("input", "must be an object")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _Invalid("parameters", "must be an object")
    for where, given, known in (
        ("input", inputs, _INPUT_KEYS),
        ("parameters", parameters, _PARAMETER_KEYS),
    ):
        extra = sorted(set(given) - known)
        if extra:
            raise _Invalid(f"{where}.{extra[0]}", "unknown field")
    _check_input(inputs, model)
    _check_parameters(parameters, model)


def _check_input(inputs: dict[str, Any], model: Model) -> None:
    prompt = inputs.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise _Invalid("input.prompt", "must be a string")
    if not model.i2v and not (prompt or "").strip():
        raise _Invalid("input.prompt", "is required")
    if prompt is not None and len(prompt) > model.max_prompt:
        raise _Invalid("input.prompt", f"must be at most {model.max_prompt} characters")
    negative = inputs.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > 500):
        raise _Invalid("input.negative_prompt", "must be a string of at most 500 characters")
    if model.media:
        if "img_url" in inputs:
            raise _Invalid("input.img_url", "is not supported by this model, use media")
        _check_media(inputs.get("media"), model)
        return
    if "media" in inputs:
        raise _Invalid("input.media", "is not supported by this model")
    if model.i2v:
        _check_image(inputs.get("img_url"), "input.img_url", data_uri=True)
    elif "img_url" in inputs:
        raise _Invalid("input.img_url", "is not supported by a text-to-video model")


def _check_media(media: Any, model: Model) -> None:
    if media is None and not model.i2v and not model.references:
        return
    if not isinstance(media, list) or not media:
        raise _Invalid("input.media", "must be a non-empty list")
    if not model.i2v and not model.references:
        raise _Invalid("input.media", "is not supported by a text-to-video model")
    types = _REFERENCE_TYPES if model.references else _MEDIA_TYPES
    kinds: list[str] = []
    for item in media:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in types:
            raise _Invalid("input.media.type", f"must be one of {sorted(types)}")
        assert isinstance(item, dict)
        _check_image(item.get("url"), "input.media.url", data_uri=False)
        kinds.append(str(kind))
    if model.references:
        if len(kinds) > model.references:
            raise _Invalid("input.media", f"at most {model.references} reference items")
        return
    for kind in _MEDIA_TYPES:
        if kinds.count(kind) > 1:
            raise _Invalid("input.media", f"at most one {kind}")
    if "first_frame" not in kinds and "first_clip" not in kinds:
        raise _Invalid("input.media", "needs a first_frame or a first_clip")


def _check_image(url: Any, param: str, *, data_uri: bool) -> None:
    if not isinstance(url, str) or not url:
        raise _Invalid(param, "is required")
    if url.startswith(("https://", "http://")):
        return
    match = _DATA_URI.fullmatch(url) if data_uri else None
    if match is None:
        allowed = "an http(s) URL" + (" or data:image/<format>;base64,<data>" if data_uri else "")
        raise _Invalid(param, f"must be {allowed}")
    try:
        base64.b64decode(match[2], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _Invalid(param, "invalid base64") from exc


def _check_parameters(parameters: dict[str, Any], model: Model) -> None:
    size, resolution = parameters.get("size"), parameters.get("resolution")
    if model.media or model.i2v:
        if size is not None:
            raise _Invalid("parameters.size", "is not supported by this model, use resolution")
    elif resolution is not None:
        raise _Invalid("parameters.resolution", "is not supported by this model, use size")
    if size is not None:
        allowed = set().union(*(_SIZES[r] for r in model.resolutions))
        if size not in allowed:
            raise _Invalid("parameters.size", f"must be one of {sorted(allowed)}")
    if resolution is not None and resolution not in model.resolutions:
        raise _Invalid("parameters.resolution", f"must be one of {sorted(model.resolutions)}")
    if "ratio" in parameters:
        if not model.media or model.i2v:
            raise _Invalid("parameters.ratio", "is not supported by this model")
        if parameters["ratio"] not in _RATIOS:
            raise _Invalid("parameters.ratio", f"must be one of {sorted(_RATIOS)}")
    duration = parameters.get("duration", 5)
    if not _is_int(duration) or duration not in model.durations:
        raise _Invalid("parameters.duration", f"must be one of {sorted(model.durations)}")
    seed = parameters.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed <= 2_147_483_647:
        raise _Invalid("parameters.seed", "must be an integer in [0, 2147483647]")
    for flag in ("prompt_extend", "watermark", "audio"):
        if flag in parameters and not isinstance(parameters[flag], bool):
            raise _Invalid(f"parameters.{flag}", "must be a boolean")
    if parameters.get("shot_type", "single") not in ("single", "multi"):
        raise _Invalid("parameters.shot_type", "must be single or multi")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
