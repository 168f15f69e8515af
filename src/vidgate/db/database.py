"""Connection handling: one SQLAlchemy async engine per process, psycopg 3 underneath.

procrastinate defers jobs on the same psycopg connection (``raw_connection``) so that a
job row and the task that advances it commit or roll back together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vidgate.db.embedded import to_sqlalchemy_url


def create_engine(database_url: str, *, pool_size: int = 10, timeout_s: float = 5.0) -> AsyncEngine:
    """``timeout_s`` bounds both the wait for a free pooled connection and the making of
    a new one: with the database gone, a request fails in seconds, not the pool's
    default 30 s."""
    return create_async_engine(
        to_sqlalchemy_url(database_url),
        # As many connections as before (pool_size plus as many again in overflow), all
        # kept once opened: under load the pool's queue fills in bursts, and overflow
        # connections returned then were closed and reopened, a PostgreSQL backend
        # start each time.
        pool_size=2 * pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        # Return connections quickly after a database restart rather than erroring forever.
        pool_recycle=1800,
        pool_timeout=timeout_s,
        connect_args={"connect_timeout": max(1, round(timeout_s))},
    )


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection on which each statement commits on its own: no BEGIN and COMMIT
    round trips, for single statements that need no transaction around them."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def raw_connection(conn: AsyncConnection) -> Any:
    """The psycopg ``AsyncConnection`` under ``conn``, inside its open transaction."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection
