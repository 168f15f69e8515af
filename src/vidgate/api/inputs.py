"""Turning what a client sent into bytes and fields: bodies, forms, image references."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from vidgate.api.errors import validation_error
from vidgate.api.forms import read_multipart, read_urlencoded
from vidgate.api.schemas import parameter_error
from vidgate.config import Settings
from vidgate.core.errors import InvalidImage, InvalidParameter, InvalidRequest
from vidgate.core.urls import check_outbound_url
from vidgate.engine.service import InputImage, JobService
from vidgate.media.images import parse_data_url
from vidgate.net import public_http

JSON_TYPES = ("application/json",)
MAX_FORM_FIELDS = 200
M = TypeVar("M", bound=BaseModel)


def _set_path(target: dict[str, Any], key: str, value: Any) -> None:
    """``metadata[a]=b`` (how SDKs flatten objects into form fields) -> nested dicts."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        target[key] = value
        return
    parts = [head] + [p.rstrip("]") for p in ("[" + rest).split("[") if p]
    node = target
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InvalidRequest(f"conflicting form fields for {head!r}", param=head)
        node = child
    node[parts[-1]] = value


async def read_body(
    request: Request, *, max_files: int = 2
) -> tuple[dict[str, Any], dict[str, list[bytes]]]:
    """A JSON or form body as plain fields, plus uploaded files by field name.

    Form bodies are read strictly (``api/forms.py``): a truncated or malformed multipart
    body and text that is not UTF-8 are refused, as a JSON body would be.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await read_multipart(
            request.headers["content-type"],
            request.stream(),
            max_files=max_files,
            max_fields=MAX_FORM_FIELDS,
        )
    elif content_type == "application/x-www-form-urlencoded":
        form = read_urlencoded(await request.body(), max_fields=MAX_FORM_FIELDS)
    elif content_type in JSON_TYPES or content_type.endswith("+json") or not content_type:
        raw = await request.body()
        document = _json(raw)
        if not isinstance(document, dict):
            raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
        return document, {}
    else:
        raise InvalidRequest(
            f"unsupported Content-Type {content_type!r}: send application/json or"
            " multipart/form-data",
            code="unsupported_media_type",
        )
    fields: dict[str, Any] = {}
    for key, value in form.fields:
        if key in ("metadata", "input_reference", "video") and value.startswith("{"):
            _set_path(fields, key, _json(value))
        else:
            _set_path(fields, key, value)
    files: dict[str, list[bytes]] = {}
    for key, data in form.files:
        files.setdefault(key.removesuffix("[]"), []).append(data)
    return fields, files


def _json(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON body: {exc}", code="invalid_json") from exc


def parse_model(model: type[M], fields: dict[str, Any]) -> M:
    """``fields`` checked against a request schema; every failure is a 400 naming the
    parameter (``invalid_parameter`` for the field checks of ``api/schemas.py``)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors()
        raise (parameter_error(errors) or validation_error(list(errors))) from exc


async def inspect_url(url: str, jobs: JobService, settings: Settings, *, param: str) -> InputImage:
    """The image behind ``url``, fetched and inspected; stored only by the create."""
    return await jobs.inspect_input(await load_image_url(url, settings, param=param), param=param)


async def load_image_url(url: str, settings: Settings, *, param: str) -> bytes:
    """The bytes behind a ``data:`` URL or an https URL (fetched once, size-capped, within
    ``image_fetch_timeout_s``, from public addresses only: ``vidgate.net.public_http``)."""
    if url.startswith("data:"):
        _, data = parse_data_url(url, param=param, max_bytes=settings.max_image_bytes)
        return data
    if not url.startswith(("https://", "http://")):
        raise InvalidImage("an image URL must be https:// or a data: URL", param=param)
    try:
        target = check_outbound_url(url, allow_insecure=settings.allow_insecure_urls, param=param)
    except InvalidParameter as exc:
        raise InvalidImage(exc.message, param=param) from None
    try:
        return await public_http.fetch_capped(
            target,
            max_bytes=settings.max_image_bytes,
            deadline_s=settings.image_fetch_timeout_s,
            allow_private=settings.allow_insecure_urls,
            headers={"user-agent": "vidgate-image-fetch", "accept": "image/*"},
        )
    except public_http.OutboundError as exc:
        raise InvalidImage(f"could not fetch the image URL: {exc.reason}", param=param) from None
