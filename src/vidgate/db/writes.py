"""The API's hot write: a new job, queued for submission now (engine/submitter.py), as
one fixed INSERT on the caller's transaction.

A SQLAlchemy insert would build a statement per call (values, cache key, compilation);
this one is a constant that psycopg prepares once per connection.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.core.jobs import JobRecord
from vidgate.core.spec import JobSpec
from vidgate.db.database import raw_connection
from vidgate.db.jobs import JOB_COLUMNS, job_from_values

# The spec is not read back: the record gets the spec the row was written from.
_INSERT_JOB = (
    "INSERT INTO jobs (id, tenant_id, api_key_id, mode, model, kind, spec, provider,"
    " upstream_model, estimated_cost, source_video_id, webhook_url, state, submit_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued', now()) RETURNING "
    + ", ".join("NULL" if name == "spec" else name for name in JOB_COLUMNS)
)


async def insert_job(
    conn: AsyncConnection,
    *,
    id: str,
    tenant_id: str,
    api_key_id: str,
    mode: str,
    model: str,
    kind: str,
    spec: JobSpec,
    stored_spec: dict[str, Any],
    provider: str,
    upstream_model: str | None,
    estimated_cost: Decimal | None,
    source_video_id: str | None,
    webhook_url: str | None,
) -> JobRecord:
    raw: psycopg.AsyncConnection[Any] = await raw_connection(conn)
    params = (
        id,
        tenant_id,
        api_key_id,
        mode,
        model,
        kind,
        Jsonb(stored_spec),
        provider,
        upstream_model,
        estimated_cost,
        source_video_id,
        webhook_url,
    )
    async with raw.cursor() as cur:
        await cur.execute(_INSERT_JOB, params)
        row = await cur.fetchone()
    assert row is not None
    return job_from_values(row, spec)
