"""What the two Google adapters share: Veo on Vertex AI (``vertex.py``) and the Gemini
API (``gemini.py``) speak the same Google API conventions.

- errors: Google's ``{"error": {code, message, status, details}}`` body, with the hints
  the HTTP status alone loses (``refine_error``), and ``google.rpc.Status`` codes in a
  failed operation;
- calls: one JSON call (``google_json``), its errors refined, its answer an object;
- Veo long-running operations: ``done``/``error``/responsible-AI filtering read into an
  UpstreamStatus (``operation_status``); each adapter finds the videos in its own place;
- the inputs as base64 (an image of a type the API does not read converted to PNG
  first), the Veo request instance (the prompt and its images) and inline base64
  results.

Each adapter keeps what differs: Vertex's OAuth2 bearer token and GCS results, the
Gemini API's key, Files API downloads and Interactions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vidgate.core.spec import ImageRef, JobSpec
from vidgate.providers import failures
from vidgate.providers.base import ProviderDeps, ProviderError, UpstreamStatus
from vidgate.providers.http import UpstreamClient, default_error_message
from vidgate.providers.inputs import image_as, read_blob

# The image types Veo reads (Vertex, and the Gemini API's legacy Veo); the adapters
# convert any other input image to PNG.
VEO_IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})

# Veo takes one to a few minutes; Google's samples poll every 10-20 s.
DEFAULT_POLL_S = 5.0
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
# A failed operation's google.rpc code (by name): Google's own trouble is worth another
# deployment; a refusal in the message's words wins over the code (``rpc_failure``).
RPC_FAILURES: dict[str, failures.Failure] = {
    "INVALID_ARGUMENT": failures.INVALID,
    "FAILED_PRECONDITION": failures.FAILED,
    "DEADLINE_EXCEEDED": failures.TIMED_OUT,
    "RESOURCE_EXHAUSTED": failures.TRANSIENT,
    "UNKNOWN": failures.TRANSIENT,
    "ABORTED": failures.TRANSIENT,
    "INTERNAL": failures.TRANSIENT,
    "UNAVAILABLE": failures.TRANSIENT,
}
# The RetryInfo delay as google_error_message writes it into a message.
_RETRY_HINT = re.compile(r"\[retry after ([0-9.]+)s\]")


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


def rpc_failure(code: str, message: str | None) -> failures.Failure:
    """What a Google error code and message say the failure is."""
    said = failures.from_text(code, message)
    if said is failures.REFUSED:
        return said
    return RPC_FAILURES.get(code, said)


def operation_status(
    op: dict[str, Any],
    result: dict[str, Any],
    videos: list[Any],
    expected: int | None,
    poll_s: float,
    provider: str = "google",
) -> UpstreamStatus:
    """A Veo long-running operation as an UpstreamStatus. ``result`` holds the
    raiMediaFiltered* fields and ``videos`` the usable outputs (their place differs
    between Vertex and the Gemini API)."""
    if op.get("error"):
        code, message = rpc_error(op["error"])
        return failures.failed(rpc_failure(code, message), provider, message, code)
    if not op.get("done"):
        # proto3 JSON leaves out ``done: false``; Veo reports no progress.
        return UpstreamStatus("running", poll_after_s=poll_s)
    if not videos or (expected is not None and len(videos) < expected):
        filtered = result.get("raiMediaFilteredCount") or 0
        reasons = "; ".join(str(r) for r in result.get("raiMediaFilteredReasons") or [])
        made = f"{len(videos)} of {expected}" if expected else f"{len(videos)}"
        message = f"{made} videos returned, {filtered} filtered by responsible-AI checks"
        # Filtered: refused by responsible-AI checks. Else Google made too few videos.
        return failures.failed(
            failures.REFUSED if filtered else failures.TRANSIENT,
            provider,
            f"{message}: {reasons}" if reasons else message,
        )
    return UpstreamStatus("succeeded", progress=100)


async def google_json(
    http: UpstreamClient, method: str, path: str, **kwargs: Any
) -> dict[str, Any]:
    """One call to a Google API: its errors refined, its answer a JSON object."""
    try:
        body = await http.json(method, path, **kwargs)
    except ProviderError as error:
        refined = refine_error(error)
        if refined is error:
            raise
        raise refined from error
    if not isinstance(body, dict):
        raise ProviderError(
            "upstream_bad_response", f"{http.provider}: expected a JSON object", retryable=True
        )
    return body


@dataclass(frozen=True)
class Base64Image:
    """An input image as bare base64, with the type of those bytes (a converted
    image's, not the client's)."""

    data: str
    mime_type: str


def veo_image(image: Base64Image) -> dict[str, str]:
    """A Veo image field: ``{bytesBase64Encoded, mimeType}``."""
    return {"bytesBase64Encoded": image.data, "mimeType": image.mime_type}


@dataclass(frozen=True)
class Base64Inputs:
    """A request's stored inputs as bare base64, the form both Google APIs take them in
    (``bytesBase64Encoded`` on Veo, ``data`` in an Interactions content block)."""

    image: Base64Image | None = None
    last_frame: Base64Image | None = None
    references: tuple[Base64Image, ...] = ()
    # The source video, to extend (or, on Omni, remix) it.
    video: str | None = None


async def read_base64_inputs(
    deps: ProviderDeps, spec: JobSpec, accepted: Collection[str]
) -> Base64Inputs:
    """The inputs, each image of a type not ``accepted`` converted to PNG."""

    async def read(image: ImageRef, param: str) -> Base64Image:
        encoded = await image_as(deps, image, accepted, param=param)
        return Base64Image(base64.b64encode(encoded.data).decode(), encoded.content_type)

    image = await read(spec.image, "image") if spec.image else None
    last = await read(spec.last_frame, "last_frame") if spec.last_frame else None
    refs = tuple([await read(ref, "reference_images") for ref in spec.reference_images])
    video = None
    if spec.kind != "generate" and spec.source is not None:
        video = base64.b64encode(await read_blob(deps, spec.source.sha256)).decode()
    return Base64Inputs(image, last, refs, video)


def veo_instance(spec: JobSpec, inputs: Base64Inputs) -> dict[str, Any]:
    """``instances[0]`` of a Veo ``predictLongRunning``: the prompt, the first frame
    (``image``), the last frame (``lastFrame``), the source video and the references."""
    instance: dict[str, Any] = {"prompt": spec.prompt}
    if inputs.image is not None:
        instance["image"] = veo_image(inputs.image)
    if inputs.last_frame is not None:
        instance["lastFrame"] = veo_image(inputs.last_frame)
    if inputs.video is not None:
        instance["video"] = {"bytesBase64Encoded": inputs.video, "mimeType": "video/mp4"}
    if inputs.references:
        instance["referenceImages"] = veo_references(inputs.references)
    return instance


def veo_references(references: Collection[Base64Image]) -> list[dict[str, Any]]:
    """``referenceImages[]``: every reference as an ASSET (subject) image."""
    return [{"image": veo_image(ref), "referenceType": "ASSET"} for ref in references]


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
