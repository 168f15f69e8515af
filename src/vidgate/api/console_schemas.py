"""The objects of the routes the web console reads (``GET /v1/me``, the gallery's
links, ``GET /v1/videos/{id}/details``): public API like the rest, any key."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from vidgate.api.schemas import VideoObject
from vidgate.core.keys import KeyRecord


class ProjectRef(BaseModel):
    id: str
    name: str


class KeySelf(BaseModel):
    """The calling key, never its secret."""

    object: Literal["api_key.self"] = "api_key.self"
    id: str
    name: str
    role: Literal["operator", "admin", "member", "reader"]
    mode: Literal["test", "live"]
    project: ProjectRef
    # null: every model.
    models: list[str] | None
    # null: never.
    expires_at: int | None

    @classmethod
    def of(cls, key: KeyRecord) -> KeySelf:
        return cls(
            id=key.id,
            name=key.name,
            role=key.role,
            mode=key.mode,
            project=ProjectRef(id=key.tenant_id, name=key.tenant_name),
            models=list(key.models) if key.models is not None else None,
            expires_at=int(key.expires_at.timestamp()) if key.expires_at else None,
        )


class SpritesheetGrid(BaseModel):
    """How the spritesheet's tiles lie: left to right, then top to bottom."""

    columns: int
    rows: int
    frames: int
    tile_width: int
    tile_height: int


class VideoLinks(BaseModel):
    """Signed links to output 0's files: a plain GET, no Authorization header."""

    video: str
    thumbnail: str
    spritesheet: str
    expires_at: int
    spritesheet_grid: SpritesheetGrid


class ListedVideo(VideoObject):
    # Only with ``links=true``: null until completed, and once the media expired.
    links: VideoLinks | None = None


class VideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ListedVideo]
    first_id: str | None
    last_id: str | None
    has_more: bool


class InputImageInfo(BaseModel):
    """An input image as the request named it; never its bytes."""

    role: Literal["input_reference", "last_frame", "reference_image"]
    sha256: str
    content_type: str
    width: int
    height: int


class StoredRequest(BaseModel):
    """The request as the gateway stored it, after validation and defaults."""

    model: str
    kind: str
    prompt: str
    negative_prompt: str | None
    # For an extension: the added seconds (the Video's seconds is the total).
    seconds: int
    size: str
    resolution: str
    aspect_ratio: str
    fps: int
    n: int
    seed: int | None
    metadata: dict[str, str]
    source_video_id: str | None
    images: list[InputImageInfo]
    webhook_url: str | None


class Deployment(BaseModel):
    provider: str
    upstream_model: str | None
    upstream_id: str | None
    # Deployments a submission failed on before this one.
    tried: list[str]


class HistoryStep(BaseModel):
    status: Literal["queued", "in_progress", "completed", "failed"]
    at: int


class DetailTimings(BaseModel):
    queued_s: float | None
    generating_s: float | None
    total_s: float | None


class DetailOutput(BaseModel):
    index: int
    width: int
    height: int
    duration: float
    fps: float
    size_bytes: int
    video: str
    thumbnail: str
    spritesheet: str


class DetailDelivery(BaseModel):
    id: str
    event_type: str
    url: str
    status: Literal["pending", "delivered", "failed", "ended"]
    attempts: int
    last_status_code: int | None
    created_at: int


class VideoDetailsObject(BaseModel):
    object: Literal["video.details"] = "video.details"
    video: VideoObject
    request: StoredRequest
    deployment: Deployment
    history: list[HistoryStep]
    timings: DetailTimings
    cost: float | None
    estimated_cost: float | None
    currency: Literal["USD"] = "USD"
    links: VideoLinks | None
    outputs: list[DetailOutput]
    webhook_deliveries: list[DetailDelivery]
