"""Polling moves from one procrastinate task per status read to a due-time column that
pollers claim in batches (engine/poller.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("next_poll_at", sa.DateTime(timezone=True)))
    op.create_index(
        "jobs_poll_due_idx",
        "jobs",
        ["next_poll_at"],
        postgresql_where=sa.text("state = 'waiting'"),
    )
    # Jobs waiting upstream at upgrade time: read their status at once. Their queued
    # poll and nudge tasks have no handler any more.
    op.execute("UPDATE jobs SET next_poll_at = now() WHERE state = 'waiting'")
    op.execute(
        "DELETE FROM procrastinate_jobs WHERE status = 'todo'"
        " AND task_name IN ('vidgate:poll', 'vidgate:nudge')"
    )


def downgrade() -> None:
    op.drop_index("jobs_poll_due_idx", "jobs")
    op.drop_column("jobs", "next_poll_at")
