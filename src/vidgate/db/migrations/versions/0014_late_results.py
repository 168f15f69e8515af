"""A job failed by vidgate's own wait limit (VIDGATE_UPSTREAM_TASK_TIMEOUT_S) keeps its
upstream task under watch: ``jobs.late_check_at`` is when that task is read next (NULL:
not watched). A task that then succeeds brings the job back to ``finalizing``, and it
is settled like any completed job (engine/late_results.py).
"""

from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    op.execute("""
        ALTER TABLE jobs ADD COLUMN late_check_at timestamptz;
        CREATE INDEX jobs_late_check_idx ON jobs (late_check_at)
            WHERE late_check_at IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX jobs_late_check_idx;
        ALTER TABLE jobs DROP COLUMN late_check_at;
    """)
