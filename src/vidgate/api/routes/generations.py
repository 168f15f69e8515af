"""The task shape of the multi-model routers: ``/v1/videos/generations``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from vidgate.api.deps import Caller, Writer, public_base_url
from vidgate.api.inputs import inspect_url, parse_model, read_body
from vidgate.api.openapi import request_body
from vidgate.api.requests import RequestImages, create_job
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import CreateGenerationBody, GenerationObject
from vidgate.api.views import generation_object
from vidgate.core.errors import InvalidRequest

router = APIRouter(prefix="/v1/videos/generations", tags=["videos (task shape)"])


@router.post(
    "",
    response_model=GenerationObject,
    openapi_extra=request_body(CreateGenerationBody, rate_limited=True),
)
async def create_generation(
    request: Request,
    caller: Writer,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> FastJSONResponse:
    jobs, settings = caller.jobs, caller.settings
    fields, files = await read_body(request, max_files=1)
    if files:
        raise InvalidRequest("send the image as a data: URL or https URL in 'image'", param="image")
    body = parse_model(CreateGenerationBody, fields)

    # Inspected, not stored: create writes the images once the whole request is valid.
    image = last_frame = None
    if body.image is not None:
        image = await inspect_url(body.image, jobs, settings, param="image")
    if body.last_frame is not None:
        last_frame = await inspect_url(body.last_frame, jobs, settings, param="last_frame")
    references = [
        await inspect_url(url, jobs, settings, param="reference_images")
        for url in body.reference_images or []
    ]
    job, limit_headers = await create_job(
        caller,
        body,
        idempotency_key,
        model=body.model,
        seconds=body.duration,
        images=RequestImages(image, last_frame, references),
    )
    view = generation_object(job, [], caller.media, public_base_url(request, settings))
    return FastJSONResponse(view.model_dump(mode="json"), headers=limit_headers)


@router.get("/{generation_id}", response_model=GenerationObject)
async def get_generation(generation_id: str, request: Request, caller: Caller) -> FastJSONResponse:
    jobs, principal = caller.jobs, caller.principal
    job, outputs = await jobs.get_with_outputs(principal, generation_id)
    if not job.is_terminal:
        # A job about to complete is waited for (engine/status_hold.py); its outputs
        # read again once it has.
        held = await jobs.hold(principal, job)
        if held.state != job.state:
            job, outputs = await jobs.get_with_outputs(principal, generation_id)
    base_url = public_base_url(request, caller.settings)
    view = generation_object(job, outputs, caller.media, base_url)
    return FastJSONResponse(view.model_dump(mode="json"))
