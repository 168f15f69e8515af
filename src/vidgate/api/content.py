"""Serving stored media: the file as stored, with Content-Length and Range support, and
``GET /v1/videos/{id}/content``'s answer, the same from its route and from the edge
(``fast_lane.py``).

A blob on local disk is sent from a memory mapping (``FastFileResponse``). A blob in a
bucket is streamed from the object store with the same Range semantics (one range,
206 with Content-Range, 416 for a range past the end; anything else the whole file),
or answered with a redirect to a presigned URL where storage links are ``presigned``.
A small blob on local disk is sent from memory (services/small_blobs.py).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse, Response, StreamingResponse

from vidgate.api.file_response import FastFileResponse, parse_single_range
from vidgate.core.errors import InvalidParameter, NotFound
from vidgate.core.jobs import JobRecord, JobState
from vidgate.services.media import MediaService, StoredFile

if TYPE_CHECKING:
    from vidgate.api.deps import ApiState

_CACHE = "private, max-age=31536000, immutable"


async def video_content(
    state: ApiState,
    authorization: str | None,
    video_id: str,
    *,
    variant: str,
    index: int,
    expires: int | None,
    signature: str | None,
    method: str,
    range_header: str | None,
) -> Response:
    """A completed video's stored file, for an API key of its owner or a valid signed
    link; raises ``VidgateError``."""
    jobs, media = state.jobs, state.media
    if signature is not None:
        if expires is None or not media.verify_output_link(
            video_id, variant, index, expires, signature
        ):
            # Indistinguishable from a missing video: a bad link reveals nothing.
            raise NotFound(
                f"no video with id {video_id!r}", param="video_id", code="video_not_found"
            )
        job, outputs = await jobs.outputs_unscoped(video_id)
    else:
        principal = await state.auth.authenticate(authorization)
        job, outputs = await jobs.get_with_outputs(principal, video_id)
    if job.state != JobState.COMPLETED:
        raise InvalidParameter(
            f"video {video_id} is {job.state}; content is available once it has completed",
            param="video_id",
            code="video_not_ready",
        )
    check_not_expired(job)
    return await blob_response(
        media,
        await media.output_file(outputs, video_id, variant, index),
        method=method,
        range_header=range_header,
        expires=expires if signature is not None else None,
    )


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
        # A small file comes from memory (services/small_blobs.py): same headers.
        small = await media.small_file(path)
        return FastFileResponse(
            path,
            media_type=file.content_type,
            filename=file.filename,
            content_disposition_type="inline",
            headers=headers,
            stat_result=small.stat_result if small else None,
            content=small.data if small else None,
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
