"""Alembic environment: runs on the connection handed over by ``vidgate.db.migrate``."""

from __future__ import annotations

from alembic import context

from vidgate.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
