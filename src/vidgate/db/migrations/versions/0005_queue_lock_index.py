"""An index for procrastinate's lock check, so that fetching a step stays cheap with
thousands of steps queued.

``procrastinate_fetch_job_v2`` rejects a candidate whose ``lock`` is held by another
``todo`` or ``doing`` step. Every vidgate step has a lock (``job:<id>``) and
procrastinate's only index with ``lock`` in it is ``(id, lock)``, so each check walked
that whole index: with 10,000 queued submissions one fetch took ~600 ms and the
worker submitted a few jobs per second (procrastinate issues #393, #1242). With this
index a check is one lookup. docs/architecture.md, "Queue statistics", has the rest."""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        "CREATE INDEX vidgate_procrastinate_jobs_lock_idx ON procrastinate_jobs (lock)"
        " WHERE status IN ('todo', 'doing')"
    )


def downgrade() -> None:
    op.execute("DROP INDEX vidgate_procrastinate_jobs_lock_idx")
