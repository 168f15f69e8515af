"""Request bodies and response objects of both API shapes.

Both shapes are views of the same job record (``views.py`` builds them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    # An unknown field is a 400, as in the OpenAI API: a typo never goes unnoticed.
    model_config = ConfigDict(extra="forbid")


class ImageUrlReference(_Body):
    image_url: str | None = None
    file_id: str | None = None


class CreateVideoBody(_Body):
    """``POST /v1/videos``: the OpenAI fields plus vidgate's extras (via ``extra_body``)."""

    prompt: str
    model: str | None = None
    seconds: bool | int | float | str | None = None
    size: str | None = None
    input_reference: ImageUrlReference | str | None = None
    # vidgate extensions: a last frame, and reference images (https or data URLs).
    last_frame: ImageUrlReference | str | None = None
    reference_images: list[ImageUrlReference | str] | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    fps: bool | int | str | None = None
    n: bool | int | str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    metadata: dict[str, str] | None = None
    webhook_url: str | None = None


class RemixBody(_Body):
    prompt: str
    metadata: dict[str, str] | None = None
    webhook_url: str | None = None


class VideoReference(_Body):
    id: str


class ExtendBody(_Body):
    prompt: str
    video: VideoReference
    seconds: bool | int | float | str | None = None
    model: str | None = None
    metadata: dict[str, str] | None = None
    webhook_url: str | None = None


class CreateGenerationBody(_Body):
    """``POST /v1/videos/generations``: the multi-model routers' task shape."""

    model: str
    prompt: str
    duration: bool | int | float | str | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    size: str | None = None
    n: bool | int | str | None = None
    image: str | None = None
    last_frame: str | None = None
    reference_images: list[str] | None = None
    fps: bool | int | str | None = None
    seed: int | None = None
    negative_prompt: str | None = None
    metadata: dict[str, str] | None = None
    webhook_url: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str


class VideoObject(BaseModel):
    """The OpenAI ``Video`` object, with vidgate's extra fields after ``error``."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    expires_at: int | None
    prompt: str
    seconds: str
    size: str
    remixed_from_video_id: str | None
    error: ErrorInfo | None
    # vidgate extensions
    kind: str
    resolution: str
    aspect_ratio: str
    fps: int
    n: int
    seed: int | None
    metadata: dict[str, str]
    estimated_cost: float
    cost: float | None
    currency: Literal["USD"] = "USD"


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VideoObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


class GenerationOutput(BaseModel):
    index: int
    url: str
    thumbnail_url: str
    spritesheet_url: str
    content_type: Literal["video/mp4"] = "video/mp4"
    width: int
    height: int
    duration: float
    fps: float
    size_bytes: int
    expires_at: int


class GenerationObject(BaseModel):
    id: str
    object: Literal["video.generation"] = "video.generation"
    model: str
    status: Literal["queued", "processing", "completed", "failed"]
    progress: int
    created_at: int
    completed_at: int | None
    prompt: str
    duration: int
    resolution: str
    aspect_ratio: str
    size: str
    fps: int
    n: int
    seed: int | None
    metadata: dict[str, str]
    webhook_url: str | None
    error: ErrorInfo | None
    data: list[GenerationOutput]
    estimated_cost: float
    cost: float | None
    currency: Literal["USD"] = "USD"


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    description: str
    capabilities: dict[str, Any]
    pricing: dict[str, Any]
    deployments: list[dict[str, Any]]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
