"""procrastinate's schema, pinned: the migrations apply it, never the installed package.

Migration 0001 ran the ``schema.sql`` of procrastinate 3.10.0, kept here as shipped
(``schema-3.10.0.sql``), so a fresh database gets the same queue tables whichever
procrastinate is installed. An upgrade of procrastinate is a new migration that runs
procrastinate's own migration files since the last version (``migration_sql``) and
moves ``VERSION``; docs/architecture.md, "Migrations", has the steps, and
tests/integration/test_schema.py fails while the installed procrastinate and the
schema the migrations leave disagree.
"""

from __future__ import annotations

from importlib import resources

# The procrastinate whose schema the migration chain leaves; pyproject.toml pins it.
VERSION = "3.10.0"


def schema_sql(version: str) -> str:
    """The ``schema.sql`` of procrastinate ``version``, as vendored here."""
    return (resources.files(__name__) / f"schema-{version}.sql").read_text("utf-8")


def migration_sql(name: str) -> str:
    """One of procrastinate's migration files (``sql/migrations/<name>``), as installed.

    procrastinate keeps every migration it ever shipped, under a name that never
    changes, so a migration written for one upgrade reads the same file later.
    """
    return (resources.files("procrastinate.sql.migrations") / name).read_text("utf-8")
