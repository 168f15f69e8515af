"""Indexes for the worker's housekeeping (engine/housekeeping.py), so that each of its
bounded deletes finds its oldest rows without reading the rest: idempotency keys and
sandbox tasks by age, finished webhook deliveries by their last change, finished
procrastinate steps in id order (procrastinate's own indexes cover only ``todo`` and
``doing`` steps)."""

from alembic import op

revision = "0018"
down_revision = "0017"


def upgrade() -> None:
    op.execute("CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at)")
    op.execute("CREATE INDEX sandbox_tasks_created_idx ON sandbox_tasks (created_at)")
    op.execute(
        "CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (updated_at)"
        " WHERE status <> 'pending'"
    )
    op.execute(
        "CREATE INDEX vidgate_procrastinate_jobs_finished_idx ON procrastinate_jobs (id)"
        " WHERE status IN ('succeeded', 'failed', 'cancelled', 'aborted')"
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX vidgate_procrastinate_jobs_finished_idx, webhook_deliveries_finished_idx,"
        " sandbox_tasks_created_idx, idempotency_keys_created_idx"
    )
