"""A fake Gemini API (``generativelanguage.googleapis.com``) with both video shapes.

- Interactions (reference 2.3): ``POST /v1/interactions`` (``/v1beta`` too, as 3P guides
  show), ``GET /v1/interactions/{id}``, ``POST /v1/interactions/{id}/cancel``; statuses
  queued -> in_progress -> completed | failed | cancelled; the video in the last
  ``model_output`` step as a ``uri`` (harness URL, so expiry and refresh work) or inline
  ``data``; failures in ``errors[]``. ``gemini-omni-flash-preview`` is shut down (404).
- Legacy Veo (reference 2.2): ``POST /v1beta/models/{m}:predictLongRunning``,
  ``GET /v1beta/models/{m}/operations/{id}``, ``GET /v1beta/files/{id}:download?alt=media``.
  Shut down as the live API is (404 "is no longer available") unless
  ``legacy_veo_available`` is set; files past retention (``expire_urls``) answer 403 and
  the operation keeps handing out the same URI.

Inputs are checked as the SDK types describe them: ``input`` is a string, or a list of
steps as google-genai 3.x sends it, ``[{"type": "user_input", "content": [blocks]}]``
(the SDK rewrites a bare list of content blocks into that and calls the bare list
legacy; this fake refuses the bare list, so a test sees the current form); content
blocks are text / image / audio / video / document; an image block has ``data``
(base64) or ``uri`` and a ``mime_type`` from the SDK's ``ImageContentMimeType`` (eight
types, GIF, BMP and TIFF among them); a ``generation_config.video_config.task`` is one
of the SDK's tasks, and the fake holds ``image_to_video`` to at most 2 images (first,
last), ``reference_to_video`` to 1-3 images and no video, and any request to at most 3
images (3P capabilities, UNVERIFIED). Legacy Veo: ``image``/``lastFrame`` are
``{bytesBase64Encoded, mimeType}`` (no ``gcsUri``; JPEG or PNG, as on Vertex:
UNVERIFIED for this API), ``lastFrame`` needs ``image``, ``referenceImages`` are 1-3
ASSET ``{image, referenceType}`` (the SDK refuses STYLE on this API), never with image,
lastFrame or video, and only at 8 s (earlier Google docs, UNVERIFIED). The 400 wording
is the fake's own.

Auth as Google does it: the key in ``x-goog-api-key`` (or ``?key=``); a missing key is a
403, a wrong one a 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID (from
experience with the live API; not in the reference). A 429 carries RetryInfo in the body.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError

API_KEY = "gemini-test-key"
DEPLOYMENT: dict[str, Any] = {
    "provider": "gemini",
    "credentials": {"api_key": API_KEY},
    "options": {"poll_interval_s": 0.2},
}
UPSTREAM_MODEL = "gemini-omni-1.1-flash"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = True
# UNVERIFIED: whether a re-read interaction hands out a fresh URI.
REFRESHES_URLS = True
SECONDS = 8
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("INTERNAL", "An internal error has occurred.")
CONTENT_REFUSAL = ("SAFETY", "The output was blocked by safety filters.")

OMNI_MODELS = {"gemini-omni-1.1-flash": (3, 10), "gemini-omni-1.2-flash": (3, 15)}
VEO_MODELS = {"veo-3.1-generate-preview", "veo-3.1-fast-generate-preview"}
RETIRED = {"gemini-omni-flash-preview", "veo-3.0-generate-001", "veo-2.0-generate-001"}
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
_OMNI_STATUS = {"queued": "queued", "running": "in_progress", "succeeded": "completed",
                "failed": "failed", "cancelled": "cancelled"}  # fmt: skip


def google_error(
    status: int, message: str, details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGemini(FakeUpstream):
    name = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.legacy_veo_available = False
        self.rai_failures = False
        self.delivery_seen: list[str] = []

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        error: dict[str, Any] = {
            "code": status,
            "message": f"injected {status}",
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
        if status == 429:
            error["message"] = "You exceeded your current quota, please check your plan."
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
            ]
        return InjectedError(status, {"error": error}, headers)

    def _unauthorized(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if key == API_KEY:
            return None
        if not key:
            return google_error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to "
                "call this API.",
            )
        return google_error(
            400,
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        )

    async def list_models(self, request: Request) -> Response:
        """``GET /v1beta/models``: the models the key may use, a page at a time."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        size = int(request.query_params.get("pageSize") or 50)
        models = [
            {"name": f"models/{m}", "supportedGenerationMethods": ["predictLongRunning"]}
            for m in sorted(VEO_MODELS)
        ][:size]
        return JSONResponse({"models": models})

    # --- Interactions -------------------------------------------------------------

    async def create_interaction(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        injected = self.check_create()
        if injected is not None:
            return injected
        body = await request.json()
        model = body.get("model") if isinstance(body, dict) else None
        if model in RETIRED:
            return google_error(404, f"models/{model} is no longer available.")
        if model not in OMNI_MODELS:
            return google_error(404, f"models/{model} is not found for API version v1.")
        invalid = _invalid_interaction(body, OMNI_MODELS[model])
        if invalid:
            return google_error(400, invalid)
        self.requests.append(body)
        task = self.accept(body, task_id=f"v1_{secrets.token_hex(10)}")
        return JSONResponse(self._interaction(task))

    def _interaction(self, task: FakeTask) -> dict[str, Any]:
        body = task.request
        out: dict[str, Any] = {
            "id": task.id,
            "model": body["model"],
            "status": _OMNI_STATUS[task.state],
            "created": dt.datetime.fromtimestamp(task.created_at, dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "updated": _now(),
            "response_modalities": ["video"],
        }
        given = body["input"]
        steps: list[dict[str, Any]] = (
            [{"type": "user_input", "content": [{"type": "text", "text": given}]}]
            if isinstance(given, str)
            else list(given)
        )
        if task.state == "succeeded":
            video: dict[str, Any] = {"type": "video", "mime_type": "video/mp4"}
            if body["response_format"].get("delivery") == "inline":
                video["data"] = base64.b64encode(self.video).decode()
            else:
                video["uri"] = self.result_url(task)
            steps.append({"type": "model_output", "content": [video]})
        if task.state == "failed":
            out["errors"] = [{"code": task.error_code, "message": task.error_message}]
        out["steps"] = steps
        return out

    async def get_interaction(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["interaction_id"])
        if task is None or "model" not in task.request:
            return google_error(404, "Interaction not found.")
        self.advance(task)
        return JSONResponse(self._interaction(task))

    async def cancel_interaction(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        task = self.tasks.get(request.path_params["interaction_id"])
        if task is None or "model" not in task.request:
            return google_error(404, "Interaction not found.")
        if task.state in ("succeeded", "failed", "cancelled"):
            return google_error(400, f"Interaction is already {_OMNI_STATUS[task.state]}.")
        self.cancel(task)
        return JSONResponse(self._interaction(task))

    # --- legacy Veo ---------------------------------------------------------------

    async def predict(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        model, _, verb = request.path_params["model_action"].partition(":")
        if verb != "predictLongRunning":
            return google_error(404, "Not Found")
        if model in RETIRED or (model in VEO_MODELS and not self.legacy_veo_available):
            return google_error(404, f"models/{model} is no longer available.")
        if model not in VEO_MODELS:
            return google_error(404, f"models/{model} is not found for API version v1beta.")
        injected = self.check_create()
        if injected is not None:
            return injected
        body = await request.json()
        invalid = _invalid_veo(body)
        if invalid:
            return google_error(400, invalid)
        self.requests.append(body)
        task = self.accept(body, task_id=secrets.token_hex(6))
        return JSONResponse({"name": f"models/{model}/operations/{task.id}"})

    async def get_operation(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        model, op_id = request.path_params["model"], request.path_params["op_id"]
        task = self.tasks.get(op_id)
        if task is None or "instances" not in task.request:
            return google_error(404, f"Operation models/{model}/operations/{op_id} not found.")
        self.advance(task)
        name = f"models/{model}/operations/{op_id}"
        if task.state in ("queued", "running"):
            return JSONResponse({"name": name})
        if task.state == "failed" and not self.rai_failures:
            error = {"code": 3, "message": task.error_message}
            return JSONResponse({"name": name, "done": True, "error": error})
        count = int(task.request.get("parameters", {}).get("sampleCount", 1))
        result: dict[str, Any] = {}
        if task.state == "failed":
            result = {
                "raiMediaFilteredCount": count,
                "raiMediaFilteredReasons": [task.error_message],
            }
        else:
            result["generatedSamples"] = [
                {"video": {"uri": f"{self.base_url}/v1beta/files/{task.id}-{i}:download?alt=media"}}
                for i in range(count)
            ]
        response = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta."
            "PredictLongRunningResponse",
            "generateVideoResponse": result,
        }
        return JSONResponse({"name": name, "done": True, "response": response})

    async def download_file(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        file_id, _, verb = request.path_params["file_action"].partition(":")
        task = self.tasks.get(file_id.rsplit("-", 1)[0])
        if verb != "download" or request.query_params.get("alt") != "media":
            return google_error(400, "Only media downloads are supported here.")
        if task is None or task.state != "succeeded" or self.expire_urls:
            # Past retention the file is gone; the Files API says so as a 403.
            return google_error(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist.",
            )
        self.downloads += 1
        return Response(self.video, media_type="video/mp4")

    def routes(self) -> list[Route]:
        routes: list[Route] = []
        for version in ("v1", "v1beta"):
            base = f"/{version}/interactions"
            routes += [
                Route(base, self.create_interaction, methods=["POST"]),
                Route(f"{base}/{{interaction_id}}", self.get_interaction, methods=["GET"]),
                Route(
                    f"{base}/{{interaction_id}}/cancel", self.cancel_interaction, methods=["POST"]
                ),
            ]
        return [
            *routes,
            Route("/v1beta/models", self.list_models, methods=["GET"]),
            Route("/v1beta/models/{model_action}", self.predict, methods=["POST"]),
            Route("/v1beta/models/{model}/operations/{op_id}", self.get_operation, methods=["GET"]),
            Route("/v1beta/files/{file_action}", self.download_file, methods=["GET"]),
        ]


def _invalid_interaction(body: dict[str, Any], seconds: tuple[int, int]) -> str | None:
    """The 400 message for a video interaction the API would refuse, or None."""
    if not body.get("input"):
        return "input is required."
    if body.get("response_modalities") != ["video"]:
        return 'response_modalities must be ["video"] for video models.'
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "video":
        return 'response_format.type must be "video".'
    if fmt.get("aspect_ratio", "16:9") not in ("16:9", "9:16"):
        return "response_format.aspect_ratio must be one of 16:9, 9:16."
    if fmt.get("resolution", "720p") not in ("360p", "720p", "1080p", "4k"):
        return "response_format.resolution must be one of 360p, 720p, 1080p, 4k."
    if fmt.get("delivery", "inline") not in ("inline", "uri"):
        return "response_format.delivery must be inline or uri."
    duration = str(fmt.get("duration", "8s"))
    low, high = seconds
    if not (
        duration.endswith("s") and duration[:-1].isdigit() and low <= int(duration[:-1]) <= high
    ):
        return f"response_format.duration must be between {low}s and {high}s."
    if not isinstance(body["input"], str | list):
        return "input must be a string or a list of steps."
    return _invalid_steps(body)


_BLOCK_TYPES = {"text", "image", "audio", "video", "document"}
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif",
                "image/gif", "image/bmp", "image/tiff"}  # fmt: skip
_TASKS = {"text_to_video", "image_to_video", "reference_to_video", "edit", "extend", "upscale"}


def _invalid_media(block: dict[str, Any], where: str) -> str | None:
    if ("data" in block) == ("uri" in block):
        return f"{where}: exactly one of data or uri is required."
    if "data" in block:
        try:
            base64.b64decode(block["data"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            return f"{where}.data is not valid base64."
    return None


def _invalid_steps(body: dict[str, Any]) -> str | None:
    """Every step a ``user_input`` holding content blocks, the blocks valid."""
    steps = body["input"] if isinstance(body["input"], list) else []
    blocks: list[Any] = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("type") != "user_input":
            return (
                f'input[{index}] must be a step {{"type": "user_input", "content": [...]}}; '
                "a bare list of content blocks is the legacy form."
            )
        content = step.get("content")
        if not isinstance(content, list) or not content or set(step) - {"type", "content"}:
            return f"input[{index}] must be {{type, content}} with a non-empty content list."
        blocks += [(f"input[{index}].content[{i}]", block) for i, block in enumerate(content)]
    return _invalid_blocks(body, blocks)


def _invalid_blocks(body: dict[str, Any], blocks: list[tuple[str, Any]]) -> str | None:
    images = videos = 0
    for where, block in blocks:
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            return f"{where}.type must be one of {', '.join(sorted(_BLOCK_TYPES))}."
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                return f"{where}.text is required."
            continue
        if block["type"] == "image":
            images += 1
            if block.get("mime_type") not in _IMAGE_TYPES:
                return f"{where}.mime_type must be one of {', '.join(sorted(_IMAGE_TYPES))}."
            extra = set(block) - {"type", "data", "uri", "mime_type", "resolution"}
            if extra:
                return f"{where}: unknown field {sorted(extra)[0]}."
        if block["type"] == "video":
            videos += 1
        if problem := _invalid_media(block, where):
            return problem
    config = body.get("generation_config") or {}
    task = (config.get("video_config") or {}).get("task")
    if task is not None and task not in _TASKS:
        return f"generation_config.video_config.task must be one of {', '.join(sorted(_TASKS))}."
    if images > 3:
        return f"At most 3 input images are supported; got {images}."
    if task == "image_to_video" and not 1 <= images <= 2:
        return "image_to_video takes a first frame and optionally a last frame (1-2 images)."
    if task == "reference_to_video" and (images == 0 or videos):
        return "reference_to_video takes 1-3 reference images and no video."
    if task == "text_to_video" and (images or videos):
        return "text_to_video takes no images or videos."
    return None


def _invalid_veo_image(media: Any, where: str) -> str | None:
    if not isinstance(media, dict) or "gcsUri" in media or "bytesBase64Encoded" not in media:
        return f"{where}: only bytesBase64Encoded images are supported."
    if media.get("mimeType") not in ("image/jpeg", "image/png"):
        return f"{where}.mimeType must be image/jpeg or image/png (as on Vertex)."
    try:
        base64.b64decode(media["bytesBase64Encoded"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        return f"{where}.bytesBase64Encoded is not valid base64."
    return None


def _invalid_veo_references(instance: dict[str, Any], params: dict[str, Any]) -> str | None:
    refs = instance["referenceImages"]
    if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
        return "referenceImages must hold 1 to 3 images."
    with_refs = [k for k in ("image", "lastFrame", "video") if instance.get(k) is not None]
    if with_refs:
        return f"referenceImages cannot be used together with {', '.join(with_refs)}."
    for index, ref in enumerate(refs):
        where = f"referenceImages[{index}]"
        if not isinstance(ref, dict):
            return f"{where} must be an object."
        if ref.get("referenceType") != "ASSET":
            return f"{where}.referenceType: only ASSET reference images are supported."
        if problem := _invalid_veo_image(ref.get("image"), f"{where}.image"):
            return problem
    if params.get("durationSeconds", 8) != 8:
        return "Reference images require durationSeconds 8."
    return None


def _invalid_veo(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        return "instances is required."
    instance = body["instances"][0] if body["instances"] else {}
    params = body.get("parameters") or {}
    if not isinstance(instance.get("prompt"), str):
        return "A text prompt is required."
    for key in ("image", "lastFrame"):
        if instance.get(key) is not None and (problem := _invalid_veo_image(instance[key], key)):
            return problem
    if instance.get("lastFrame") is not None and instance.get("image") is None:
        return "lastFrame requires image (the first frame)."
    if "referenceImages" in instance and (problem := _invalid_veo_references(instance, params)):
        return problem
    for unsupported in ("fps", "seed", "storageUri", "generateAudio"):
        if unsupported in params:
            return f"`{unsupported}` isn't supported by this model."
    if params.get("durationSeconds", 8) not in (4, 6, 8):
        return "durationSeconds must be 4, 6 or 8."
    if params.get("resolution", "720p") != "720p" and params.get("durationSeconds", 8) != 8:
        return "1080p and 4k require durationSeconds 8."
    return None
