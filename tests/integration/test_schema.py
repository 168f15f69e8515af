"""Schema once: the migrations are the truth, and the code's tables must match them.

An empty database is migrated to head and compared with ``db/schema.py``, the tables the
queries are written against: Alembic's own comparison (columns, types, nullability,
server defaults, indexes, unique constraints, foreign keys), then PostgreSQL's catalogue
against a database made from ``schema.py`` alone, for what Alembic does not compare (a
partial index's WHERE, CHECK constraints). The queue tables must be what the installed
procrastinate's own ``schema.sql`` makes, so upgrading procrastinate without a migration
fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from procrastinate.schema import SchemaManager
from tests.conftest import make_database

from vidgate.db import schema
from vidgate.db.embedded import to_sqlalchemy_url
from vidgate.db.migrate import migrate
from vidgate.db.migrations import procrastinate as pinned

Catalogue = dict[str, set[tuple[str, ...]]]

# Every row's first field names the table (or the function, or the type) it belongs to.
_CATALOGUE = {
    "columns": """
        SELECT table_name, column_name, data_type, coalesce(character_maximum_length, -1),
               coalesce(numeric_precision, -1), coalesce(numeric_scale, -1), is_nullable,
               coalesce(column_default, ''), is_identity
        FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal""",
    # Whitespace aside: procrastinate's migrations may indent a body unlike schema.sql.
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid),
               regexp_replace(pg_get_functiondef(oid), '\\s+', ' ', 'g')
        FROM pg_proc WHERE pronamespace = 'public'::regnamespace""",
    "types": """
        SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typnamespace = 'public'::regnamespace GROUP BY t.typname""",
}


def _catalogue(url: str, owned: Callable[[tuple[str, ...]], bool]) -> Catalogue:
    with psycopg.connect(url) as conn:
        return {
            kind: {row for row in (tuple(map(str, r)) for r in conn.execute(query)) if owned(row)}
            for kind, query in _CATALOGUE.items()
        }


def _migrated(pg_server: str) -> str:
    url = make_database(pg_server, migrated=False)
    migrate(url)
    return url


def _vidgate(row: tuple[str, ...]) -> bool:
    return row[0] in schema.metadata.tables


def _procrastinate(row: tuple[str, ...]) -> bool:
    # vidgate's own index on procrastinate_jobs (migration 0005) is not procrastinate's,
    # nor are vidgate's own functions (vidgate_*, migration 0016).
    return (
        not _vidgate(row)
        and row[0] != "alembic_version"
        and not row[0].startswith("vidgate_")
        and not row[1].startswith("vidgate_")
    )


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # The queue's tables are procrastinate's; every other table must be in schema.py.
    return not (type_ == "table" and reflected and str(name).startswith("procrastinate_"))


def test_migrations_make_the_tables_the_code_uses(pg_server: str) -> None:
    engine = sa.create_engine(to_sqlalchemy_url(_migrated(pg_server)), poolclass=sa.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "compare_server_default": True, "include_object": _include},
        )
        drift = compare_metadata(context, schema.metadata)
    engine.dispose()
    assert drift == [], "db/schema.py and the migrations disagree; add a migration"


def test_migrations_make_the_indexes_and_checks_the_code_declares(pg_server: str) -> None:
    declared = make_database(pg_server, migrated=False)
    engine = sa.create_engine(to_sqlalchemy_url(declared), poolclass=sa.NullPool)
    schema.metadata.create_all(engine)
    engine.dispose()
    migrated = _catalogue(_migrated(pg_server), _vidgate)
    expected = _catalogue(declared, _vidgate)
    assert migrated["indexes"] == expected["indexes"]
    assert migrated["constraints"] == expected["constraints"]
    # Column order differs (migrations append), the columns themselves must not.
    assert migrated["columns"] == expected["columns"]


def test_procrastinate_installed_is_the_one_the_migrations_apply() -> None:
    assert metadata.version("procrastinate") == pinned.VERSION, (
        "procrastinate changed: add a migration that runs its migration files since"
        f" {pinned.VERSION} and move VERSION (docs/architecture.md, Migrations)"
    )


def test_migrations_make_procrastinates_own_schema(pg_server: str) -> None:
    own = make_database(pg_server, migrated=False)
    with psycopg.connect(own, autocommit=True) as conn:
        conn.execute(SchemaManager.get_schema())
    migrated = _catalogue(_migrated(pg_server), _procrastinate)
    expected = _catalogue(own, _procrastinate)
    assert expected["columns"] and expected["functions"] and expected["types"]
    assert migrated == expected
