"""How often a job's upstream task failed transiently and was sent to another
deployment (engine/failover.py): at most once, so the count lives on the job."""

from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN task_retries integer NOT NULL DEFAULT 0")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN task_retries")
