"""Polling moves from one procrastinate task per status read to a due-time column that
pollers claim in batches (engine/poller.py)."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # Jobs waiting upstream at upgrade time: read their status at once. Their queued
    # poll and nudge tasks have no handler any more.
    op.execute("""
        ALTER TABLE jobs ADD COLUMN next_poll_at timestamptz;
        CREATE INDEX jobs_poll_due_idx ON jobs (next_poll_at) WHERE state = 'waiting';
        UPDATE jobs SET next_poll_at = now() WHERE state = 'waiting';
        DELETE FROM procrastinate_jobs
            WHERE status = 'todo' AND task_name IN ('vidgate:poll', 'vidgate:nudge');
    """)


def downgrade() -> None:
    op.execute("DROP INDEX jobs_poll_due_idx; ALTER TABLE jobs DROP COLUMN next_poll_at")
