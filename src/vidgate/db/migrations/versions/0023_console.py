"""The web console's reads (issue 15): a video's webhook deliveries by job
(``GET /v1/videos/{id}/details``; without it, each read scans every delivery of the
instance), which also serves the cascade when a job row is removed.
"""

from alembic import op

revision = "0023"
down_revision = "0022"


def upgrade() -> None:
    op.execute("CREATE INDEX webhook_deliveries_job_idx ON webhook_deliveries (job_id)")


def downgrade() -> None:
    op.execute("DROP INDEX webhook_deliveries_job_idx")
