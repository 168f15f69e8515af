"""The blob store a process uses, chosen from its settings: the local directory
(``data_dir/media``, the default) or an S3-compatible bucket (``VIDGATE_STORAGE_URL``).

S3 credentials, region and endpoint come from the standard AWS variables, which
botocore reads itself (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3`` then ``AWS_ENDPOINT_URL``), as well as
its other sources (profiles, instance roles). What it leaves to us: a configured endpoint
is a MinIO, R2 or similar host, where buckets are paths (``host/bucket/key``), not the
host names AWS gives each bucket.

Presigned links (``VIDGATE_STORAGE_LINKS=presigned``) send browsers to the bucket's
origin: ``presigned_origins`` names it, for the console's Content-Security-Policy.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import UNSIGNED
from botocore.config import Config

from vidgate.config import Settings
from vidgate.media.s3_storage import S3BlobStore, parse_s3_url
from vidgate.media.storage import BlobStore, LocalBlobStore

__all__ = ["open_blob_store", "presigned_origins", "s3_endpoint"]

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def s3_endpoint(environ: dict[str, str] | None = None) -> str | None:
    """The S3 endpoint the AWS variables name, as botocore picks it (None: AWS's)."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in _ENDPOINT_VARIABLES if env.get(name)), None)


def _addressing_style() -> Literal["path", "auto"]:
    # A configured endpoint takes buckets as paths; AWS's, as botocore chooses (a
    # bucket's own host name where its name allows, else a path).
    return "path" if s3_endpoint() else "auto"


def presigned_origins(settings: Settings) -> tuple[str, ...]:
    """The origins that presigned content links lead browsers to: none where links are
    streamed by vidgate (or media is local); the configured endpoint's; else the AWS
    host botocore builds for the bucket (``bucket.s3.amazonaws.com``, or
    ``s3.REGION.amazonaws.com`` for a name with dots), and, outside us-east-1, the
    bucket's regional host, where AWS redirects a bucket's global host name."""
    if not settings.storage_url or settings.storage_links != "presigned":
        return ()
    endpoint = s3_endpoint()
    if endpoint:
        return (_origin(endpoint),)
    location = parse_s3_url(settings.storage_url)
    # The URL as the store's client presigns it, less the signature (no credentials
    # needed): the host comes from the same endpoint rules, region and addressing style.
    config = Config(signature_version=UNSIGNED, s3={"addressing_style": _addressing_style()})
    # Any: botocore's stubs type the client's generated methods on its S3 subclass only.
    client: Any = botocore.session.get_session().create_client("s3", config=config)
    try:
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": location.bucket, "Key": location.prefix + "x"}
        )
        region = client.meta.region_name
    finally:
        client.close()
    found = [_origin(url)]
    if urlsplit(url).hostname == f"{location.bucket}.s3.amazonaws.com" and region not in (
        None,
        "us-east-1",
        "aws-global",
    ):
        found.append(_origin(f"https://{location.bucket}.s3.{region}.amazonaws.com"))
    return tuple(found)


_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, checked: it goes into a response header."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if parts.scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise ValueError(f"not an http(s) endpoint: {url!r:.200}")
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@asynccontextmanager
async def open_blob_store(settings: Settings) -> AsyncIterator[BlobStore]:
    """The process's store, open while the context is; an S3 client is closed after."""
    if not settings.storage_url:
        yield LocalBlobStore(settings.media_dir)
        return
    location = parse_s3_url(settings.storage_url)
    config = AioConfig(
        s3={"addressing_style": _addressing_style()},
        # Steps and downloads share the client: more than botocore's 10 connections.
        max_pool_connections=64,
        retries={"mode": "standard", "max_attempts": 4},
    )
    async with get_session().create_client("s3", config=config) as client:
        yield S3BlobStore(client, location, part_size=settings.storage_part_size)
