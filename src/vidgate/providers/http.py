"""HTTP to upstream providers, with every failure translated at this boundary.

Adapters call ``UpstreamClient`` and get either a successful ``httpx.Response`` or a
``ProviderError`` that says whether to retry (429, 408, 5xx, timeouts, transport
errors; with the provider's Retry-After), whether the deployment is broken (401/403),
or whether the request itself was refused (other 4xx, with the provider's message).

Every call has a total deadline besides its per-read timeout, and a size cap: a peer
that sends its headers, then a byte every few seconds, never trips a per-read timeout
and would otherwise hold a submission, a status read or a finalize slot forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yarl

from vidgate.config import Settings
from vidgate.net.failures import in_words
from vidgate.providers.base import ProgressCallback, ProviderError

ErrorMessage = Callable[[httpx.Response], str | None]

_RETRYABLE = {408, 409, 425, 429}
# Result downloads: a refused or vanished URL means it expired (or was never public).
_EXPIRED = {401, 403, 404, 410}


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds the provider asks us to wait: ``retry-after-ms``, then ``retry-after``
    (seconds or an HTTP date)."""
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def default_error_message(response: httpx.Response) -> str | None:
    """The message in the usual error bodies: {"error": {"message"}}, {"error": "..."},
    {"message"}, {"detail"}, RFC 7807 {"title", "detail"}."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:500] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if isinstance(error.get(key), str):
                    return str(error[key])
        if isinstance(error, str):
            return error
        for key in ("message", "detail", "msg", "failure", "title"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, list) and value:
                return str(value[0])
    return None


def translate(
    response: httpx.Response, provider: str, message: ErrorMessage = default_error_message
) -> ProviderError:
    status = response.status_code
    text = message(response) or f"HTTP {status}"
    where = f"{provider}: {text}"
    if status in (401, 403):
        return ProviderError("upstream_auth_failed", where, retryable=False, unhealthy=True)
    if status in _RETRYABLE:
        code = "upstream_rate_limited" if status == 429 else "upstream_busy"
        return ProviderError(code, where, retryable=True, retry_after_s=retry_after_s(response))
    if status >= 500:
        return ProviderError(
            "upstream_error", where, retryable=True, retry_after_s=retry_after_s(response)
        )
    if status == 404:
        return ProviderError("upstream_not_found", where, retryable=False)
    return ProviderError("upstream_rejected", where, retryable=False)


def _failure(
    exc: Exception, provider: str, *, read_s: float, deadline_s: float, download: bool = False
) -> ProviderError:
    """A request that got no (whole) answer: retryable, as a timeout or as unreachable,
    said in words (never the exception's class name)."""
    timed_out = isinstance(exc, TimeoutError)
    if download:
        code = "download_timeout" if timed_out else "download_failed"
    else:
        code = "upstream_timeout" if timed_out else "upstream_unreachable"
    words = in_words(exc, read_s=read_s, deadline_s=deadline_s)
    return ProviderError(code, f"{provider}: {words}", retryable=True)


def _decoded(answer: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    """The answer's headers without those about its encoding: aiohttp decoded the body,
    and httpx must not decode it again."""
    return [(k, v) for k, v in answer.raw_headers if k.lower() not in _ENCODING]


def _response(method: str, url: str, status: int, raw_headers: Any, body: bytes) -> httpx.Response:
    return httpx.Response(
        status, headers=list(raw_headers), content=body, request=httpx.Request(method, url)
    )


# Per deployment: the poller's concurrent status reads share these.
_MAX_CONNECTIONS = 64
_CONNECT_S = 10.0
_MiB = 1024 * 1024
# Up to four inline videos of a few tens of MB each, base64 (4/3 larger).
INLINE_RESULTS_BYTES = 512 * _MiB
_ABSOLUTE = ("http://", "https://")
_ENCODING = (b"content-encoding", b"content-length", b"transfer-encoding")
FormFiles = list[tuple[str, tuple[str | None, bytes | str, str | None]]]


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamLimits:
    """Totals for one call, on top of the per-read ``timeout_s``.

    ``request_s``: an API call (submit, status, cancel, a token), from connecting to
    the last byte of the answer. ``download_s``: a result download, likewise.
    ``max_response_bytes``: an API answer (decoded) larger than this is refused
    instead of being held in memory.
    """

    request_s: float = 60.0
    download_s: float = 900.0
    max_response_bytes: int = 32 * _MiB

    @classmethod
    def of(cls, settings: Settings) -> UpstreamLimits:
        return cls(
            request_s=settings.upstream_timeout_s,
            download_s=settings.download_timeout_s,
            max_response_bytes=settings.upstream_max_response_bytes,
        )

    def with_inline_results(self) -> UpstreamLimits:
        """For APIs whose status answers may carry the finished videos themselves,
        base64 in the JSON (Vertex Veo without a storage URI, Gemini): the answer may
        be as large as the results, up to ``INLINE_RESULTS_BYTES``."""
        return dataclasses.replace(
            self, max_response_bytes=max(self.max_response_bytes, INLINE_RESULTS_BYTES)
        )


class UpstreamClient:
    """One provider deployment's HTTP client (connection pool, auth, timeouts).

    Requests go out on aiohttp and come back as ``httpx.Response`` objects, the API the
    adapters parse. httpx's own client costs ~0.35 ms of CPU per request on top
    (building and merging URLs and headers, its auth and redirect machinery): measured
    0.49 ms per status read through it against 0.13 ms through aiohttp, and the poller
    and the submitter make thousands of these a second (bench B3).
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        timeout_s: float = 30.0,
        error_message: ErrorMessage = default_error_message,
        limits: UpstreamLimits | None = None,
    ) -> None:
        self.provider = provider
        self._limits = limits or UpstreamLimits()
        # A deployment whose per-read timeout is longer than the total deadline (a slow
        # self-hosted server that answers a submit only when done) keeps its timeout as
        # the total: the operator asked for that wait.
        self._request_s = max(self._limits.request_s, timeout_s)
        self._read_s = timeout_s
        self._base = base_url.rstrip("/") + "/"
        self._headers = headers
        self._error_message = error_message
        # Per socket operation, as httpx's timeouts were: a long download is not cut
        # short while its bytes keep coming.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(_CONNECT_S, timeout_s), sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop that will run it.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=_MAX_CONNECTIONS, ssl=httpx.create_ssl_context()
                ),
                timeout=self._timeout,
            )
        return self._session

    def _url(self, url: str) -> yarl.URL:
        if url.startswith(_ABSOLUTE):
            # A URL the provider handed out (a pre-signed result, a token endpoint):
            # sent exactly as given.
            return yarl.URL(url, encoded=True)
        return yarl.URL(self._base + url.lstrip("/"))

    def _auth_headers(self) -> dict[str, str]:
        if self._headers is None:
            return {}
        headers = self._headers() if callable(self._headers) else self._headers
        return dict(headers)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: FormFiles | None = None,
    ) -> httpx.Response:
        merged = {**self._auth_headers(), **(headers or {})}
        target = self._url(url)
        body: aiohttp.FormData | Mapping[str, str] | None = data
        if files is not None:
            body = _form(files)
        try:
            async with asyncio.timeout(self._request_s):
                async with self._client().request(
                    method,
                    target,
                    headers=merged,
                    params=params,
                    json=json,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    content = await self._read_capped(answer)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failure(
                exc, self.provider, read_s=self._read_s, deadline_s=self._request_s
            ) from exc
        response = _response(method, str(answer.url), answer.status, _decoded(answer), content)
        if response.status_code >= 400:
            raise translate(response, self.provider, self._error_message)
        return response

    async def _read_capped(self, answer: aiohttp.ClientResponse) -> bytes:
        """The decoded body, refused as soon as it passes ``max_response_bytes``.
        aiohttp decodes (bounded per chunk), so a small compressed bomb is counted at
        its decoded size."""
        cap = self._limits.max_response_bytes
        if answer.content_length is not None and answer.content_length > cap:
            raise self._too_large(cap)
        chunks: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_any():
            size += len(chunk)
            if size > cap:
                raise self._too_large(cap)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, cap: int) -> ProviderError:
        # Retryable: a proxy's error page or a provider's bad moment is as likely as a
        # status that really is this large.
        return ProviderError(
            "upstream_too_large",
            f"{self.provider}: an answer larger than {cap} bytes was refused",
            retryable=True,
        )

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                "upstream_bad_response",
                f"{self.provider}: a response that is not JSON (HTTP {response.status_code})",
                retryable=True,
            ) from exc

    async def download(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int = 4 * 1024**3,
        authenticated: bool = False,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Path:
        """Stream ``url`` into ``dest`` (atomically). Result URLs are usually pre-signed
        on another host, so the deployment's auth headers are sent only when asked."""
        merged = {**(self._auth_headers() if authenticated else {}), **(headers or {})}
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        deadline_s = self._limits.download_s
        size = 0
        try:
            async with asyncio.timeout(deadline_s):
                async with self._client().get(
                    self._url(url), headers=merged, params=params, allow_redirects=True
                ) as answer:
                    if answer.status in _EXPIRED:
                        raise ProviderError(
                            "result_expired",
                            f"{self.provider}: the result URL answered HTTP {answer.status}",
                            retryable=False,
                            expired=True,
                        )
                    if answer.status >= 400:
                        body = await self._read_capped(answer)
                        error = _response(
                            "GET", str(answer.url), answer.status, _decoded(answer), body
                        )
                        raise translate(error, self.provider, self._error_message)
                    too_large = ProviderError(
                        "result_too_large",
                        f"{self.provider}: the result is larger than {max_bytes} bytes",
                        retryable=False,
                    )
                    if answer.content_length is not None and answer.content_length > max_bytes:
                        raise too_large
                    with tmp.open("wb") as fh:
                        async for chunk in answer.content.iter_chunked(1 << 20):
                            size += len(chunk)
                            if size > max_bytes:
                                raise too_large
                            fh.write(chunk)
            os.replace(tmp, dest)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failure(
                exc, self.provider, read_s=self._read_s, deadline_s=deadline_s, download=True
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    async def download_each(
        self, urls: list[str], dest_dir: Path, progress: ProgressCallback | None, *, gone: str
    ) -> list[Path]:
        """Download each URL into ``dest_dir/<index>.mp4``, for an upstream that never
        issues a second URL for a result: an expired one is final, ``result_expired``
        with ``gone`` as its message."""
        paths: list[Path] = []
        for index, url in enumerate(urls):
            try:
                paths.append(await self.download(url, dest_dir / f"{index}.mp4"))
            except ProviderError as error:
                if error.expired:
                    raise ProviderError(
                        "result_expired", gone, retryable=False, expired=True
                    ) from error
                raise
            if progress is not None:
                progress((index + 1) / len(urls))
        return paths

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _form(files: FormFiles) -> aiohttp.FormData:
    """httpx's ``files=`` parts as a multipart form: a part without a filename is a
    plain field."""
    form = aiohttp.FormData(default_to_multipart=True)
    for name, (filename, content, content_type) in files:
        if filename is None:
            form.add_field(name, content, content_type=content_type)
        else:
            form.add_field(name, content, filename=filename, content_type=content_type)
    return form
