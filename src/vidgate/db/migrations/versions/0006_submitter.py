"""Submissions move from one procrastinate task per job to a due-time column that
submitters claim in batches (engine/submitter.py), as polls did in 0004.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("submit_at", sa.DateTime(timezone=True)))
    op.create_index(
        "jobs_submit_due_idx",
        "jobs",
        ["submit_at"],
        postgresql_where=sa.text("state IN ('queued', 'submitting')"),
    )
    # Jobs queued or mid-submission at upgrade time: submit them at once (a job that
    # was mid-submission goes again with its idempotency key, as after a crash).
    # Their queued submit tasks have no handler any more.
    op.execute("UPDATE jobs SET submit_at = now() WHERE state IN ('queued', 'submitting')")
    op.execute(
        "DELETE FROM procrastinate_jobs WHERE status = 'todo' AND task_name = 'vidgate:submit'"
    )


def downgrade() -> None:
    op.drop_index("jobs_submit_due_idx", "jobs")
    op.drop_column("jobs", "submit_at")
