"""Whether the database answers, known without asking it on every request.

When PostgreSQL goes away, every request that needs it would otherwise wait on a
connection pool (psycopg_pool waits up to its timeout for a connection it cannot make)
and then fail with a traceback. Instead the first request that meets a lost connection
reports it here; from then on requests are refused at once with a 503 while one probe
reconnects in the background. When the probe gets an answer, the pools drop their dead
connections (``on_recover``) and requests flow again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import sqlalchemy.exc
import structlog
from psycopg_pool import PoolTimeout

from vidgate.db.embedded import to_libpq_uri

log = structlog.get_logger("vidgate.db")

# SQLSTATE classes and codes that mean the server, not the statement, is the problem:
# 08 connection exception; 57P01-57P03 admin shutdown, crash shutdown, cannot connect
# now (starting up, or in recovery after a crash).
_LOST_CLASSES = ("08",)
_LOST_CODES = frozenset({"57P01", "57P02", "57P03"})

Recover = Callable[[], Awaitable[None]]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_unavailable(exc: BaseException) -> bool:
    """An error the database's state caused (no connection, the server shutting down,
    a full pool, a cancelled statement): a client may retry; its request was fine."""
    return any(
        isinstance(
            e,
            psycopg.OperationalError
            | psycopg.InterfaceError
            | sqlalchemy.exc.OperationalError
            | sqlalchemy.exc.InterfaceError
            | sqlalchemy.exc.TimeoutError,
        )
        for e in _chain(exc)
    )


def is_connection_lost(exc: BaseException) -> bool:
    """An error that says the server cannot be reached at all (as opposed to one
    statement failing): worth refusing further requests until a probe gets through."""
    for e in _chain(exc):
        if isinstance(e, PoolTimeout):
            return True
        if isinstance(e, psycopg.InterfaceError):
            return True
        if isinstance(e, psycopg.OperationalError):
            # Errors raised by the client library (no server to answer) carry no
            # SQLSTATE; the server's own say which class they are.
            state = e.sqlstate
            if state is None or state.startswith(_LOST_CLASSES) or state in _LOST_CODES:
                return True
        if isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated:
            return True
    return False


def log_failure(log: Any, event: str, exc: BaseException, **fields: Any) -> None:
    """Log an exception from a loop that goes on after it: with its traceback, unless
    the database's state caused it. While the database is down the worker's loops fail
    several times a second; one line each says enough."""
    if is_unavailable(exc):
        log.warning(event, error=_describe(exc), **fields)
    else:
        log.error(event, exc_info=exc, **fields)


class DatabaseHealth:
    """The database's availability as this process last saw it.

    ``report`` is called with errors from requests; ``available`` is read before them.
    At most one probe runs at a time; it tries every ``probe_interval_s``.
    """

    def __init__(
        self,
        database_url: str,
        *,
        probe_interval_s: float = 0.5,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self._conninfo = to_libpq_uri(database_url)
        self._probe_interval_s = probe_interval_s
        self._connect_timeout_s = connect_timeout_s
        self._recover: list[Recover] = []
        self._probe: asyncio.Task[None] | None = None
        self.available = True

    def on_recover(self, callback: Recover) -> None:
        """Run ``callback`` each time the database answers again after an outage."""
        self._recover.append(callback)

    def report(self, exc: BaseException) -> bool:
        """Note an error met while using the database; True if it means the database
        is unreachable (and requests are now refused until a probe gets through)."""
        if not is_connection_lost(exc):
            return False
        if self.available:
            log.warning("database.unavailable", error=_describe(exc))
        self.available = False
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._reconnect(), name="vidgate-db-probe")
        return True

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval_s)
            if await self.ping():
                break
        for callback in self._recover:
            try:
                await callback()
            except Exception as exc:
                log.warning("database.recover_hook_failed", error=_describe(exc))
        self.available = True
        log.info("database.available")

    async def ping(self) -> bool:
        """One fresh connection and ``SELECT 1``, within the connect timeout."""
        try:
            async with asyncio.timeout(self._connect_timeout_s * 2):
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=max(1, round(self._connect_timeout_s)),
                )
                async with conn:
                    await conn.execute("SELECT 1")
        except (psycopg.Error, OSError, TimeoutError):
            return False
        return True

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


def _describe(exc: BaseException) -> str:
    """The first line of the innermost database error: what failed, without a
    traceback (a connection string never appears in psycopg's messages)."""
    inner = _chain(exc)[-1]
    text = str(inner).strip().splitlines()
    return text[0][:300] if text else type(inner).__name__
