"""The task shape of the multi-model routers: ``/v1/videos/generations``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from vidgate.api.deps import Caller, public_base_url
from vidgate.api.inputs import load_image_url, parse_model, read_body
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import CreateGenerationBody, GenerationObject
from vidgate.api.views import generation_object
from vidgate.core.errors import InvalidRequest
from vidgate.core.spec import ImageRef, VideoRequest

router = APIRouter(prefix="/v1/videos/generations", tags=["videos (task shape)"])


@router.post("", response_model=GenerationObject)
async def create_generation(
    request: Request,
    caller: Caller,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> FastJSONResponse:
    jobs, settings = caller.jobs, caller.settings
    fields, files = await read_body(request, max_files=1)
    if files:
        raise InvalidRequest("send the image as a data: URL or https URL in 'image'", param="image")
    body = parse_model(CreateGenerationBody, fields)

    async def stored(url: str | None, param: str) -> ImageRef | None:
        if url is None:
            return None
        return await jobs.store_image(await load_image_url(url, settings, param=param), param=param)

    image = await stored(body.image, "image")
    last_frame = await stored(body.last_frame, "last_frame")
    references = [
        ref
        for url in body.reference_images or []
        if (ref := await stored(url, "reference_images")) is not None
    ]
    req = VideoRequest(
        model=body.model,
        prompt=body.prompt,
        seconds=body.duration,
        size=body.size,
        resolution=body.resolution,
        aspect_ratio=body.aspect_ratio,
        fps=body.fps,
        n=body.n,
        seed=body.seed,
        negative_prompt=body.negative_prompt,
        metadata=body.metadata,
        image=image,
        last_frame=last_frame,
        reference_images=references,
    )
    job = await jobs.create(
        caller.principal, req, webhook_url=body.webhook_url, idempotency_key=idempotency_key
    )
    view = generation_object(job, [], caller.state.signer, public_base_url(request, settings))
    return FastJSONResponse(view.model_dump(mode="json"))


@router.get("/{generation_id}", response_model=GenerationObject)
async def get_generation(generation_id: str, request: Request, caller: Caller) -> FastJSONResponse:
    job, outputs = await caller.jobs.get_with_outputs(caller.principal, generation_id)
    base_url = public_base_url(request, caller.settings)
    view = generation_object(job, outputs, caller.state.signer, base_url)
    return FastJSONResponse(view.model_dump(mode="json"))
