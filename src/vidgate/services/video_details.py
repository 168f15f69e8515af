"""``GET /v1/videos/{id}/details``: one video of the caller's project with what the
console's detail page shows (db/video_details.py reads it in one statement). Any role
of the owner's project; another project's id, a deleted video, or an id of another
shape reads as missing, as on the retrieve route."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.errors import NotFound
from vidgate.core.ids import looks_like
from vidgate.core.video_details import VideoDetails
from vidgate.db.video_details import video_details
from vidgate.engine.service import Principal


def _missing(video_id: str) -> NotFound:
    return NotFound(f"no video with id {video_id[:64]!r}", param="video_id", code="video_not_found")


class VideoDetailsService:
    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def details(self, principal: Principal, video_id: str) -> VideoDetails:
        if not looks_like("video", video_id):
            raise _missing(video_id)
        async with self._db.connect() as conn:
            found = await video_details(conn, video_id, principal.tenant_id)
        if found is None:
            raise _missing(video_id)
        return found
