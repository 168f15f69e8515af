"""Reading stored inputs (first frames, source videos) in the forms providers want."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from vidgate.core.errors import InvalidParameter
from vidgate.core.spec import ImageRef
from vidgate.providers.base import ProviderDeps


async def read_blob(deps: ProviderDeps, sha256: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / sha256
        await deps.blobs.copy_to(sha256, path)
        return path.read_bytes()


async def image_base64(deps: ProviderDeps, image: ImageRef) -> str:
    """Bare base64 (Kling, Google ``bytesBase64Encoded``)."""
    return base64.b64encode(await read_blob(deps, image.sha256)).decode()


async def image_data_url(deps: ProviderDeps, image: ImageRef) -> str:
    """``data:<mime>;base64,...`` (Runway, fal, Replicate, MiniMax, Seedance)."""
    return f"data:{image.content_type};base64,{await image_base64(deps, image)}"


def image_public_url(deps: ProviderDeps, image: ImageRef, *, provider: str) -> str:
    """A signed link to the stored image, for providers that accept only URLs (Luma)."""
    if deps.input_url is None:
        raise InvalidParameter(
            f"{provider} takes input images only as public URLs: set VIDGATE_PUBLIC_BASE_URL"
            " to an address the provider can reach",
            param="image",
        )
    return deps.input_url(image.sha256)
