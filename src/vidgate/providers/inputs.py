"""Reading stored inputs (first frames, source videos) in the forms providers want."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Awaitable, Collection
from pathlib import Path

from vidgate.core.errors import InvalidImage, InvalidParameter
from vidgate.core.spec import ImageRef
from vidgate.media.image_bridge import EncodedImage, convert_image, fit_image
from vidgate.providers.base import ProviderDeps, ProviderError


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


async def fitted_image(
    deps: ProviderDeps, image: ImageRef, width: int, height: int, *, param: str
) -> EncodedImage:
    """The stored image fitted to exactly ``width`` x ``height`` (``fit_image``)."""
    data = await read_blob(deps, image.sha256)
    return await _bridged(fit_image(data, width, height, param=param))


async def image_as(
    deps: ProviderDeps, image: ImageRef, accepted: Collection[str], *, param: str
) -> EncodedImage:
    """The stored image, converted to PNG unless its type is ``accepted``."""
    data = await read_blob(deps, image.sha256)
    return await _bridged(convert_image(data, image.content_type, accepted, param=param))


async def _bridged(work: Awaitable[EncodedImage]) -> EncodedImage:
    # The image passed its checks at create; one that cannot be re-encoded now (its
    # decode over the memory budget with the fit's working copies) will not be later.
    try:
        return await work
    except InvalidImage as exc:
        raise ProviderError(exc.code, exc.message, retryable=False) from exc
