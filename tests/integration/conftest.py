"""What the integration tests share: a runtime on a fresh database, and a caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.config import Settings
from vidgate.db.keys import ensure_tenant, insert_api_key
from vidgate.db.migrate import migrate
from vidgate.engine.service import Principal
from vidgate.runtime import Runtime, open_runtime


@asynccontextmanager
async def runtime_on(database_url: str, tmp_path: Path, **settings: Any) -> AsyncIterator[Runtime]:
    """The runtime of a process on ``database_url`` (migrated), with ``settings``."""
    migrate(database_url)
    config = Settings(data_dir=tmp_path / "data", database_url=database_url, **settings)
    async with open_runtime(config, database_url) as rt:
        yield rt


async def add_caller(
    conn: AsyncConnection, name: str, *, mode: Literal["test", "live"] = "test"
) -> Principal:
    """A tenant ``tenant_<name>`` with one key ``key_<name>``, as a caller."""
    tenant = await ensure_tenant(conn, f"tenant_{name}", name)
    await insert_api_key(
        conn,
        key_id=f"key_{name}",
        tenant_id=tenant,
        name=name,
        prefix="p",
        secret_hash=name.encode(),
        mode=mode,
        role="member",
    )
    return Principal(f"key_{name}", tenant, mode)
