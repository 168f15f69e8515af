"""``/v1/inputs/{sha256}``: signed links to stored input images, for providers that
take inputs only as URLs. The link itself is the permission; nothing else is served."""

from __future__ import annotations

from fastapi import APIRouter, Response

from vidgate.api.content import blob_response
from vidgate.api.deps import State
from vidgate.core.errors import NotFound
from vidgate.core.signing import INPUT_VARIANT
from vidgate.db.blobs import get_blob_content_type

router = APIRouter(prefix="/v1/inputs", tags=["inputs"])


@router.api_route("/{sha256}", methods=["GET", "HEAD"])
async def input_file(sha256: str, state: State, expires: int = 0, signature: str = "") -> Response:
    if not state.signer.verify(sha256, INPUT_VARIANT, 0, expires, signature):
        raise NotFound("no such input", code="not_found")
    async with state.runtime.db.connect() as conn:
        content_type = await get_blob_content_type(conn, sha256)
    if content_type is None:
        raise NotFound("no such input", code="not_found")
    return await blob_response(state.runtime.engine.blobs, sha256, content_type, sha256)
