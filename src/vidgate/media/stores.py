"""The blob store a process uses, chosen from its settings: the local directory
(``data_dir/media``, the default) or an S3-compatible bucket (``VIDGATE_STORAGE_URL``).

S3 credentials, region and endpoint come from the standard AWS variables, which
botocore reads itself (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3`` then ``AWS_ENDPOINT_URL``), as well as
its other sources (profiles, instance roles). What it leaves to us: a configured endpoint
is a MinIO, R2 or similar host, where buckets are paths (``host/bucket/key``), not the
host names AWS gives each bucket.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from vidgate.config import Settings
from vidgate.media.s3_storage import S3BlobStore, parse_s3_url
from vidgate.media.storage import BlobStore, LocalBlobStore

__all__ = ["open_blob_store", "s3_endpoint"]

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def s3_endpoint(environ: dict[str, str] | None = None) -> str | None:
    """The S3 endpoint the AWS variables name, as botocore picks it (None: AWS's)."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in _ENDPOINT_VARIABLES if env.get(name)), None)


@asynccontextmanager
async def open_blob_store(settings: Settings) -> AsyncIterator[BlobStore]:
    """The process's store, open while the context is; an S3 client is closed after."""
    if not settings.storage_url:
        yield LocalBlobStore(settings.media_dir)
        return
    location = parse_s3_url(settings.storage_url)
    config = AioConfig(
        s3={"addressing_style": "path" if s3_endpoint() else "auto"},
        # Steps and downloads share the client: more than botocore's 10 connections.
        max_pool_connections=64,
        retries={"mode": "standard", "max_attempts": 4},
    )
    async with get_session().create_client("s3", config=config) as client:
        yield S3BlobStore(client, location, part_size=settings.storage_part_size)
