"""The task shape of the multi-model routers: ``/v1/videos/generations``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from vidgate.api.deps import AppSettings, CurrentPrincipal, Jobs, State, public_base_url
from vidgate.api.inputs import load_image_url, parse_model, read_body
from vidgate.api.responses import FastJSONResponse
from vidgate.api.schemas import CreateGenerationBody, GenerationObject
from vidgate.api.views import generation_object
from vidgate.core.errors import InvalidRequest
from vidgate.core.spec import VideoRequest

router = APIRouter(prefix="/v1/videos/generations", tags=["videos (task shape)"])


@router.post("", response_model=GenerationObject)
async def create_generation(
    request: Request,
    principal: CurrentPrincipal,
    jobs: Jobs,
    state: State,
    settings: AppSettings,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> FastJSONResponse:
    fields, files = await read_body(request, max_files=1)
    if files:
        raise InvalidRequest("send the image as a data: URL or https URL in 'image'", param="image")
    body = parse_model(CreateGenerationBody, fields)
    image = None
    if body.image is not None:
        data = await load_image_url(body.image, settings, param="image")
        image = await jobs.store_image(data, param="image")
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
    )
    job = await jobs.create(
        principal, req, webhook_url=body.webhook_url, idempotency_key=idempotency_key
    )
    view = generation_object(job, [], state.signer, public_base_url(request, settings))
    return FastJSONResponse(view.model_dump(mode="json"))


@router.get("/{generation_id}", response_model=GenerationObject)
async def get_generation(
    generation_id: str,
    request: Request,
    principal: CurrentPrincipal,
    jobs: Jobs,
    state: State,
    settings: AppSettings,
) -> FastJSONResponse:
    job, outputs = await jobs.get_with_outputs(principal, generation_id)
    view = generation_object(job, outputs, state.signer, public_base_url(request, settings))
    return FastJSONResponse(view.model_dump(mode="json"))
