"""Bearer-key authentication, with a one-second in-process cache of verified keys.

Every request needs its key checked, and a status read is one prepared query; a second
query per request for the key would cost the hottest route about a third of its
throughput (bench B1). So each process remembers what a key's secret hash meant for
``TTL_S`` (1 s): a key revoked, or whose expiry is changed, in any process on the
database is refused by every process at most 1 s after the change commits. The entry
is stamped with the time its lookup *started*, so a lookup that began before the
commit is forgotten within 1 s of it. An expiry time itself is checked on every
request against the clock, cached or not.

Lookups of one secret that arrive while its lookup is on its way share it, so an
expired entry under load costs one query, not one per waiting request: at most one key
query per key per process per second.
"""

from __future__ import annotations

import asyncio
import time

from vidgate.accounts.keys import hash_secret
from vidgate.core.errors import AuthenticationError
from vidgate.engine.service import Principal
from vidgate.services.keys import Grant, KeyService

# How stale a process's knowledge of a key may be: the bound on revocation's delay.
TTL_S = 1.0


def _invalid() -> AuthenticationError:
    return AuthenticationError(
        "invalid API key (unknown, revoked or expired)", code="invalid_api_key"
    )


class KeyAuthenticator:
    def __init__(
        self, keys: KeyService, *, ttl_s: float = TTL_S, max_entries: int = 10_000
    ) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # By digest, so the process never holds a plain secret beyond its request.
        self._cache: dict[bytes, tuple[float, Grant | None]] = {}
        self._pending: dict[bytes, asyncio.Future[Grant | None]] = {}

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
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            grant = cached[1]
        else:
            grant = await self._lookup(digest)
        if grant is None:
            raise _invalid()
        if grant.expires_at is not None and time.time() >= grant.expires_at:
            raise _invalid()
        return grant.principal

    async def _lookup(self, digest: bytes) -> Grant | None:
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._load(digest))
            self._pending[digest] = pending
            pending.add_done_callback(lambda done: self._settled(digest, done))
        # Shielded: a client that goes away does not cancel the lookup others wait on.
        return await asyncio.shield(pending)

    def _settled(self, digest: bytes, done: asyncio.Future[Grant | None]) -> None:
        self._pending.pop(digest, None)
        if not done.cancelled():
            done.exception()  # seen: a failure is raised to each waiter, not logged here

    async def _load(self, digest: bytes) -> Grant | None:
        started = time.monotonic()
        grant = await self._keys.grant(digest)
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[digest] = (started + self._ttl_s, grant)
        return grant
