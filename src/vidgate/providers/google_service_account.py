"""Access tokens for a Google service-account key (Vertex AI's ``service_account_file``).

The key is read once, when the adapter is built (``load_service_account``: a missing or
invalid file is a ``ValueError`` naming the path, never the content). Its tokens come
from Google's OAuth2 JWT-bearer grant (RFC 7523): an RS256-signed assertion ``{iss:
client_email, scope: cloud-platform, aud: token_uri, iat, exp: iat+3600}`` posted to
``token_uri``. ``ServiceAccountTokens`` keeps a token until about 5
minutes before it expires, with one refresh at a time for all callers. A refused
assertion (400/401 ``invalid_grant``: a revoked or deleted key, a wrong clock) is an
unhealthy ``upstream_auth_failed``; a network error or a 5xx is retryable.

google-auth does the same flow, but its service-account refresh is synchronous (the
async variant is a private module on a deprecated transport), refreshes 3 min 45 s
ahead rather than 5 min, and would bring pyasn1 and its own exceptions to translate
back. The grant is one signed JWT and one form POST, sent here on an UpstreamClient
like every other upstream call; PyJWT signs it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vidgate.providers.base import ProviderError
from vidgate.providers.google_api import google_error_message
from vidgate.providers.http import UpstreamClient, UpstreamLimits

# OAuth2 service-account flow (JWT-bearer grant, RFC 7523).
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google accepts assertions valid for at most an hour.
ASSERTION_LIFETIME_S = 3600
# A token is replaced this long before it expires (at most half its lifetime).
REFRESH_MARGIN_S = 300.0


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_key_id: str | None
    token_uri: str


def load_service_account(path: str) -> ServiceAccountKey:
    """Read a service-account JSON key. Every problem is a ``ValueError`` that names the
    file and what is wrong with it, never anything read from it."""

    def bad(reason: str) -> ValueError:
        return ValueError(f"service account key file {path}: {reason}")

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise bad("is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad("is not a JSON object")
    kind = data.get("type")
    if kind is not None and kind != "service_account":
        raise bad(f"holds {str(kind)[:40]!r} credentials, not a service account key")
    missing = [
        k
        for k in ("client_email", "private_key")
        if not isinstance(data.get(k), str) or not data[k]
    ]
    if missing:
        raise bad(f"has no {', '.join(missing)}")
    token_uri = data.get("token_uri") or TOKEN_URI
    if not isinstance(token_uri, str) or not token_uri.startswith(("https://", "http://")):
        raise bad("token_uri is not an http(s) URL")
    key_id = data.get("private_key_id")
    try:
        key = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise bad("private_key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise bad("private_key is not an RSA key")
    return ServiceAccountKey(
        client_email=data["client_email"],
        private_key=key,
        private_key_id=key_id if isinstance(key_id, str) and key_id else None,
        token_uri=token_uri,
    )


def sign_assertion(key: ServiceAccountKey, now: float) -> str:
    """The JWT-bearer assertion for ``key``: RS256 over ``{alg, typ, kid?}`` and the
    claims Google's token endpoint checks."""
    iat = int(now)
    claims = {
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME_S,
    }
    headers = {"kid": key.private_key_id} if key.private_key_id else None
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)


def oauth_error_message(response: httpx.Response) -> str | None:
    """``error: error_description`` of an OAuth2 error body (RFC 6749 5.2), shortened;
    neither field carries the assertion or a token."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):  # a Google API error body, from a proxy say
        return google_error_message(response)
    if not isinstance(error, str):
        return None
    description = body.get("error_description")
    text = f"{error}: {description}" if isinstance(description, str) and description else error
    return text[:300]


def _clock() -> float:
    """Wall-clock seconds (assertion times and token expiry); tests replace it."""
    return time.time()


class ServiceAccountTokens:
    """Access tokens for one service-account key, cached until shortly before expiry."""

    def __init__(
        self,
        key: ServiceAccountKey,
        *,
        provider: str,
        timeout_s: float,
        limits: UpstreamLimits | None = None,
    ) -> None:
        self._key = key
        self._provider = provider
        self._http = UpstreamClient(
            provider=provider,
            base_url="",
            timeout_s=timeout_s,
            error_message=oauth_error_message,
            limits=limits,
        )
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0

    def _fresh(self) -> str | None:
        return self._token if self._token is not None and _clock() < self._refresh_at else None

    async def token(self) -> str:
        if (token := self._fresh()) is not None:
            return token
        async with self._lock:
            # Whoever held the lock before may have refreshed it already.
            if (token := self._fresh()) is not None:
                return token
            try:
                token, expires_in = await self._fetch()
            except ProviderError as error:
                # A transient failure while the old token still works: keep using it.
                if error.retryable and self._token is not None and _clock() < self._expires_at:
                    return self._token
                raise
            now = _clock()
            self._token = token
            self._expires_at = now + expires_in
            self._refresh_at = now + expires_in - min(REFRESH_MARGIN_S, expires_in / 2)
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (Vertex refused it) unless it was replaced meanwhile."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": sign_assertion(self._key, _clock())}
        try:
            body = await self._http.json("POST", self._key.token_uri, data=form)
        except ProviderError as error:
            detail = error.message.removeprefix(f"{self._provider}: ")
            if error.retryable:  # a network error, a timeout, 429, 5xx
                raise ProviderError(
                    error.code,
                    f"{self._provider}: token endpoint: {detail}",
                    retryable=True,
                    retry_after_s=error.retry_after_s,
                ) from error
            # invalid_grant and the like: the key itself does not work (revoked,
            # deleted, disabled account, skewed clock). Nothing a retry fixes.
            raise ProviderError(
                "upstream_auth_failed",
                f"{self._provider}: service-account token request refused: {detail}",
                retryable=False,
                unhealthy=True,
            ) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError(
                "upstream_bad_response",
                f"{self._provider}: the token endpoint answered without an access_token",
                retryable=True,
            )
        expires_in = body.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else 3600.0
        except (TypeError, ValueError):
            lifetime = 3600.0
        return token, max(lifetime, 0.0)

    async def aclose(self) -> None:
        await self._http.aclose()
