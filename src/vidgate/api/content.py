"""Serving stored media: the file as stored, with Content-Length and Range support."""

from __future__ import annotations

from starlette.responses import Response, StreamingResponse

from vidgate.api.file_response import FastFileResponse
from vidgate.core.errors import InvalidParameter, NotFound
from vidgate.core.jobs import OutputRecord
from vidgate.media.previews import (
    SPRITESHEET_CONTENT_TYPE,
    THUMBNAIL_CONTENT_TYPE,
    VIDEO_CONTENT_TYPE,
)
from vidgate.media.storage import BlobStore

VARIANTS = {
    "video": ("video_sha256", VIDEO_CONTENT_TYPE, "mp4"),
    "thumbnail": ("thumbnail_sha256", THUMBNAIL_CONTENT_TYPE, "webp"),
    "spritesheet": ("spritesheet_sha256", SPRITESHEET_CONTENT_TYPE, "jpg"),
}


def pick_output(
    outputs: list[OutputRecord], video_id: str, variant: str, index: int
) -> tuple[str, str, str]:
    """``(sha256, content_type, filename)`` of one stored file of a completed job."""
    if variant not in VARIANTS:
        raise InvalidParameter(
            f"variant {variant!r} is not supported; allowed: video, thumbnail, spritesheet",
            param="variant",
        )
    if not outputs:
        raise NotFound(
            f"video {video_id} has no content yet", param="video_id", code="content_not_ready"
        )
    if not 0 <= index < len(outputs):
        raise InvalidParameter(
            f"index {index} is out of range; allowed: 0-{len(outputs) - 1}", param="index"
        )
    column, content_type, ext = VARIANTS[variant]
    sha = str(getattr(outputs[index], column))
    suffix = f"-{index}" if index else ""
    return (
        sha,
        content_type,
        f"{video_id}{suffix}.{'' if variant == 'video' else variant + '.'}{ext}",
    )


async def blob_response(
    blobs: BlobStore, sha256: str, content_type: str, filename: str
) -> Response:
    path = blobs.local_path(sha256)
    headers = {"Cache-Control": "private, max-age=31536000, immutable"}
    if path is not None:
        # Not Starlette's FileResponse: its 64 KiB reads reach a tenth of nginx's rate.
        return FastFileResponse(
            path,
            media_type=content_type,
            filename=filename,
            content_disposition_type="inline",
            headers=headers,
        )
    size = await blobs.size(sha256)
    headers["Content-Length"] = str(size)
    return StreamingResponse(blobs.iter_range(sha256), media_type=content_type, headers=headers)
