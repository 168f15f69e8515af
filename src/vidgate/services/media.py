"""Stored media as the API serves it: which file a download means, the file itself,
and the signed links that grant one file (outputs, input images) or a callback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.errors import InvalidParameter, NotFound
from vidgate.core.jobs import OutputRecord
from vidgate.core.signing import INPUT_VARIANT, UrlSigner
from vidgate.db.blobs import get_blob_content_type
from vidgate.engine.previews import PreviewMaker, has_previews
from vidgate.media.previews import (
    SPRITESHEET_CONTENT_TYPE,
    THUMBNAIL_CONTENT_TYPE,
    VIDEO_CONTENT_TYPE,
    SpritesheetGrid,
    spritesheet_grid,
)
from vidgate.media.s3_storage import S3BlobStore
from vidgate.media.storage import BlobStore
from vidgate.services.small_blobs import SmallBlobs, SmallFile

VARIANTS = {
    "video": ("video_sha256", VIDEO_CONTENT_TYPE, "mp4"),
    "thumbnail": ("thumbnail_sha256", THUMBNAIL_CONTENT_TYPE, "webp"),
    "spritesheet": ("spritesheet_sha256", SPRITESHEET_CONTENT_TYPE, "jpg"),
}


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One stored blob as it is served: its content type and the name a download gets."""

    sha256: str
    content_type: str
    filename: str


@dataclass(frozen=True, slots=True)
class OutputLinks:
    """Signed links to the files of one output, valid until ``expires_at``."""

    video: str
    thumbnail: str
    spritesheet: str
    expires_at: int


class MediaService:
    def __init__(
        self,
        blobs: BlobStore,
        signer: UrlSigner,
        db: AsyncEngine,
        previews: PreviewMaker,
        *,
        links: Literal["stream", "presigned"] = "stream",
    ) -> None:
        self._blobs = blobs
        self._signer = signer
        self._db = db
        self._previews = previews
        # Settings.storage_links: only an S3 store can hand a download to the bucket.
        self._presign = isinstance(blobs, S3BlobStore) and links == "presigned"
        self._small = SmallBlobs()

    async def output_file(
        self, outputs: list[OutputRecord], video_id: str, variant: str, index: int
    ) -> StoredFile:
        """One stored file of a completed job's outputs; a preview not made yet is made
        now (engine/previews.py: once, however many ask at the same time)."""
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
        output = outputs[index]
        if variant != "video" and not has_previews(output):
            output = await self._previews.ensure(output)
        sha = str(getattr(output, column))
        suffix = f"-{index}" if index else ""
        return StoredFile(
            sha,
            content_type,
            f"{video_id}{suffix}.{'' if variant == 'video' else variant + '.'}{ext}",
        )

    async def signed_input(self, sha256: str, expires: int, signature: str) -> StoredFile | None:
        """The stored input image a signed input link grants; None for a bad link or an
        image vidgate does not hold (the two look the same to the caller)."""
        if not self._signer.verify(sha256, INPUT_VARIANT, 0, expires, signature):
            return None
        async with self._db.connect() as conn:
            content_type = await get_blob_content_type(conn, sha256)
        return None if content_type is None else StoredFile(sha256, content_type, sha256)

    def local_path(self, sha256: str) -> Path | None:
        """Where the blob lives on local disk, to be mapped and sent; None if remote."""
        return self._blobs.local_path(sha256)

    async def small_file(self, path: Path) -> SmallFile | None:
        """A small local blob's bytes, from memory after the first read
        (services/small_blobs.py); None for larger ones."""
        return await self._small.get(path)

    async def size(self, sha256: str) -> int:
        return await self._blobs.size(sha256)

    def iter_range(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        return self._blobs.iter_range(sha256, start, end)

    async def presigned_url(self, file: StoredFile, expires: int | None) -> str | None:
        """A presigned GET of the file in the bucket, where storage links are
        ``presigned``; else None (vidgate serves the bytes). It lasts as long as the
        signed link it answers (``expires``), or a signed link's lifetime."""
        if not self._presign:
            return None
        assert isinstance(self._blobs, S3BlobStore)
        # A signed link's ``expires`` was verified: it is one this gateway made, which
        # may outlast the TTL by its rounding step (core/signing.py).
        lifetime = self._signer.ttl_s if expires is None else expires - int(time.time())
        return await self._blobs.presigned_url(
            file.sha256,
            expires_in=max(1, lifetime),
            content_type=file.content_type,
            disposition=f'inline; filename="{file.filename}"',
        )

    def verify_output_link(
        self, video_id: str, variant: str, index: int, expires: int, signature: str
    ) -> bool:
        return self._signer.verify(video_id, variant, index, expires, signature)

    def output_links(self, base_url: str, job_id: str, index: int) -> OutputLinks:
        url, expires = self._signer.sign(base_url, job_id, "video", index)
        thumbnail, _ = self._signer.sign(base_url, job_id, "thumbnail", index)
        spritesheet, _ = self._signer.sign(base_url, job_id, "spritesheet", index)
        return OutputLinks(url, thumbnail, spritesheet, expires)

    @staticmethod
    def spritesheet_grid(output: OutputRecord) -> SpritesheetGrid:
        """How the output's spritesheet is laid out (made now or later, the same)."""
        return spritesheet_grid(output.width, output.height)

    def verify_callback(self, job_id: str, signature: str) -> bool:
        """Whether ``signature`` is the one in the callback URL handed to the upstream."""
        return self._signer.verify_callback(job_id, signature)
