"""Stored files (media/storage.py keeps the bytes): their content types by hash."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.schema import blobs


async def record_blob(conn: AsyncConnection, sha256: str, size: int, content_type: str) -> None:
    await conn.execute(
        pg_insert(blobs)
        .values(sha256=sha256, size=size, content_type=content_type)
        .on_conflict_do_nothing()
    )


async def get_blob_content_type(conn: AsyncConnection, sha256: str) -> str | None:
    value = await conn.scalar(sa.select(blobs.c.content_type).where(blobs.c.sha256 == sha256))
    return str(value) if value is not None else None
