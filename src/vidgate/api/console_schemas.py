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
