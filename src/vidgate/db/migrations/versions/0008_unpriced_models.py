"""A job's ``estimated_cost`` may be unknown: a model without a list price (a card
in the operator's models file may leave ``pricing`` out) has no estimate, and NULL says
so where 0 would say "free"."""

from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ALTER COLUMN estimated_cost DROP NOT NULL")


def downgrade() -> None:
    op.execute("""
        UPDATE jobs SET estimated_cost = 0 WHERE estimated_cost IS NULL;
        ALTER TABLE jobs ALTER COLUMN estimated_cost SET NOT NULL;
    """)
