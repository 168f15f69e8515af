"""``/v1/inputs/{sha256}``: signed links to stored input images, for providers that
take inputs only as URLs. The link itself is the permission; nothing else is served."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from vidgate.api.content import blob_response
from vidgate.api.deps import State
from vidgate.core.errors import NotFound

router = APIRouter(prefix="/v1/inputs", tags=["inputs"])


@router.api_route("/{sha256}", methods=["GET", "HEAD"])
async def input_file(
    sha256: str, request: Request, state: State, expires: int = 0, signature: str = ""
) -> Response:
    file = await state.media.signed_input(sha256, expires, signature)
    if file is None:
        raise NotFound("no such input", code="not_found")
    return await blob_response(
        state.media,
        file,
        method=request.method,
        range_header=request.headers.get("range"),
        expires=expires,
    )
