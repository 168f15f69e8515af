"""The OpenAI Videos shape: ``/v1/videos``; the official ``openai`` SDK works unchanged."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from vidgate.api.billing_schemas import EstimateBody, EstimateObject, estimate_json
from vidgate.api.console_schemas import VideoDetailsObject, VideoList
from vidgate.api.content import video_content as content_response
from vidgate.api.deps import Caller, State, Writer, get_writer, public_base_url
from vidgate.api.fast_lane import video_status
from vidgate.api.inputs import inspect_url, parse_model, read_body
from vidgate.api.openapi import request_body
from vidgate.api.requests import RequestImages, create_job, video_request
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import (
    CreateVideoBody,
    ExtendBody,
    ImageUrlReference,
    RemixBody,
    VideoDeleted,
    VideoObject,
)
from vidgate.api.views import details_json, video_json, video_links
from vidgate.config import Settings
from vidgate.core.errors import InvalidImage, InvalidRequest
from vidgate.core.video_filters import video_filter
from vidgate.engine.service import InputImage, JobService

router = APIRouter(prefix="/v1/videos", tags=["videos (OpenAI shape)"])

DEFAULT_MODEL = "sora-2"

# The list's time filters: Unix seconds up to the last second of year 9999.
_LAST_TIME = 253_402_300_799

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


async def _image(
    ref: ImageUrlReference | str | None,
    uploads: list[bytes] | None,
    jobs: JobService,
    settings: Settings,
    *,
    param: str,
) -> InputImage | None:
    """An image sent as a file part, or referenced as ``{"image_url": ...}`` / a URL;
    inspected, not stored."""
    if uploads:
        if len(uploads) > 1:
            raise InvalidImage(f"send one {param}", param=param)
        return await jobs.inspect_input(uploads[0], param=param)
    if ref is None:
        return None
    url = ref if isinstance(ref, str) else ref.image_url
    if isinstance(ref, ImageUrlReference) and ref.file_id is not None and url is None:
        raise InvalidImage(
            f"{param}.file_id is not supported: send the image as a file part, an"
            " https URL or a data URL",
            param=param,
        )
    if not url:
        raise InvalidImage(f"{param} needs an image_url", param=param)
    return await inspect_url(url, jobs, settings, param=param)


async def _reference_images(
    body: CreateVideoBody | EstimateBody,
    uploads: list[bytes] | None,
    jobs: JobService,
    settings: Settings,
) -> list[InputImage]:
    refs: list[InputImage] = []
    for data in uploads or []:
        refs.append(await jobs.inspect_input(data, param="reference_images"))
    for item in body.reference_images or []:
        image = await _image(item, None, jobs, settings, param="reference_images")
        if image is not None:
            refs.append(image)
    return refs


@router.post(
    "", response_model=VideoObject, openapi_extra=request_body(CreateVideoBody, rate_limited=True)
)
async def create_video(
    request: Request, idempotency_key: IdempotencyKey = None
) -> FastJSONResponse:
    # The caller without a Depends (see retrieve_video).
    caller = await get_writer(request)
    jobs, settings = caller.jobs, caller.settings
    fields, files = await read_body(request, max_files=8)
    unknown_files = set(files) - {"input_reference", "last_frame", "reference_images"}
    if unknown_files:
        raise InvalidRequest(
            f"unexpected file field {sorted(unknown_files)[0]!r}", param=sorted(unknown_files)[0]
        )
    body = parse_model(CreateVideoBody, fields)
    image = await _image(
        body.input_reference, files.get("input_reference"), jobs, settings, param="input_reference"
    )
    last_frame = await _image(
        body.last_frame, files.get("last_frame"), jobs, settings, param="last_frame"
    )
    references = await _reference_images(body, files.get("reference_images"), jobs, settings)
    job, limit_headers = await create_job(
        caller,
        body,
        idempotency_key,
        model=body.model or DEFAULT_MODEL,
        seconds=body.seconds,
        images=RequestImages(image, last_frame, references),
    )
    return FastJSONResponse(video_json(job), headers=limit_headers)


@router.post("/estimate", response_model=EstimateObject, openapi_extra=request_body(EstimateBody))
async def estimate_video(request: Request, caller: Caller) -> FastJSONResponse:
    """What a create of either shape would do with this body (model, deployment and why,
    seconds, price for the caller's project), without creating anything."""
    jobs, settings = caller.jobs, caller.settings
    fields, files = await read_body(request, max_files=8)
    unknown_files = set(files) - {"input_reference", "image", "last_frame", "reference_images"}
    if unknown_files:
        raise InvalidRequest(
            f"unexpected file field {sorted(unknown_files)[0]!r}", param=sorted(unknown_files)[0]
        )
    body = parse_model(EstimateBody, fields)
    for openai_name, task_name in (("seconds", "duration"), ("input_reference", "image")):
        if (getattr(body, openai_name) is not None or openai_name in files) and (
            getattr(body, task_name) is not None or task_name in files
        ):
            raise InvalidRequest(
                f"give {openai_name} (OpenAI shape) or {task_name} (task shape), not both",
                param=task_name,
            )
    image = await _image(
        body.input_reference if body.input_reference is not None else body.image,
        files.get("input_reference") or files.get("image"),
        jobs,
        settings,
        param="input_reference" if body.image is None and "image" not in files else "image",
    )
    last_frame = await _image(
        body.last_frame, files.get("last_frame"), jobs, settings, param="last_frame"
    )
    references = await _reference_images(body, files.get("reference_images"), jobs, settings)
    req = video_request(
        body,
        model=body.model or DEFAULT_MODEL,
        seconds=body.seconds if body.seconds is not None else body.duration,
        images=RequestImages(image, last_frame, references),
    )
    return FastJSONResponse(estimate_json(await jobs.estimate(caller.principal, req)))


@router.get("", response_model=VideoList)
async def list_videos(
    request: Request,
    caller: Caller,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    model: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=64)] = None,
    mode: Annotated[str | None, Query(max_length=64)] = None,
    created_after: Annotated[int | None, Query(ge=0, le=_LAST_TIME)] = None,
    created_before: Annotated[int | None, Query(ge=0, le=_LAST_TIME)] = None,
    links: bool = False,
) -> FastJSONResponse:
    """The caller's videos, newest first by default. Filters combine (AND) and keep
    the cursor: ``model`` (an id or alias: every video of its model, whichever of its
    names created it), ``status`` (queued, in_progress, completed, failed), ``mode``
    (test, live), ``created_after`` (inclusive) and ``created_before`` (exclusive),
    Unix seconds. ``links=true`` adds each video's signed ``links``."""
    jobs = caller.jobs
    where = video_filter(
        model_names=jobs.model_names(model) if model is not None else None,
        status=status,
        mode=mode,
        created_after=created_after,
        created_before=created_before,
    )
    rows, has_more = await jobs.page(
        caller.principal, after=after, limit=limit, order=order, where=where, first_output=links
    )
    data = [video_json(job) for job, _ in rows]
    if links:
        base_url = public_base_url(request, caller.settings)
        for item, (job, output) in zip(data, rows, strict=True):
            item["links"] = video_links(job, output, caller.media, base_url)
    return FastJSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": rows[0][0].id if rows else None,
            "last_id": rows[-1][0].id if rows else None,
            "has_more": has_more,
        }
    )


@router.post(
    "/extensions",
    response_model=VideoObject,
    openapi_extra=request_body(ExtendBody, rate_limited=True),
)
async def extend_video(
    request: Request, caller: Writer, idempotency_key: IdempotencyKey = None
) -> FastJSONResponse:
    jobs, principal = caller.jobs, caller.principal
    fields, files = await read_body(request)
    if files:
        raise InvalidRequest(
            "uploading a video to extend is not supported; pass video={'id': ...} of a"
            " completed video",
            param="video",
        )
    body = parse_model(ExtendBody, fields)
    source = await jobs.source(principal, body.video.id)
    source_job = await jobs.get(principal, body.video.id)
    job, limit_headers = await create_job(
        caller,
        body,
        idempotency_key,
        model=body.model or source_job.model,
        seconds=body.seconds,
        kind="extend",
        source=source,
    )
    return FastJSONResponse(video_json(job), headers=limit_headers)


@router.get("/{video_id}", response_model=VideoObject)
async def retrieve_video(video_id: str, request: Request) -> Response:
    # Requests for ids of vidgate's shape are answered by the edge before routing
    # (api/fast_lane.py); this route answers the rest the same way, and documents it.
    return await video_status(request.app.state.api, request.headers.get("authorization"), video_id)


@router.get("/{video_id}/details", response_model=VideoDetailsObject)
async def video_details(video_id: str, request: Request, caller: Caller) -> FastJSONResponse:
    """vidgate extension: the video with its request as stored, the deployment that
    served it, its status history and timings, cost, links, outputs and webhook
    deliveries (the web console's detail page). Any role of the owner's project."""
    found = await caller.state.details.details(caller.principal, video_id)
    base_url = public_base_url(request, caller.settings)
    return FastJSONResponse(details_json(found, caller.media, base_url))


@router.delete("/{video_id}", response_model=VideoDeleted)
async def delete_video(video_id: str, caller: Writer) -> FastJSONResponse:
    await caller.jobs.delete(caller.principal, video_id)
    return FastJSONResponse(VideoDeleted(id=video_id).model_dump(mode="json"))


@router.post(
    "/{video_id}/remix",
    response_model=VideoObject,
    openapi_extra=request_body(RemixBody, rate_limited=True),
)
async def remix_video(
    video_id: str, request: Request, caller: Writer, idempotency_key: IdempotencyKey = None
) -> FastJSONResponse:
    jobs, principal = caller.jobs, caller.principal
    fields, files = await read_body(request, max_files=1)
    if files:
        raise InvalidRequest("a remix takes only a prompt", param=sorted(files)[0])
    body = parse_model(RemixBody, fields)
    source = await jobs.source(principal, video_id)
    source_job = await jobs.get(principal, video_id)
    job, limit_headers = await create_job(
        caller, body, idempotency_key, model=source_job.model, kind="remix", source=source
    )
    return FastJSONResponse(video_json(job), headers=limit_headers)


@router.api_route("/{video_id}/content", methods=["GET", "HEAD"])
async def video_content(
    video_id: str,
    request: Request,
    state: State,
    variant: str = "video",
    index: Annotated[int, Query(ge=0, le=63)] = 0,
    expires: int | None = None,
    signature: str | None = None,
) -> Response:
    """The stored file. Either an API key of the owner, or a valid signed link (the
    common requests are answered at the edge by the same code, ``fast_lane.py``)."""
    return await content_response(
        state,
        request.headers.get("authorization"),
        video_id,
        variant=variant,
        index=index,
        expires=expires,
        signature=signature,
        method=request.method,
        range_header=request.headers.get("range"),
    )
