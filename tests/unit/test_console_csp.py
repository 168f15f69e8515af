"""The console's Content-Security-Policy follows the storage's links: 'self' only where
vidgate streams media, plus the bucket's origin where content links are presigned
redirects (media/stores.py ``presigned_origins``), as botocore builds their host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from vidgate.api.console import CONTENT_SECURITY_POLICY, install_console
from vidgate.config import Settings
from vidgate.media.stores import presigned_origins


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS variables or config files of the machine: each test sets its own."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    return monkeypatch


def _settings(url: str | None = "s3://media-bucket/vidgate", links: str = "presigned") -> Settings:
    return Settings(storage_url=url, storage_links=links)  # type: ignore[arg-type]


def _directives(csp: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in csp.split(";"))


def _served_csp(origins: tuple[str, ...]) -> str:
    app = FastAPI()
    install_console(app, media_origins=origins)

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vg") as client:
            return await client.get("/ui/app.js")

    answer = asyncio.run(get())
    assert answer.status_code == 200
    return answer.headers["content-security-policy"]


def test_streamed_links_keep_media_to_self(aws: pytest.MonkeyPatch) -> None:
    aws.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert presigned_origins(_settings(links="stream")) == ()
    assert presigned_origins(_settings(url=None)) == ()
    assert _served_csp(()) == CONTENT_SECURITY_POLICY
    directives = _directives(CONTENT_SECURITY_POLICY)
    assert directives["img-src"] == directives["media-src"] == "'self'"


def test_presigned_links_add_the_endpoints_origin(aws: pytest.MonkeyPatch) -> None:
    aws.setenv("AWS_ENDPOINT_URL", "https://other.example.com")
    aws.setenv("AWS_ENDPOINT_URL_S3", "http://MinIO.local:9000/")  # it wins, as in botocore
    origins = presigned_origins(_settings())
    assert origins == ("http://minio.local:9000",)
    directives = _directives(_served_csp(origins))
    assert directives["img-src"] == "'self' http://minio.local:9000"
    assert directives["media-src"] == "'self' http://minio.local:9000"
    # Nothing else is opened.
    rest = {k: v for k, v in directives.items() if k not in ("img-src", "media-src")}
    assert rest == {
        k: v
        for k, v in _directives(CONTENT_SECURITY_POLICY).items()
        if k not in ("img-src", "media-src")
    }


@pytest.mark.parametrize(
    ("region", "bucket", "expected"),
    [
        (None, "media-bucket", ("https://media-bucket.s3.amazonaws.com",)),
        ("us-east-1", "media-bucket", ("https://media-bucket.s3.amazonaws.com",)),
        (
            "eu-west-3",
            "media-bucket",
            (
                "https://media-bucket.s3.amazonaws.com",
                "https://media-bucket.s3.eu-west-3.amazonaws.com",
            ),
        ),
        # A name with dots is no host name under AWS's certificate: path style.
        ("eu-west-3", "media.example.com", ("https://s3.eu-west-3.amazonaws.com",)),
    ],
)
def test_presigned_links_on_aws_add_the_buckets_hosts(
    aws: pytest.MonkeyPatch, region: str | None, bucket: str, expected: tuple[str, ...]
) -> None:
    if region:
        aws.setenv("AWS_DEFAULT_REGION", region)
    assert presigned_origins(_settings(f"s3://{bucket}/videos")) == expected


def test_an_endpoint_that_is_no_origin_is_refused(aws: pytest.MonkeyPatch) -> None:
    aws.setenv("AWS_ENDPOINT_URL", "https://s3.example.com; script-src *")
    with pytest.raises(ValueError, match="not an http"):
        presigned_origins(_settings())
