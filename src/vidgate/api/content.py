"""Serving stored media: the file as stored, with Content-Length and Range support.

A blob on local disk is sent from a memory mapping (``FastFileResponse``). A blob in a
bucket is streamed from the object store with the same Range semantics (one range,
206 with Content-Range, 416 for a range past the end; anything else the whole file),
or answered with a redirect to a presigned URL where storage links are ``presigned``.
"""

from __future__ import annotations

import datetime as dt

from starlette.responses import RedirectResponse, Response, StreamingResponse

from vidgate.api.file_response import FastFileResponse, parse_single_range
from vidgate.core.errors import NotFound
from vidgate.core.jobs import JobRecord
from vidgate.services.media import MediaService, StoredFile

_CACHE = "private, max-age=31536000, immutable"


def check_not_expired(job: JobRecord) -> None:
    """A video past its project's retention has no content (its media is deleted, or
    about to be): 404 ``video_expired``, whether or not the sweep has run yet."""
    if job.expires_at is not None and job.expires_at <= dt.datetime.now(dt.UTC):
        raise NotFound(
            f"video {job.id} expired at {job.expires_at.isoformat()}; its project keeps"
            " media for a limited time and this video's content has been deleted",
            param="video_id",
            code="video_expired",
        )


async def blob_response(
    media: MediaService,
    file: StoredFile,
    *,
    method: str = "GET",
    range_header: str | None = None,
    expires: int | None = None,
) -> Response:
    """``expires``: when the signed link being answered ends (a presigned URL lasts no
    longer)."""
    path = media.local_path(file.sha256)
    headers = {"Cache-Control": _CACHE}
    if path is not None:
        # Not Starlette's FileResponse: its 64 KiB reads reach a tenth of nginx's rate.
        return FastFileResponse(
            path,
            media_type=file.content_type,
            filename=file.filename,
            content_disposition_type="inline",
            headers=headers,
        )
    presigned = await media.presigned_url(file, expires)
    if presigned is not None:
        return RedirectResponse(presigned, status_code=307, headers={"Cache-Control": "no-store"})
    return await _streamed(media, file, method, range_header)


async def _streamed(
    media: MediaService, file: StoredFile, method: str, range_header: str | None
) -> Response:
    size = await media.size(file.sha256)
    headers = {
        "Cache-Control": _CACHE,
        "Accept-Ranges": "bytes",
        # The content's own hash: the strongest validator there is.
        "ETag": f'"{file.sha256}"',
        "Content-Disposition": f'inline; filename="{file.filename}"',
    }
    status, start, end = 200, 0, size
    if range_header is not None:
        single = parse_single_range(range_header, size)
        if single is not None:
            status, (start, end) = 206, single
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        elif _past_the_end(range_header, size):
            return Response(
                status_code=416,
                headers={"Content-Range": f"bytes */{size}", "Content-Type": "text/plain"},
            )
        # Several ranges, or a header that is not a byte range: the whole file (RFC 9110
        # lets a server ignore Range).
    headers["Content-Length"] = str(end - start)
    if method.upper() == "HEAD" or start == end:
        return Response(status_code=status, headers=headers, media_type=file.content_type)
    return StreamingResponse(
        media.iter_range(file.sha256, start, end),
        status_code=status,
        media_type=file.content_type,
        headers=headers,
    )


def _past_the_end(header: str, size: int) -> bool:
    """Whether ``header`` asks for bytes that start at or after the end of the file
    (``bytes=N-`` or ``bytes=N-M`` with N >= size, or ``bytes=-0``): 416."""
    units, sep, spec = header.partition("=")
    if not sep or units.strip().lower() != "bytes" or "," in spec:
        return False
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first or last):
        return False
    if not all(part.isascii() and part.isdigit() for part in (first, last) if part):
        return False
    if not first:
        return int(last) == 0
    return int(first) >= size and (not last or int(last) >= int(first))
