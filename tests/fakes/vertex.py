"""A fake Vertex AI Veo API (reference section 2.1): ``:predictLongRunning`` and
``:fetchPredictOperation`` under ``/v1beta1/projects/{p}/locations/{l}/publishers/google/
models/{m}``, OAuth bearer auth, Google error bodies, operations that omit ``done``
until finished, inline base64 results (or ``gcsUri`` objects served by a fake GCS JSON
API when the request sets ``storageUri``), and RAI filtering in place of videos.

Inputs are checked as the SDK docstring describes them (reference 2.1): ``image``,
``lastFrame`` and ``video`` need ``mimeType`` and bytes or a ``gcsUri``, an image's
``mimeType`` image/jpeg or image/png (Veo's docs name those two); ``lastFrame`` needs
``image``; ``referenceImages`` are 1-3 ``{image, referenceType}`` with
``referenceType`` ASSET (STYLE is Veo 2 only, and the 3.1 models served here refuse it)
and never come with image, video or lastFrame. The wording of those 400s is the fake's
own (UNVERIFIED).

Controls besides the harness's: ``rai_failures`` renders ``fail_tasks`` as responsible-AI
filtering (done, no videos, the message as the reason) instead of ``Operation.error``.

OAuth2 (Google's token endpoint, JWT-bearer grant): ``POST /token`` with form fields
``grant_type`` and ``assertion``. A test registers a service account's public key with
``register_service_account``; the fake verifies the assertion's RS256 signature and its
claims (iss, scope, aud = this fake's ``/token``, iat/exp) and answers ``{access_token,
expires_in, token_type}`` or an OAuth2 error (``invalid_grant``...). Tokens it issued are
accepted by the Vertex and GCS routes until ``token_expires_in`` passes or
``revoke_tokens()``. ``fail_next_tokens(n, status)`` injects token-endpoint errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.harness import FakeTask, FakeUpstream, InjectedError

ACCESS_TOKEN = "ya29.test"
PROJECT = "vidgate-test"
LOCATION = "us-central1"
DEPLOYMENT: dict[str, Any] = {
    "provider": "vertex",
    "credentials": {"access_token": ACCESS_TOKEN},
    "options": {"project": PROJECT, "location": LOCATION, "poll_interval_s": 0.2},
}
UPSTREAM_MODEL = "veo-3.1-generate-001"
SUPPORTS_IMAGE = True
SUPPORTS_CANCEL = False
# Inline results come back with every poll of the operation: nothing to expire.
REFRESHES_URLS = True
SECONDS = 8
SIZE = "1280x720"
# ``fail_tasks`` values in the provider's own terms for the contract suite: a failure
# on the provider's side (worth another deployment) and a content refusal.
TRANSIENT_FAILURE = ("INTERNAL", "Internal error encountered.")
CONTENT_REFUSAL = (
    "INVALID_ARGUMENT",
    "The prompt contains sensitive words that violate Google's Responsible AI practices.",
)

MODELS = {"veo-3.1-generate-001", "veo-3.1-fast-generate-001", "veo-3.1-lite-generate-001"}
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
_RPC_NUMBERS = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "PERMISSION_DENIED": 7,
                "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9, "INTERNAL": 13}  # fmt: skip
_MODEL_PREFIX = "/v1beta1/projects/{project}/locations/{location}/publishers/google/models"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class Assertion:
    """A JWT-bearer assertion the token endpoint accepted, decoded."""

    header: dict[str, Any]
    claims: dict[str, Any]
    grant_type: str


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def google_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    name = _STATUS_NAMES.get(status, "UNKNOWN")
    return JSONResponse(
        {"error": {"code": status, "message": message, "status": name}},
        status_code=status,
        headers=headers,
    )


class FakeVertex(FakeUpstream):
    name = "vertex"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.rai_failures = False
        # OAuth2: client_email -> (public key, key id); what was asked and issued.
        self.service_accounts: dict[str, tuple[rsa.RSAPublicKey, str | None]] = {}
        self.token_calls = 0
        self.assertions: list[Assertion] = []
        self.issued: dict[str, float] = {}  # access token -> expiry (wall clock)
        self.token_expires_in = 3599
        self._next_token_errors: list[int] = []

    # --- OAuth2 controls ------------------------------------------------------------

    def register_service_account(
        self, client_email: str, public_key: rsa.RSAPublicKey, key_id: str | None = None
    ) -> None:
        self.service_accounts[client_email] = (public_key, key_id)

    def fail_next_tokens(self, n: int, status: int) -> None:
        self._next_token_errors = [status] * n

    def revoke_tokens(self) -> None:
        self.issued.clear()

    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    async def token(self, request: Request) -> Response:
        """Google's OAuth2 token endpoint, JWT-bearer grant (RFC 7523)."""
        self.token_calls += 1
        if self._next_token_errors:
            status = self._next_token_errors.pop(0)
            return oauth_error(status, "internal_failure", f"injected {status}")
        form = await request.form()
        grant_type = str(form.get("grant_type") or "")
        if grant_type != JWT_BEARER:
            return oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        parts = str(form.get("assertion") or "").split(".")
        if len(parts) != 3:
            return oauth_error(400, "invalid_grant", "Invalid JWT: not three segments.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, binascii.Error):
            return oauth_error(400, "invalid_grant", "Invalid JWT: cannot be decoded.")
        if header.get("alg") != "RS256" or header.get("typ") != "JWT":
            return oauth_error(400, "invalid_grant", "Invalid JWT: alg must be RS256, typ JWT.")
        account = self.service_accounts.get(str(claims.get("iss")))
        if account is None:
            return oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        public_key, key_id = account
        if key_id is not None and header.get("kid") != key_id:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            public_key.verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != self.token_uri():
            return oauth_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        if claims.get("scope") != CLOUD_PLATFORM:
            return oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if (
            not isinstance(iat, int)
            or not isinstance(exp, int)
            or exp <= now
            or not 0 < exp - iat <= 3600
        ):
            return oauth_error(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        self.assertions.append(Assertion(header, claims, grant_type))
        token = f"ya29.sa-{secrets.token_urlsafe(12)}"
        self.issued[token] = now + self.token_expires_in
        return JSONResponse(
            {"access_token": token, "expires_in": self.token_expires_in, "token_type": "Bearer"}
        )

    def error_for(self, status: int, headers: dict[str, str]) -> InjectedError:
        messages = {
            429: "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_"
            "base_model with base model: veo-3.1-generate. Please submit a quota increase "
            "request.",
            401: "Request had invalid authentication credentials.",
        }
        body = {
            "error": {
                "code": status,
                "message": messages.get(status, f"injected {status}"),
                "status": _STATUS_NAMES.get(status, "UNKNOWN"),
            }
        }
        return InjectedError(status, body, headers)

    def _unauthorized(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme == "Bearer" and (
            token == ACCESS_TOKEN or self.issued.get(token, 0.0) > time.time()
        ):
            return None
        return google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
        )

    def _model(self, request: Request, action: str) -> tuple[str | None, Response | None]:
        params = request.path_params
        model, _, verb = params["model_action"].partition(":")
        if verb != action:
            return None, google_error(404, "Not Found")
        if params["project"] != PROJECT:
            return None, google_error(
                403, f"Permission denied on resource project {params['project']}."
            )
        if model not in MODELS:
            resource = f"projects/{params['project']}/locations/{params['location']}"
            return None, google_error(
                404,
                f"Publisher Model `{resource}/publishers/google/models/{model}` was not found "
                "or your project does not have access to it.",
            )
        return model, None

    async def model_action(self, request: Request) -> Response:
        verb = request.path_params["model_action"].partition(":")[2]
        if verb == "predictLongRunning":
            return await self.predict(request)
        return await self.fetch_operation(request)

    async def predict(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        model, problem = self._model(request, "predictLongRunning")
        if problem is not None:
            return problem
        injected = self.check_create()
        if injected is not None:
            return injected
        body = await request.json()
        invalid = _invalid(body, model or "")
        if invalid:
            return google_error(400, invalid)
        self.requests.append(body)
        op_id = str(int.from_bytes(secrets.token_bytes(8), "big"))
        params = request.path_params
        name = (
            f"projects/{params['project']}/locations/{params['location']}"
            f"/publishers/google/models/{model}/operations/{op_id}"
        )
        self.accept(body, task_id=op_id)
        return JSONResponse({"name": name})

    async def fetch_operation(self, request: Request) -> Response:
        if (denied := self._unauthorized(request)) is not None:
            return denied
        _, problem = self._model(request, "fetchPredictOperation")
        if problem is not None:
            return problem
        body = await request.json()
        name = body.get("operationName") if isinstance(body, dict) else None
        if not isinstance(name, str) or "/operations/" not in name:
            return google_error(400, "Invalid operation name.")
        task = self.tasks.get(name.rsplit("/", 1)[1])
        if task is None:
            return google_error(404, f"Operation {name} not found.")
        self.advance(task)
        return JSONResponse(self._operation(name, task))

    def _operation(self, name: str, task: FakeTask) -> dict[str, Any]:
        if task.state in ("queued", "running"):
            return {"name": name}  # proto3 JSON omits ``done: false``
        if task.state == "failed" and not self.rai_failures:
            code = _RPC_NUMBERS.get(task.error_code or "", 3)
            return {
                "name": name,
                "done": True,
                "error": {"code": code, "message": task.error_message},
            }
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
        }
        count = int(task.request["parameters"].get("sampleCount", 1))
        if task.state == "failed":
            response["raiMediaFilteredCount"] = count
            response["raiMediaFilteredReasons"] = [task.error_message]
            return {"name": name, "done": True, "response": response}
        storage = task.request["parameters"].get("storageUri")
        if storage:
            prefix = str(storage).rstrip("/")
            response["videos"] = [
                {"gcsUri": f"{prefix}/{task.id}/sample_{i}.mp4", "mimeType": "video/mp4"}
                for i in range(count)
            ]
        else:
            data = base64.b64encode(self.video).decode()
            response["videos"] = [
                {"bytesBase64Encoded": data, "mimeType": "video/mp4"} for _ in range(count)
            ]
        return {"name": name, "done": True, "response": response}

    async def gcs_object(self, request: Request) -> Response:
        """GCS JSON API media download: ``GET /storage/v1/b/{bucket}/o/{object}?alt=media``."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        bucket, obj = request.path_params["bucket"], request.path_params["object"]
        task_id = obj.split("/")[-2] if obj.count("/") >= 1 else ""
        task = self.tasks.get(task_id)
        if request.query_params.get("alt") != "media":
            return JSONResponse({"kind": "storage#object", "bucket": bucket, "name": obj})
        if task is None or task.state != "succeeded" or self.expire_urls:
            # A lifecycle rule (or someone) deleted it: GCS says so with a plain 404.
            return google_error(404, f"No such object: {bucket}/{obj}")
        self.downloads += 1
        return Response(self.video, media_type="video/mp4")

    def routes(self) -> list[Route]:
        return [
            Route(f"{_MODEL_PREFIX}/{{model_action}}", self.model_action, methods=["POST"]),
            Route("/storage/v1/b/{bucket}/o/{object:path}", self.gcs_object, methods=["GET"]),
            Route("/token", self.token, methods=["POST"]),
        ]


_IMAGE_TYPES = ("image/jpeg", "image/png")


def _invalid_media(key: str, media: Any) -> str | None:
    if not isinstance(media, dict) or not media.get("mimeType"):
        return f"{key}.mimeType is required."
    if key != "video" and media["mimeType"] not in _IMAGE_TYPES:
        supported = ", ".join(_IMAGE_TYPES)
        return f"Unsupported {key}.mimeType {media['mimeType']}; supported: {supported}."
    if "bytesBase64Encoded" in media:
        try:
            base64.b64decode(media["bytesBase64Encoded"], validate=True)
        except (binascii.Error, ValueError):
            return f"{key}.bytesBase64Encoded is not valid base64."
    elif "gcsUri" not in media:
        return f"{key} needs bytesBase64Encoded or gcsUri."
    return None


def _invalid_references(instance: dict[str, Any], model: str) -> str | None:
    refs = instance["referenceImages"]
    if not isinstance(refs, list) or not refs:
        return "referenceImages must be a non-empty list."
    with_refs = [k for k in ("image", "video", "lastFrame") if instance.get(k) is not None]
    if with_refs:
        return f"referenceImages cannot be used together with {', '.join(with_refs)}."
    for index, ref in enumerate(refs):
        key = f"referenceImages[{index}]"
        if not isinstance(ref, dict) or set(ref) - {"image", "referenceType"}:
            return f"{key} must be {{image, referenceType}}."
        problem = _invalid_media(f"{key}.image", ref.get("image"))
        if problem:
            return problem
        kind = ref.get("referenceType")
        if kind == "STYLE":
            return f"referenceType STYLE is not supported by {model}; use ASSET."
        if kind != "ASSET":
            return f"{key}.referenceType must be ASSET or STYLE."
    if len(refs) > 3:
        return f"At most 3 asset reference images are supported; got {len(refs)}."
    return None


def _invalid(body: Any, model: str) -> str | None:
    """The 400 message Vertex gives for a malformed predictLongRunning body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        return "Invalid JSON payload: instances is required."
    if len(body["instances"]) != 1:
        return "Exactly one instance is supported."
    instance = body["instances"][0]
    params = body.get("parameters") or {}
    if not isinstance(instance, dict) or not isinstance(instance.get("prompt"), str):
        return "A text prompt is required."
    for key in ("image", "lastFrame", "video"):
        media = instance.get(key)
        if media is not None and (problem := _invalid_media(key, media)):
            return problem
    if instance.get("lastFrame") is not None and instance.get("image") is None:
        return "lastFrame requires image (the first frame)."
    if "referenceImages" in instance and (problem := _invalid_references(instance, model)):
        return problem
    if params.get("durationSeconds", 8) not in (4, 6, 8):
        return "Unsupported duration. Supported durations are 4, 6 and 8 seconds."
    if params.get("aspectRatio", "16:9") not in ("16:9", "9:16"):
        return "Unsupported aspect ratio. Supported: 16:9, 9:16."
    if params.get("resolution", "720p") not in ("720p", "1080p", "4k"):
        return "Unsupported resolution. Supported: 720p, 1080p, 4k."
    if not 1 <= int(params.get("sampleCount", 1)) <= 4:
        return "sampleCount must be between 1 and 4."
    return None
