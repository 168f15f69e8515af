"""moto's S3 server on loopback: a real HTTP S3 API for the tests of S3 storage.

``s3_endpoint`` (a session fixture, imported by tests/conftest.py) starts
``python -m moto.server`` on a free port, creates a bucket and yields an ``S3Endpoint``:
its URL, the bucket, and the environment of a vidgate process that stores there. Each
user takes a prefix of its own (``storage_url(prefix)``), so tests share one bucket.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from aiobotocore.session import AioSession, get_session

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

# moto requires 5 MiB parts like AWS unless told otherwise: the tests upload in small
# parts, to go multipart without writing megabytes.
MIN_PART_SIZE = 1024


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    bucket: str
    # The AWS variables a vidgate process reads, and VIDGATE_STORAGE_URL.
    env: dict[str, str]

    def storage_url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def env_for(self, prefix: str) -> dict[str, str]:
        """``env``, storing under ``prefix`` of the bucket."""
        return {**self.env, "VIDGATE_STORAGE_URL": self.storage_url(prefix)}

    @asynccontextmanager
    async def client(self) -> AsyncIterator[S3Client]:
        """An S3 client of this test process on the endpoint."""
        async with _session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        ) as client:
            yield client

    async def keys(self, prefix: str) -> list[str]:
        """The keys of the bucket under ``prefix``."""
        async with self.client() as s3:
            found: list[str] = []
            async for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                found.extend(item["Key"] for item in page.get("Contents", []))
            return found


@functools.cache
def _session() -> AioSession:
    """One botocore session for the tests' clients: it loads S3's API model once."""
    return get_session()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="vidgate-moto-")) / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(MIN_PART_SIZE)},
        )
    try:
        bucket = f"vidgate-test-{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + 30
        while True:
            try:
                # moto takes unsigned requests: a plain PUT creates the bucket.
                if httpx.put(f"{url}/{bucket}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"moto's server did not start:\n{log.read_text()}")
            time.sleep(0.05)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": url,
        }
        yield S3Endpoint(url, bucket, {**env, "VIDGATE_STORAGE_URL": f"s3://{bucket}/vidgate"})
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
