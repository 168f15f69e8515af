"""Serving stored media: the file as stored, with Content-Length and Range support."""

from __future__ import annotations

from starlette.responses import Response, StreamingResponse

from vidgate.api.file_response import FastFileResponse
from vidgate.services.media import MediaService, StoredFile


async def blob_response(media: MediaService, file: StoredFile) -> Response:
    path = media.local_path(file.sha256)
    headers = {"Cache-Control": "private, max-age=31536000, immutable"}
    if path is not None:
        # Not Starlette's FileResponse: its 64 KiB reads reach a tenth of nginx's rate.
        return FastFileResponse(
            path,
            media_type=file.content_type,
            filename=file.filename,
            content_disposition_type="inline",
            headers=headers,
        )
    size = await media.size(file.sha256)
    headers["Content-Length"] = str(size)
    return StreamingResponse(
        media.iter_range(file.sha256), media_type=file.content_type, headers=headers
    )
