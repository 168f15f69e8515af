"""Finalize claimed from the job rows (issue 14, finalize under a burst): a finalizing
job's next finalize is due at its ``next_poll_at`` (the poller's column: a job is never
waiting and finalizing at once), claimed in batches by engine/finalizer.py instead of
one procrastinate task per job. Jobs already finalizing when this runs are due now;
their queued tasks (the old ``vidgate:finalize``) only wake the finalizer.
"""

from alembic import op

revision = "0022"
down_revision = "0021"


def upgrade() -> None:
    op.execute("""
        CREATE INDEX jobs_finalize_due_idx ON jobs (next_poll_at) WHERE state = 'finalizing';
        UPDATE jobs SET next_poll_at = now() WHERE state = 'finalizing';
    """)


def downgrade() -> None:
    op.execute("DROP INDEX jobs_finalize_due_idx")
