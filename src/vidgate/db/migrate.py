"""Bring a database to the current schema: procrastinate's tables and vidgate's own.

Runs under a PostgreSQL advisory lock so that processes starting together on one
database (API replicas, workers, a CLI command) never migrate it twice: the first to
take the lock migrates, the others wait for it and then find the schema at head.
"""

from __future__ import annotations

import functools
from importlib import resources

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from vidgate.db.embedded import to_sqlalchemy_url

log = structlog.get_logger("vidgate.migrate")

_MIGRATION_LOCK = 0x76696467  # "vidg"
# The oldest PostgreSQL vidgate supports (server_version_num).
MIN_SERVER_VERSION_NUM = 140000


class UnsupportedServer(RuntimeError):
    """The database server is older than vidgate supports."""


def require_supported(version_num: int, version: str) -> None:
    """Refuse a server older than PostgreSQL 14, saying which one it is."""
    if version_num < MIN_SERVER_VERSION_NUM:
        raise UnsupportedServer(
            f"vidgate needs PostgreSQL 14 or newer; the server at VIDGATE_DATABASE_URL is"
            f" PostgreSQL {version} (server_version_num {version_num})"
        )


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("vidgate.db") / "migrations"))
    return cfg


def migrate(database_url: str) -> None:
    engine = sa.create_engine(to_sqlalchemy_url(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT current_setting('server_version_num')::int,"
                    " current_setting('server_version')"
                )
            ).one()
            require_supported(row[0], row[1])
            conn.commit()
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            try:
                before = MigrationContext.configure(conn).get_current_revision()
                cfg = alembic_config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                after = MigrationContext.configure(conn).get_current_revision()
                # The one process that changed the schema says so (the others, which
                # waited on the lock, found it at head and say nothing).
                if after != before:
                    log.info("migrate.applied", from_revision=before, to_revision=after)
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
