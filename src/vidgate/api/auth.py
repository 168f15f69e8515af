"""Bearer-key authentication, with a short in-process cache of verified keys.

The cache keeps the per-request cost of auth off the database; a revoked key stops
working within ``ttl_s``.
"""

from __future__ import annotations

import time

from vidgate.accounts.keys import hash_secret
from vidgate.core.errors import AuthenticationError
from vidgate.engine.service import Principal
from vidgate.services.keys import KeyService


class KeyAuthenticator:
    def __init__(self, keys: KeyService, *, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # By digest, so the process never holds a plain secret beyond its request.
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise AuthenticationError(
                "malformed Authorization header: expected 'Bearer <key>'", code="invalid_api_key"
            )
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._keys.principal(digest)
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[digest] = (now + self._ttl_s, principal)
        if principal is None:
            raise AuthenticationError("invalid API key", code="invalid_api_key")
        return principal
