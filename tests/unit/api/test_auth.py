"""The key cache (api/auth.py): what it remembers, for how long, and that one secret's
concurrent lookups share one query."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from vidgate.accounts.keys import hash_secret
from vidgate.api.auth import TTL_S, KeyAuthenticator
from vidgate.core.errors import AuthenticationError
from vidgate.engine.service import Principal
from vidgate.services.keys import Grant

PRINCIPAL = Principal("key_1", "tenant_1", "test", "member")


class Keys:
    """A KeyService's ``grant``, answering from a dict after ``delay_s``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.grants: dict[bytes, Grant] = {}
        self.calls = 0
        self.delay_s = delay_s

    async def grant(self, digest: bytes) -> Grant | None:
        self.calls += 1
        answer = self.grants.get(digest)
        await asyncio.sleep(self.delay_s)
        return answer


def _auth(keys: Keys, **kwargs: Any) -> KeyAuthenticator:
    return KeyAuthenticator(keys, **kwargs)  # type: ignore[arg-type]


def test_the_cache_holds_a_key_one_second_at_most() -> None:
    assert TTL_S <= 1.0


async def test_a_revoked_key_is_refused_once_its_entry_is_older_than_the_ttl() -> None:
    keys = Keys()
    keys.grants[hash_secret("s")] = Grant(PRINCIPAL, None)
    auth = _auth(keys, ttl_s=0.2)
    assert await auth.authenticate("Bearer s") == PRINCIPAL
    del keys.grants[hash_secret("s")]  # revoked
    assert await auth.authenticate("Bearer s") == PRINCIPAL  # cached
    await asyncio.sleep(0.25)
    with pytest.raises(AuthenticationError):
        await auth.authenticate("Bearer s")


async def test_an_entry_expires_counted_from_the_start_of_its_lookup() -> None:
    """A lookup that began before a revocation committed must not keep the key for a
    full TTL after the commit: its entry is stamped when the lookup started."""
    keys = Keys(delay_s=0.15)
    keys.grants[hash_secret("s")] = Grant(PRINCIPAL, None)
    auth = _auth(keys, ttl_s=0.2)
    started = time.monotonic()
    await auth.authenticate("Bearer s")
    del keys.grants[hash_secret("s")]
    await asyncio.sleep(max(0.0, started + 0.21 - time.monotonic()))
    with pytest.raises(AuthenticationError):
        await auth.authenticate("Bearer s")


async def test_concurrent_lookups_of_one_key_share_one_query() -> None:
    keys = Keys(delay_s=0.05)
    keys.grants[hash_secret("s")] = Grant(PRINCIPAL, None)
    auth = _auth(keys)
    found = await asyncio.gather(*(auth.authenticate("Bearer s") for _ in range(50)))
    assert found == [PRINCIPAL] * 50
    assert keys.calls == 1
    # Unknown secrets are remembered too (negative entries), also with one query.
    for outcome in await asyncio.gather(
        *(auth.authenticate("Bearer nope") for _ in range(20)), return_exceptions=True
    ):
        assert isinstance(outcome, AuthenticationError)
    assert keys.calls == 2


async def test_a_cancelled_request_does_not_cancel_the_shared_lookup() -> None:
    keys = Keys(delay_s=0.05)
    keys.grants[hash_secret("s")] = Grant(PRINCIPAL, None)
    auth = _auth(keys)
    first = asyncio.create_task(auth.authenticate("Bearer s"))
    second = asyncio.create_task(auth.authenticate("Bearer s"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == PRINCIPAL
    assert keys.calls == 1


async def test_an_expired_key_is_refused_even_while_cached() -> None:
    keys = Keys()
    keys.grants[hash_secret("s")] = Grant(PRINCIPAL, time.time() + 0.1)
    auth = _auth(keys, ttl_s=60)
    assert await auth.authenticate("Bearer s") == PRINCIPAL
    await asyncio.sleep(0.12)
    with pytest.raises(AuthenticationError) as caught:
        await auth.authenticate("Bearer s")
    assert caught.value.code == "invalid_api_key"
    assert keys.calls == 1


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_cached() -> None:
    class Down(Keys):
        async def grant(self, digest: bytes) -> Grant | None:
            self.calls += 1
            await asyncio.sleep(0.02)
            raise ConnectionError("database down")

    keys = Down()
    auth = _auth(keys)
    outcomes = await asyncio.gather(
        *(auth.authenticate("Bearer s") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert keys.calls == 1
    with pytest.raises(ConnectionError):
        await auth.authenticate("Bearer s")
    assert keys.calls == 2
