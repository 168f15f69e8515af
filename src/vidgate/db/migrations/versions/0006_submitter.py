"""Submissions move from one procrastinate task per job to a due-time column that
submitters claim in batches (engine/submitter.py), as polls did in 0004."""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    # Jobs queued or mid-submission at upgrade time: submit them at once (a job that
    # was mid-submission goes again with its idempotency key, as after a crash).
    # Their queued submit tasks have no handler any more.
    op.execute("""
        ALTER TABLE jobs ADD COLUMN submit_at timestamptz;
        CREATE INDEX jobs_submit_due_idx ON jobs (submit_at)
            WHERE state IN ('queued', 'submitting');
        UPDATE jobs SET submit_at = now() WHERE state IN ('queued', 'submitting');
        DELETE FROM procrastinate_jobs WHERE status = 'todo' AND task_name = 'vidgate:submit';
    """)


def downgrade() -> None:
    op.execute("DROP INDEX jobs_submit_due_idx; ALTER TABLE jobs DROP COLUMN submit_at")
