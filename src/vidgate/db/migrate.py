"""Bring a database to the current schema: procrastinate's tables and vidgate's own.

Runs under a PostgreSQL advisory lock so that a server and a CLI command starting
together on one database never migrate it twice.
"""

from __future__ import annotations

import functools
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.embedded import to_sqlalchemy_url

_MIGRATION_LOCK = 0x76696467  # "vidg"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("vidgate.db") / "migrations"))
    return cfg


def migrate(database_url: str) -> None:
    engine = sa.create_engine(to_sqlalchemy_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
    finally:
        engine.dispose()


@functools.cache
def head_revision() -> str:
    """The newest migration this code ships (read from the scripts once per process)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(conn: AsyncConnection) -> str | None:
    """The migration the database is at (None: never migrated)."""
    exists = await conn.scalar(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return None
    value = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    return str(value) if value is not None else None
