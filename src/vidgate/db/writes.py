"""The API's hot write: a new job, queued for submission now (engine/submitter.py), as
one fixed INSERT on the caller's transaction.

A SQLAlchemy insert would build a statement per call (values, cache key, compilation);
this one is a constant that psycopg prepares once per connection.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import BaseRowFactory, args_row
from psycopg.types.json import Jsonb
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.database import raw_connection
from vidgate.db.repo import JobRecord

_INSERT_JOB = (
    "INSERT INTO jobs (id, tenant_id, api_key_id, mode, model, kind, spec, provider,"
    " upstream_model, estimated_cost, source_video_id, webhook_url, state, submit_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued', now()) RETURNING "
    + ", ".join(f.name for f in dataclasses.fields(JobRecord))
)
_JOB_ROW: BaseRowFactory[JobRecord] = args_row(JobRecord)


async def insert_job(
    conn: AsyncConnection,
    *,
    id: str,
    tenant_id: str,
    api_key_id: str,
    mode: str,
    model: str,
    kind: str,
    spec: dict[str, Any],
    provider: str,
    upstream_model: str | None,
    estimated_cost: Decimal,
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
        Jsonb(spec),
        provider,
        upstream_model,
        estimated_cost,
        source_video_id,
        webhook_url,
    )
    async with raw.cursor(row_factory=_JOB_ROW) as cur:
        await cur.execute(_INSERT_JOB, params)
        row = await cur.fetchone()
    assert row is not None
    return row
