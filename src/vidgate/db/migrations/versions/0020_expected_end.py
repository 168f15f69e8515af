"""When a waiting job's upstream task is expected to end (``jobs.expected_end_at``), as
the poller's schedule last placed it (engine/poll_schedule.py): reads cluster around that
moment, and once it has passed it stays put, so that the quick reads after it end.
NULL: no estimate (no progress reported yet, or none at all).
"""

from alembic import op

revision = "0020"
down_revision = "0019"


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN expected_end_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN expected_end_at")
