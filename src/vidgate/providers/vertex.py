"""Google Veo on Vertex AI ("Gemini Enterprise Agent Platform"), reference section 2.1.

- create: ``POST /v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}
  :predictLongRunning`` with ``{instances: [{prompt, image?, lastFrame?, video?,
  referenceImages?}], parameters}``; the answer is a long-running Operation ``{name}``;
- inputs: the first frame is ``image`` and the last frame ``lastFrame`` (both
  ``{bytesBase64Encoded, mimeType}``); reference images are ``referenceImages[]`` of
  ``{image, referenceType: "ASSET"}``, at most 3. Per the SDK docstring image, video and
  lastFrame are not allowed together with references, and STYLE references are a Veo 2
  thing (one image), so we only ever send ASSET. Which Vertex Veo models accept a last
  frame or references is UNVERIFIED (the catalogue decides what reaches us);
- poll: ``POST /v1beta1/{model resource}:fetchPredictOperation {operationName}``; there
  is no progress field, so a running operation reports no progress;
- results: ``response.videos[]``, inline ``bytesBase64Encoded`` unless
  ``options.storage_uri`` names a GCS prefix, then ``gcsUri`` objects read through the
  GCS JSON API with the same token. Inline results come back on every poll, so they
  never expire; a deleted GCS object cannot be asked for again;
- RAI filtering: ``raiMediaFilteredCount``/``raiMediaFilteredReasons`` instead of videos;
- no cancel and no idempotency key (a resubmission makes a second operation).

``upstream_id`` is the operation name; a poll compares the videos with the spec's ``n``,
so it can tell a partly filtered result (fewer videos than asked for) from a complete one.

Credentials: ``access_token``, a ready OAuth2 bearer token, or ``service_account_file``,
the path of a service-account JSON key (what ``GOOGLE_APPLICATION_CREDENTIALS`` names).
The key is read once, when the adapter is built (a missing or invalid file is a
``ValueError`` naming the path, never the content); its tokens come from Google's OAuth2
JWT-bearer grant (RFC 7523): an RS256-signed assertion ``{iss: client_email, scope:
cloud-platform, aud: token_uri, iat, exp: iat+3600}`` posted to ``token_uri``. A token is
kept until about 5 minutes before it expires; one refresh runs at a time. A refused
assertion (400/401 ``invalid_grant``: a revoked or deleted key, a wrong clock) makes the
deployment unhealthy; a network error or a 5xx is retryable. With both credentials set,
``access_token`` wins.
Options: ``project`` (required), ``location`` (us-central1), ``api_version`` (v1beta1),
``storage_uri``, ``storage_base_url``, ``generate_audio``, ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vidgate.core.deployments import DeploymentConfig
from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import JobSpec
from vidgate.providers.base import (
    ProgressCallback,
    ProviderDeps,
    ProviderError,
    SubmitResult,
    UpstreamStatus,
    UpstreamTask,
)
from vidgate.providers.http import UpstreamClient, UpstreamLimits, default_error_message
from vidgate.providers.inputs import image_base64, read_blob

DEFAULT_MODEL = "veo-3.1-generate-001"
DEFAULT_LOCATION = "us-central1"
STORAGE_BASE_URL = "https://storage.googleapis.com"
# Veo takes one to a few minutes; Google's samples poll every 10-20 s.
DEFAULT_POLL_S = 5.0
ASPECT_RATIOS = ("16:9", "9:16")
# Our names -> the API's (the docstring lists 720p/1080p; 4k was added 2026-01-13).
RESOLUTIONS = {"720p": "720p", "1080p": "1080p", "4K": "4k"}
# UNVERIFIED for Vertex: the reference lists 4|6|8 s for Veo 3 only from earlier Gemini
# API docs (section 2.2); Veo 2 took 5-8 s. Veo renders 24 fps; sampleCount up to 4 (3P).
MAX_SAMPLES = 4
FPS = 24
# google.rpc.Code numbers -> names, for Operation.error (which carries only the number).
RPC_CODES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}
# OAuth2 service-account flow (JWT-bearer grant, RFC 7523).
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google accepts assertions valid for at most an hour.
ASSERTION_LIFETIME_S = 3600
# A token is replaced this long before it expires (at most half its lifetime).
REFRESH_MARGIN_S = 300.0
# Asset references per request (SDK docstring, reference 2.1).
MAX_REFERENCE_IMAGES = 3
_RETRY_HINT = re.compile(r"\[retry after ([0-9.]+)s\]")


# --- shared Google mapping (also used by the Gemini API adapter) -------------------


def google_error_message(response: httpx.Response) -> str | None:
    """``STATUS: message`` from ``{"error": {code, message, status, details}}``, plus the
    hints the status code alone loses: an ErrorInfo ``reason`` (API_KEY_INVALID rides on
    a 400) and a RetryInfo ``retryDelay`` (Google's 429s carry it in the body, not in a
    Retry-After header)."""
    try:
        body = response.json()
    except ValueError:
        return default_error_message(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return default_error_message(response)
    text = str(error.get("message") or f"HTTP {response.status_code}")
    if error.get("status"):
        text = f"{error['status']}: {text}"
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("reason"), str):
            text += f" [{detail['reason']}]"
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                text += f" [retry after {float(delay[:-1]):g}s]"
    return text


def refine_error(error: ProviderError) -> ProviderError:
    """Apply the hints ``google_error_message`` kept in the message."""
    if error.code == "upstream_rejected" and "[API_KEY_INVALID]" in error.message:
        return ProviderError("upstream_auth_failed", error.message, retryable=False, unhealthy=True)
    hint = _RETRY_HINT.search(error.message)
    if error.retryable and error.retry_after_s is None and hint:
        return ProviderError(
            error.code, error.message, retryable=True, retry_after_s=float(hint.group(1))
        )
    return error


def rpc_error(error: Any) -> tuple[str, str]:
    """(code name, message) of a google.rpc.Status."""
    if not isinstance(error, dict):
        return "UNKNOWN", str(error)
    code = error.get("code")
    name = RPC_CODES.get(code, str(code)) if isinstance(code, int) else str(code or "UNKNOWN")
    return name, str(error.get("message") or name)


def operation_status(
    op: dict[str, Any],
    result: dict[str, Any],
    videos: list[Any],
    expected: int | None,
    poll_s: float,
) -> UpstreamStatus:
    """A Veo long-running operation as an UpstreamStatus. ``result`` holds the
    raiMediaFiltered* fields and ``videos`` the usable outputs (their place differs
    between Vertex and the Gemini API)."""
    if op.get("error"):
        code, message = rpc_error(op["error"])
        return UpstreamStatus("failed", error_code=code, error_message=message)
    if not op.get("done"):
        # proto3 JSON leaves out ``done: false``; Veo reports no progress.
        return UpstreamStatus("running", poll_after_s=poll_s)
    if not videos or (expected is not None and len(videos) < expected):
        filtered = result.get("raiMediaFilteredCount") or 0
        reasons = "; ".join(str(r) for r in result.get("raiMediaFilteredReasons") or [])
        made = f"{len(videos)} of {expected}" if expected else f"{len(videos)}"
        message = f"{made} videos returned, {filtered} filtered by responsible-AI checks"
        return UpstreamStatus(
            "failed",
            error_code="content_filtered" if filtered else "no_output",
            error_message=f"{message}: {reasons}" if reasons else message,
        )
    return UpstreamStatus("succeeded", progress=100)


def check_veo_inputs(spec: JobSpec, where: str) -> None:
    """The last-frame and reference-image rules both Veo shapes share (SDK docstring for
    ``GenerateVideosConfig``, reference 2.1/2.2): a last frame ends a clip that starts
    from ``image``; reference images (ASSET, at most 3) stand alone, without image,
    video or lastFrame."""
    if spec.last_frame is not None:
        if spec.image is None:
            raise InvalidParameter(
                f"a last frame needs a first frame on {where}; allowed: image with last_frame",
                param="last_frame",
            )
        if spec.kind != "generate":
            raise InvalidParameter(
                f"a last frame cannot be used to {spec.kind} a video on {where}; "
                "allowed: last_frame when generating from an image",
                param="last_frame",
            )
    refs = spec.reference_images
    if not refs:
        return
    if len(refs) > MAX_REFERENCE_IMAGES:
        raise InvalidParameter(
            f"{len(refs)} reference images is more than {where} takes; "
            f"allowed: 0-{MAX_REFERENCE_IMAGES}",
            param="reference_images",
        )
    others = [
        name
        for name, present in (
            ("a first frame (image)", spec.image is not None),
            ("a last frame", spec.last_frame is not None),
            (f"a source video ({spec.kind})", spec.kind != "generate"),
        )
        if present
    ]
    if others:
        raise InvalidParameter(
            f"reference images cannot be combined with {' or '.join(others)} on {where}; "
            "allowed: reference_images with a text prompt only",
            param="reference_images",
        )


def veo_image(data_b64: str, content_type: str) -> dict[str, str]:
    """A Veo image field: ``{bytesBase64Encoded, mimeType}``."""
    return {"bytesBase64Encoded": data_b64, "mimeType": content_type}


def veo_references(spec: JobSpec, references_b64: Sequence[str]) -> list[dict[str, Any]]:
    """``referenceImages[]``: every reference as an ASSET (subject) image."""
    return [
        {"image": veo_image(data, ref.content_type), "referenceType": "ASSET"}
        for ref, data in zip(spec.reference_images, references_b64, strict=True)
    ]


async def write_base64(data: str, dest: Path) -> Path:
    """Decode an inline result into ``dest`` (atomically, off the event loop)."""

    def write() -> None:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProviderError(
                "upstream_bad_response", "inline video is not valid base64", retryable=False
            ) from exc
        tmp = dest.with_name(f".{dest.name}.part")
        tmp.write_bytes(raw)
        os.replace(tmp, dest)

    await asyncio.to_thread(write)
    return dest


# --- service-account credentials -----------------------------------------------------


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str | None
    token_uri: str


def load_service_account(path: str) -> ServiceAccountKey:
    """Read a service-account JSON key. Every problem is a ``ValueError`` that names the
    file and what is wrong with it, never anything read from it."""

    def bad(reason: str) -> ValueError:
        return ValueError(f"service account key file {path}: {reason}")

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise bad("is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad("is not a JSON object")
    kind = data.get("type")
    if kind is not None and kind != "service_account":
        raise bad(f"holds {str(kind)[:40]!r} credentials, not a service account key")
    missing = [
        k
        for k in ("client_email", "private_key")
        if not isinstance(data.get(k), str) or not data[k]
    ]
    if missing:
        raise bad(f"has no {', '.join(missing)}")
    token_uri = data.get("token_uri") or TOKEN_URI
    if not isinstance(token_uri, str) or not token_uri.startswith(("https://", "http://")):
        raise bad("token_uri is not an http(s) URL")
    key_id = data.get("private_key_id")
    try:
        key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise bad("private_key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise bad("private_key is not an RSA key")
    return ServiceAccountKey(
        client_email=data["client_email"],
        private_key=key,
        private_key_id=key_id if isinstance(key_id, str) and key_id else None,
        token_uri=token_uri,
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def sign_assertion(key: ServiceAccountKey, now: float) -> str:
    """The JWT-bearer assertion for ``key``: RS256 over ``header.claims``."""
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if key.private_key_id:
        header["kid"] = key.private_key_id
    iat = int(now)
    claims = {
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME_S,
    }
    signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def oauth_error_message(response: httpx.Response) -> str | None:
    """``error: error_description`` of an OAuth2 error body (RFC 6749 5.2), shortened;
    neither field carries the assertion or a token."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):  # a Google API error body, from a proxy say
        return google_error_message(response)
    if not isinstance(error, str):
        return None
    description = body.get("error_description")
    text = f"{error}: {description}" if isinstance(description, str) and description else error
    return text[:300]


def _clock() -> float:
    """Wall-clock seconds (assertion times and token expiry); tests replace it."""
    return time.time()


class ServiceAccountTokens:
    """Access tokens for one service-account key, cached until shortly before expiry."""

    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        provider: str,
        timeout_s: float,
        limits: UpstreamLimits | None = None,
    ) -> None:
        self._key = key
        self._provider = provider
        self._http = UpstreamClient(
            provider=provider,
            base_url="",
            timeout_s=timeout_s,
            error_message=oauth_error_message,
            limits=limits,
        )
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0

    def _fresh(self) -> str | None:
        return self._token if self._token is not None and _clock() < self._refresh_at else None

    async def token(self) -> str:
        if (token := self._fresh()) is not None:
            return token
        async with self._lock:
            # Whoever held the lock before may have refreshed it already.
            if (token := self._fresh()) is not None:
                return token
            try:
                token, expires_in = await self._fetch()
            except ProviderError as error:
                # A transient failure while the old token still works: keep using it.
                if error.retryable and self._token is not None and _clock() < self._expires_at:
                    return self._token
                raise
            now = _clock()
            self._token = token
            self._expires_at = now + expires_in
            self._refresh_at = now + expires_in - min(REFRESH_MARGIN_S, expires_in / 2)
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (Vertex refused it) unless it was replaced meanwhile."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": sign_assertion(self._key, _clock())}
        try:
            body = await self._http.json("POST", self._key.token_uri, data=form)
        except ProviderError as error:
            detail = error.message.removeprefix(f"{self._provider}: ")
            if error.retryable:  # a network error, a timeout, 429, 5xx
                raise ProviderError(
                    error.code,
                    f"{self._provider}: token endpoint: {detail}",
                    retryable=True,
                    retry_after_s=error.retry_after_s,
                ) from error
            # invalid_grant and the like: the key itself does not work (revoked,
            # deleted, disabled account, skewed clock). Nothing a retry fixes.
            raise ProviderError(
                "upstream_auth_failed",
                f"{self._provider}: service-account token request refused: {detail}",
                retryable=False,
                unhealthy=True,
            ) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError(
                "upstream_bad_response",
                f"{self._provider}: the token endpoint answered without an access_token",
                retryable=True,
            )
        expires_in = body.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else 3600.0
        except (TypeError, ValueError):
            lifetime = 3600.0
        return token, max(lifetime, 0.0)

    async def aclose(self) -> None:
        await self._http.aclose()


# --- Vertex mapping ------------------------------------------------------------------


def check_spec(spec: JobSpec, model: str, provider: str) -> None:
    """What Vertex Veo cannot do, as a client error (no I/O)."""
    where = f"{provider} (Vertex AI {model})"
    if spec.kind == "remix":
        raise InvalidParameter(f"remix is not supported by {where}; allowed: generate, extend")
    seconds = (5, 6, 7, 8) if model.startswith("veo-2") else (4, 6, 8)
    if spec.seconds not in seconds:
        allowed = ", ".join(map(str, seconds))
        raise InvalidParameter(
            f"duration {spec.seconds} is not supported by {where}; allowed: {allowed}",
            param="seconds",
        )
    if spec.aspect_ratio not in ASPECT_RATIOS:
        raise InvalidParameter(
            f"aspect_ratio {spec.aspect_ratio} is not supported by {where}; "
            f"allowed: {', '.join(ASPECT_RATIOS)}",
            param="aspect_ratio",
        )
    if spec.resolution not in RESOLUTIONS:
        raise InvalidParameter(
            f"resolution {spec.resolution} is not supported by {where}; "
            f"allowed: {', '.join(RESOLUTIONS)}",
            param="resolution",
        )
    if spec.fps != FPS:
        raise InvalidParameter(
            f"fps {spec.fps} is not supported by {where}; allowed: {FPS}", param="fps"
        )
    if not 1 <= spec.n <= MAX_SAMPLES:
        raise InvalidParameter(
            f"n {spec.n} is not supported by {where}; allowed: 1-{MAX_SAMPLES}", param="n"
        )
    check_veo_inputs(spec, where)


def build_request(
    spec: JobSpec,
    *,
    image_b64: str | None = None,
    last_frame_b64: str | None = None,
    references_b64: Sequence[str] = (),
    video_b64: str | None = None,
    storage_uri: str | None = None,
    generate_audio: bool | None = None,
) -> dict[str, Any]:
    instance: dict[str, Any] = {"prompt": spec.prompt}
    if image_b64 is not None and spec.image is not None:
        instance["image"] = veo_image(image_b64, spec.image.content_type)
    if last_frame_b64 is not None and spec.last_frame is not None:
        instance["lastFrame"] = veo_image(last_frame_b64, spec.last_frame.content_type)
    if video_b64 is not None:
        # Extension input (UNVERIFIED which Veo models on Vertex accept it).
        instance["video"] = {"bytesBase64Encoded": video_b64, "mimeType": "video/mp4"}
    if spec.reference_images:
        instance["referenceImages"] = veo_references(spec, references_b64)
    parameters: dict[str, Any] = {
        "sampleCount": spec.n,
        "durationSeconds": spec.seconds,
        "aspectRatio": spec.aspect_ratio,
        "resolution": RESOLUTIONS[spec.resolution],
        "fps": spec.fps,
    }
    if spec.seed is not None:
        parameters["seed"] = spec.seed
    if spec.negative_prompt:
        parameters["negativePrompt"] = spec.negative_prompt
    if storage_uri:
        parameters["storageUri"] = storage_uri
    if generate_audio is not None:
        parameters["generateAudio"] = generate_audio
    return {"instances": [instance], "parameters": parameters}


def result_videos(op: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    raw = op.get("response")
    response: dict[str, Any] = raw if isinstance(raw, dict) else {}
    videos = [
        v
        for v in response.get("videos") or []
        if isinstance(v, dict) and (v.get("bytesBase64Encoded") or v.get("gcsUri"))
    ]
    return response, videos


def gcs_media_path(gcs_uri: str) -> str:
    """``gs://bucket/a/b.mp4`` -> the GCS JSON API media download path."""
    if not gcs_uri.startswith("gs://") or "/" not in gcs_uri[5:]:
        raise ProviderError(
            "upstream_bad_response", f"not a gs:// object URI: {gcs_uri}", retryable=False
        )
    bucket, name = gcs_uri[5:].split("/", 1)
    return f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"


def operation_resource(name: str) -> str:
    """``projects/…/models/M/operations/ID`` -> ``projects/…/models/M``."""
    resource, sep, op_id = name.partition("/operations/")
    if not sep or not op_id or not resource.startswith("projects/"):
        raise ProviderError(
            "upstream_bad_id", f"not a Vertex operation name: {name}", retryable=False
        )
    return resource


class VertexProvider:
    def __init__(self, config: DeploymentConfig, deps: ProviderDeps) -> None:
        self.name = config.name
        self._deps = deps
        options = config.options
        self._project = str(options.get("project") or "")
        self._location = str(options.get("location") or DEFAULT_LOCATION)
        self._version = str(options.get("api_version") or "v1beta1")
        self._storage_uri = str(options["storage_uri"]) if options.get("storage_uri") else None
        self._storage_base = str(options.get("storage_base_url") or STORAGE_BASE_URL).rstrip("/")
        audio = options.get("generate_audio")
        self._generate_audio = bool(audio) if audio is not None else None
        self._poll_s = float(options.get("poll_interval_s", DEFAULT_POLL_S))
        # Why this deployment cannot work, said on every call (routing keeps it out).
        self._unusable: str | None = None
        token = config.credentials.get("access_token")
        key_file = config.credentials.get("service_account_file")
        self._bearer = token.get_secret_value() if token is not None else ""
        self._tokens: ServiceAccountTokens | None = None
        if token is None and key_file is not None:
            try:
                key = load_service_account(key_file.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"deployment {config.name!r}: {exc}") from None
            self._tokens = ServiceAccountTokens(
                key,
                provider=config.name,
                timeout_s=config.timeout_s,
                limits=UpstreamLimits.of(deps.settings),
            )
        if token is None and key_file is None:
            self._unusable = "no credentials.access_token or credentials.service_account_file"
        elif not self._project:
            self._unusable = "options.project is not set"
        host = (
            "https://aiplatform.googleapis.com"
            if self._location == "global"
            else f"https://{self._location}-aiplatform.googleapis.com"
        )
        limits = UpstreamLimits.of(deps.settings)
        self._http = UpstreamClient(
            provider=config.name,
            base_url=(config.base_url or host).rstrip("/"),
            timeout_s=config.timeout_s,
            # Without a storage URI the videos come back inline, in the poll answer.
            limits=limits if self._storage_uri else limits.with_inline_results(),
            error_message=google_error_message,
        )

    async def _auth(self) -> dict[str, str]:
        if self._unusable:
            raise ProviderError(
                "upstream_misconfigured",
                f"{self.name}: {self._unusable}",
                retryable=False,
                unhealthy=True,
            )
        bearer = await self._tokens.token() if self._tokens is not None else self._bearer
        return {"Authorization": f"Bearer {bearer}"}

    def validate(self, spec: JobSpec, upstream_model: str | None) -> None:
        check_spec(spec, upstream_model or DEFAULT_MODEL, self.name)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = await self._auth()
        try:
            body = await self._http.json(method, path, headers=headers, **kwargs)
        except ProviderError as error:
            if error.code == "upstream_auth_failed" and self._tokens is not None:
                # A token revoked before its time: the next call asks for a new one.
                self._tokens.invalidate(headers["Authorization"].removeprefix("Bearer "))
            refined = refine_error(error)
            if refined is error:
                raise
            raise refined from error
        if not isinstance(body, dict):
            raise ProviderError(
                "upstream_bad_response", f"{self.name}: expected a JSON object", retryable=True
            )
        return body

    async def submit(
        self, spec: JobSpec, *, idempotency_key: str, upstream_model: str | None
    ) -> SubmitResult:
        """``idempotency_key`` is unused: predictLongRunning takes no request id."""
        model = upstream_model or DEFAULT_MODEL
        image = await image_base64(self._deps, spec.image) if spec.image else None
        last = await image_base64(self._deps, spec.last_frame) if spec.last_frame else None
        refs = [await image_base64(self._deps, ref) for ref in spec.reference_images]
        video = None
        if spec.kind == "extend" and spec.source is not None:
            video = base64.b64encode(await read_blob(self._deps, spec.source.sha256)).decode()
        body = build_request(
            spec,
            image_b64=image,
            last_frame_b64=last,
            references_b64=refs,
            video_b64=video,
            storage_uri=self._storage_uri,
            generate_audio=self._generate_audio,
        )
        path = (
            f"/{self._version}/projects/{self._project}/locations/{self._location}"
            f"/publishers/google/models/{model}:predictLongRunning"
        )
        op = await self._call("POST", path, json=body)
        if not isinstance(op.get("name"), str):
            raise ProviderError(
                "upstream_bad_response", f"{self.name}: no operation name", retryable=False
            )
        return SubmitResult(op["name"], poll_after_s=self._poll_s)

    async def _operation(self, name: str) -> dict[str, Any]:
        path = f"/{self._version}/{operation_resource(name)}:fetchPredictOperation"
        return await self._call("POST", path, json={"operationName": name})

    async def status(self, task: UpstreamTask) -> UpstreamStatus:
        op = await self._operation(task.id)
        result, videos = result_videos(op)
        return operation_status(op, result, videos, task.spec.n, self._poll_s)

    async def fetch(
        self, task: UpstreamTask, dest_dir: Path, progress: ProgressCallback | None = None
    ) -> list[Path]:
        op = await self._operation(task.id)
        result, videos = result_videos(op)
        state = operation_status(op, result, videos, task.spec.n, self._poll_s)
        if state.state != "succeeded":
            raise ProviderError(
                "upstream_not_ready",
                f"{self.name}: operation is {state.state}: {state.error_message or ''}",
                retryable=state.state == "running",
            )
        paths: list[Path] = []
        for index, video in enumerate(videos):
            dest = dest_dir / f"{index}.mp4"
            if video.get("bytesBase64Encoded"):
                paths.append(await write_base64(str(video["bytesBase64Encoded"]), dest))
            else:
                # Objects in the operator's bucket: a deleted one is gone for good.
                url = self._storage_base + gcs_media_path(str(video["gcsUri"]))
                try:
                    paths.append(await self._http.download(url, dest, headers=await self._auth()))
                except ProviderError as error:
                    if error.expired:
                        raise ProviderError(
                            "result_expired", error.message, retryable=False, expired=True
                        ) from error
                    raise
            if progress is not None:
                progress((index + 1) / len(videos))
        return paths

    async def cancel(self, task: UpstreamTask) -> None:
        """A no-op: Vertex exposes no cancel for Veo operations (reference 2.1)."""

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._tokens is not None:
            await self._tokens.aclose()


def create(config: DeploymentConfig, deps: ProviderDeps) -> VertexProvider:
    return VertexProvider(config, deps)
