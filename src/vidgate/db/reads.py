"""The API's hot reads, on a psycopg pool of their own: one round trip each.

A read through the SQLAlchemy engine costs ``BEGIN``, the query and ``ROLLBACK`` (three
round trips) plus statement compilation and the greenlet bridge. These queries are
fixed, so they run on autocommit connections, prepared on first use per connection,
with rows built straight into the records of core/jobs.py (a job's spec parsed from the
stored JSON text: one parse, no dict in between). Writes, and reads that
must see a transaction, stay on the engine.

Reads of a job by id (every status poll), and of a job with its outputs (every
download), are also coalesced: those that arrive while the previous lookup is on its
way share one query (``_Batcher``). Under load that
turns dozens of round trips into one; a lone request still goes out at once.

``EngineReads`` answers the same questions through the engine, for code that builds a
``JobService`` without a pool of its own (tests of the engine).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from psycopg.rows import BaseRowFactory, RowMaker, args_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine

from vidgate.core.jobs import JobRecord, OutputRecord, stored_spec_json
from vidgate.core.keys import KeyMode, KeyRecord, Role
from vidgate.db.embedded import to_libpq_uri
from vidgate.db.jobs import JOB_COLUMNS, get_job, get_outputs, job_from_values
from vidgate.db.keys import find_active_key

# The spec as JSON text: ``JobSpec.model_validate_json`` parses it in one go, cheaper
# than psycopg's ``json.loads`` followed by a model built from the dict.
_JOB_COLUMNS = ", ".join("j.spec::text" if name == "spec" else f"j.{name}" for name in JOB_COLUMNS)
_SPEC_AT = JOB_COLUMNS.index("spec")
_OUTPUT_FIELDS = tuple(f.name for f in dataclasses.fields(OutputRecord))

_JOB = f"SELECT {_JOB_COLUMNS} FROM jobs j WHERE j.id = %s AND j.tenant_id = %s"
# Several jobs by id (primary key), of the asking tenants only; the exact (id, tenant)
# pairs are matched in ``_live_jobs``.
_LIVE_JOBS = (
    f"SELECT {_JOB_COLUMNS} FROM jobs j"
    " WHERE j.id = ANY(%s) AND j.tenant_id = ANY(%s) AND j.deleted_at IS NULL"
)

# The job and its outputs in one statement: outputs as a JSON array in index order.
_OUTPUTS = (
    "(SELECT coalesce(json_agg(json_build_array("
    + ", ".join(f'o."{name}"' for name in _OUTPUT_FIELDS)
    + ") ORDER BY o.\"index\"), '[]') FROM job_outputs o WHERE o.job_id = j.id)"
)
# Several by id (primary key); the tenant, where the caller has one, is matched in
# ``_live_jobs_with_outputs``.
_LIVE_JOBS_WITH_OUTPUTS = (
    f"SELECT {_JOB_COLUMNS}, {_OUTPUTS} FROM jobs j WHERE j.id = ANY(%s) AND j.deleted_at IS NULL"
)

_ACTIVE_KEY = (
    "SELECT k.id, k.tenant_id, t.name, k.name, k.prefix, k.mode, k.role, k.created_at,"
    " k.revoked_at, k.models, k.expires_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
    " WHERE k.secret_hash = %s AND k.revoked_at IS NULL"
    " AND (k.expires_at IS NULL OR k.expires_at > now())"
)


def _output(item: list[Any]) -> OutputRecord:
    job_id, index, video, thumbnail, sprites, width, height, fps, duration, size = item
    # JSON drops the float type of whole numbers (24.0 arrives as 24).
    return OutputRecord(
        job_id, index, video, thumbnail, sprites, width, height, float(fps), float(duration), size
    )


def _job(values: Sequence[Any]) -> JobRecord:
    return job_from_values(values, stored_spec_json(values[_SPEC_AT]))


def _job_row(cur: Any) -> RowMaker[JobRecord]:
    return _job


def _job_with_outputs(cur: Any) -> RowMaker[tuple[JobRecord, list[OutputRecord]]]:
    width = len(JOB_COLUMNS)

    def make(values: Sequence[Any]) -> tuple[JobRecord, list[OutputRecord]]:
        return _job(values[:width]), [_output(item) for item in values[width]]

    return make


_JOB_ROW: BaseRowFactory[JobRecord] = _job_row


def _key(
    id: str,
    tenant_id: str,
    tenant_name: str,
    name: str,
    prefix: str,
    mode: KeyMode,
    role: Role,
    created_at: dt.datetime,
    revoked_at: dt.datetime | None,
    models: list[str] | None,
    expires_at: dt.datetime | None,
) -> KeyRecord:
    return KeyRecord(
        id,
        tenant_id,
        tenant_name,
        name,
        prefix,
        mode,
        role,
        created_at,
        revoked_at,
        tuple(models) if models is not None else None,
        expires_at,
    )


_KEY_ROW: BaseRowFactory[KeyRecord] = args_row(_key)
_JOB_WITH_OUTPUTS_ROW: BaseRowFactory[tuple[JobRecord, list[OutputRecord]]] = _job_with_outputs

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class JobReads(Protocol):
    async def job(
        self, job_id: str, tenant_id: str, *, include_deleted: bool = False
    ) -> JobRecord | None:
        """The tenant's job; another tenant's id reads as missing."""

    async def job_with_outputs(
        self, job_id: str, tenant_id: str | None
    ) -> tuple[JobRecord, list[OutputRecord]] | None:
        """A job that is not deleted and its outputs; any tenant's when ``tenant_id`` is
        None (a signed link already proves the right to read it)."""

    async def active_key(self, secret_hash: bytes) -> KeyRecord | None:
        """The unrevoked, unexpired key with this secret hash."""


Key = TypeVar("Key", bound=Hashable)
Found = TypeVar("Found")
Fetch = Callable[[psycopg.AsyncConnection[Any], list[Key]], Awaitable[dict[Key, Found]]]


class _Batcher(Generic[Key, Found]):
    """Lookups by key: concurrent ones share one query (``fetch``: the keys asked, to
    what was found for each).

    The first lookup of a batch starts a task; the task takes every lookup queued by
    the time it holds a connection, so a batch is whatever arrived in the meantime.
    Each lookup still sees every commit that preceded it: its query starts after it
    was asked.
    """

    def __init__(self, pool: Pool, fetch: Fetch[Key, Found]) -> None:
        self._pool = pool
        self._fetch = fetch
        self._queued: list[tuple[Key, asyncio.Future[Found | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: Key) -> Found | None:
        found: asyncio.Future[Found | None] = asyncio.get_running_loop().create_future()
        self._queued.append((key, found))
        if len(self._queued) == 1:
            task = asyncio.create_task(self._run(), name="vidgate-job-reads")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await found

    async def _run(self) -> None:
        batch: list[tuple[Key, asyncio.Future[Found | None]]] = []
        try:
            async with self._pool.connection() as conn:
                batch, self._queued = self._queued, []
                if not batch:  # an earlier task took them
                    return
                by_key = await self._fetch(conn, list({key for key, _ in batch}))
        except BaseException as exc:
            if not batch:
                batch, self._queued = self._queued, []
            for _, waiter in batch:
                if waiter.done():
                    continue
                if isinstance(exc, Exception):
                    waiter.set_exception(exc)
                else:
                    waiter.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for key, waiter in batch:
            if not waiter.done():
                waiter.set_result(by_key.get(key))


async def _live_jobs(
    conn: psycopg.AsyncConnection[Any], keys: list[tuple[str, str]]
) -> dict[tuple[str, str], JobRecord]:
    """Live jobs by (id, tenant): one query for the ids and tenants, the exact pairs
    matched here."""
    ids = list({job_id for job_id, _ in keys})
    tenants = list({tenant_id for _, tenant_id in keys})
    async with conn.cursor(row_factory=_JOB_ROW) as cur:
        await cur.execute(_LIVE_JOBS, (ids, tenants))
        return {(row.id, row.tenant_id): row for row in await cur.fetchall()}


WithOutputs = tuple[JobRecord, list[OutputRecord]]


async def _live_jobs_with_outputs(
    conn: psycopg.AsyncConnection[Any], keys: list[tuple[str, str | None]]
) -> dict[tuple[str, str | None], WithOutputs]:
    """Live jobs and their outputs by (id, tenant or None for any tenant's)."""
    async with conn.cursor(row_factory=_JOB_WITH_OUTPUTS_ROW) as cur:
        await cur.execute(_LIVE_JOBS_WITH_OUTPUTS, (list({job_id for job_id, _ in keys}),))
        rows = {row[0].id: row for row in await cur.fetchall()}
    found: dict[tuple[str, str | None], WithOutputs] = {}
    for job_id, tenant_id in keys:
        row = rows.get(job_id)
        if row is not None and tenant_id in (None, row[0].tenant_id):
            found[(job_id, tenant_id)] = row
    return found


class Reads:
    """The pool and the queries on it. ``open`` before use, ``close`` at shutdown."""

    def __init__(self, database_url: str, *, max_size: int = 8, timeout_s: float = 5.0) -> None:
        self._pool: Pool = AsyncConnectionPool(
            to_libpq_uri(database_url),
            min_size=1,
            max_size=max_size,
            open=False,
            # Prepared on first execution: these few statements run on every request.
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "connect_timeout": max(1, round(timeout_s)),
            },
            # How long a read waits for a connection: the pool's default (30 s) is how
            # long every read hung while the database was down.
            timeout=timeout_s,
            name="vidgate-reads",
        )
        self._jobs = _Batcher(self._pool, _live_jobs)
        # Downloads: a job with its outputs, batched the same way.
        self._with_outputs = _Batcher(self._pool, _live_jobs_with_outputs)

    async def open(self) -> None:
        await self._pool.open(wait=True)

    async def close(self) -> None:
        await self._pool.close()

    async def check(self) -> None:
        """Replace pooled connections that no longer work (after a database outage)."""
        await self._pool.check()

    async def job(
        self, job_id: str, tenant_id: str, *, include_deleted: bool = False
    ) -> JobRecord | None:
        if not include_deleted:
            return await self._jobs.get((job_id, tenant_id))
        async with self._pool.connection() as conn, conn.cursor(row_factory=_JOB_ROW) as cur:
            await cur.execute(_JOB, (job_id, tenant_id))
            return await cur.fetchone()

    async def job_with_outputs(
        self, job_id: str, tenant_id: str | None
    ) -> tuple[JobRecord, list[OutputRecord]] | None:
        return await self._with_outputs.get((job_id, tenant_id))

    async def active_key(self, secret_hash: bytes) -> KeyRecord | None:
        async with self._pool.connection() as conn, conn.cursor(row_factory=_KEY_ROW) as cur:
            await cur.execute(_ACTIVE_KEY, (secret_hash,))
            return await cur.fetchone()


class EngineReads:
    """``JobReads`` through the SQLAlchemy engine: correct, three round trips a read."""

    def __init__(self, db: AsyncEngine) -> None:
        self._db = db

    async def job(
        self, job_id: str, tenant_id: str, *, include_deleted: bool = False
    ) -> JobRecord | None:
        async with self._db.connect() as conn:
            return await get_job(conn, job_id, tenant_id=tenant_id, include_deleted=include_deleted)

    async def job_with_outputs(
        self, job_id: str, tenant_id: str | None
    ) -> tuple[JobRecord, list[OutputRecord]] | None:
        async with self._db.connect() as conn:
            job = await get_job(conn, job_id, tenant_id=tenant_id)
            return (job, await get_outputs(conn, job_id)) if job is not None else None

    async def active_key(self, secret_hash: bytes) -> KeyRecord | None:
        async with self._db.connect() as conn:
            return await find_active_key(conn, secret_hash)
