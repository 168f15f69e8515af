"""Content-addressed blobs in an S3-compatible bucket (AWS S3, MinIO, R2, GCS's S3 API).

Keys are ``<prefix><first two hex digits>/<sha256>``, the local store's layout under a
prefix. A blob is hashed first (one read of the local file), then uploaded to its final
key only if it is not there yet: an object's bytes are always those of its name, and
storing a result twice costs one HEAD.

Files above ``part_size`` go up in parts (multipart upload), one part in memory at a
time. A multipart upload that fails is aborted; one cut short by a crash is found by
``discard_partial`` through a marker object ``<prefix>.partial/<owner>/<sha256>`` written
before the upload starts and deleted when it ends, since S3 lists unfinished uploads by
key but keeps no owner for them (a bucket lifecycle rule that aborts incomplete uploads
after a day is the operator's backstop: README, "Storage").
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from vidgate.core.errors import NotFound
from vidgate.media.storage import StoredBlob, owner_tag, validate_sha256

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

__all__ = ["S3BlobStore", "S3Location", "parse_s3_url"]

_HASH_CHUNK = 1 << 20
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


@dataclass(frozen=True)
class S3Location:
    bucket: str
    # Empty, or ending with "/".
    prefix: str


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/prefix`` -> its bucket and key prefix; ``ValueError`` otherwise."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r:.200}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket or any(c in bucket for c in "?#\\ "):
        raise ValueError(f"no bucket name in {url!r:.200}; expected s3://bucket/prefix")
    prefix = prefix.strip("/")
    return S3Location(bucket, f"{prefix}/" if prefix else "")


class S3BlobStore:
    """The ``BlobStore`` protocol (media/storage.py) over one bucket and prefix.

    The caller owns ``client`` (an aiobotocore S3 client) and closes it.
    """

    def __init__(self, client: S3Client, location: S3Location, *, part_size: int) -> None:
        self._s3 = client
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.part_size = part_size

    def key(self, sha256: str) -> str:
        validate_sha256(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def local_path(self, sha256: str) -> Path | None:
        return None

    async def put_file(self, path: Path, *, owner: str | None = None) -> StoredBlob:
        sha, size = await asyncio.to_thread(_hash_file, path)
        if not await self.exists(sha):
            if size > self.part_size:
                await self._put_parts(path, sha, size, owner)
            else:
                data = await asyncio.to_thread(path.read_bytes)
                await self._s3.put_object(Bucket=self.bucket, Key=self.key(sha), Body=data)
        return StoredBlob(sha256=sha, size=size)

    async def put_bytes(self, data: bytes) -> StoredBlob:
        sha = hashlib.sha256(data).hexdigest()
        if not await self.exists(sha):
            await self._s3.put_object(Bucket=self.bucket, Key=self.key(sha), Body=data)
        return StoredBlob(sha256=sha, size=len(data))

    async def discard_partial(self, owner: str) -> None:
        markers = f"{self.prefix}.partial/{owner_tag(owner)}/"
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=markers
        )
        async for page in pages:
            for item in page.get("Contents", []):
                marker = item["Key"]
                sha = marker.rsplit("/", 1)[-1]
                await self._abort_uploads(self.key(sha))
                await self._s3.delete_object(Bucket=self.bucket, Key=marker)

    async def exists(self, sha256: str) -> bool:
        try:
            await self._s3.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def size(self, sha256: str) -> int:
        try:
            head = await self._s3.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _missing(exc):
                raise _not_found(sha256) from None
            raise
        return int(head["ContentLength"])

    async def iter_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        if start < 0 or (end is not None and end < start) or chunk_size < 1:
            raise ValueError(f"invalid range start={start} end={end} chunk_size={chunk_size}")
        key = self.key(sha256)
        if end == start:
            return
        byte_range = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await self._s3.get_object(Bucket=self.bucket, Key=key, Range=byte_range)
        except ClientError as exc:
            if _missing(exc):
                raise _not_found(sha256) from None
            if _code(exc) == "InvalidRange":  # start at or past the end: no bytes
                return
            raise
        async with answer["Body"] as body:
            while chunk := await body.read(chunk_size):
                yield chunk

    async def copy_to(self, sha256: str, dest: Path) -> None:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            with tmp.open("wb") as out:
                async for chunk in self.iter_range(sha256):
                    await asyncio.to_thread(out.write, chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    async def delete(self, sha256: str) -> None:
        # S3 answers a delete of a missing key with success: deleting twice is harmless.
        await self._s3.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    async def ready(self) -> None:
        """A write of one small object at a fixed key (``<prefix>.ready``): the bucket
        is reachable with these credentials and takes writes. One PUT per probe, and
        nothing to clean up."""
        await self._s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}.ready", Body=b"ok")

    async def presigned_url(
        self, sha256: str, *, expires_in: int, content_type: str, disposition: str
    ) -> str:
        """A GET URL of the blob that S3 answers for ``expires_in`` seconds, with the
        response's Content-Type and Content-Disposition set (signed, not guessable)."""
        return await self._s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self.key(sha256),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
                "ResponseCacheControl": "private, max-age=31536000, immutable",
            },
            ExpiresIn=expires_in,
        )

    async def _put_parts(self, path: Path, sha: str, size: int, owner: str | None) -> None:
        key = self.key(sha)
        marker = f"{self.prefix}.partial/{owner_tag(owner)}/{sha}" if owner else None
        if marker is not None:
            await self._s3.put_object(Bucket=self.bucket, Key=marker, Body=b"")
        upload = await self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            with path.open("rb") as src:
                number = 1
                while chunk := await asyncio.to_thread(src.read, self.part_size):
                    part = await self._s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"PartNumber": number, "ETag": part["ETag"]})
                    number += 1
            await self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            # Cancelled or failed: the parts are billed until aborted.
            await asyncio.shield(self._abort(key, upload_id))
            raise
        finally:
            if marker is not None:
                await asyncio.shield(self._s3.delete_object(Bucket=self.bucket, Key=marker))

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if not _missing(exc):
                raise

    async def _abort_uploads(self, key: str) -> None:
        pages = self._s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=key
        )
        async for page in pages:
            for upload in page.get("Uploads", []):
                if upload.get("Key") == key and "UploadId" in upload:
                    await self._abort(key, upload["UploadId"])


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while chunk := src.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _missing(exc: ClientError) -> bool:
    return _code(exc) in _MISSING


def _not_found(sha256: str) -> NotFound:
    return NotFound(f"blob {sha256} not found")
