"""Budgets: a cap in USD on what a project, or one of its keys, may spend in a UTC
calendar day, a UTC calendar month, or in all (``total``).

A project or key has at most one budget per period (the two partial unique indexes); a
create is refused when its reservation would take the ledger's sum for any budget that
applies past that budget's ``usd`` (engine/budgets.py). The row is also the lock that
orders concurrent creates against it: each create locks the budgets that apply to it,
then sums the ledger, then reserves, in the transaction that inserts the job.
"""

from alembic import op

revision = "0013"
# After main's head (0010 -> 0014 -> 0015 -> 0012 -> 0016), so that the chain has one head.
down_revision = "0012"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE budgets (
            id text PRIMARY KEY,
            tenant_id text NOT NULL REFERENCES tenants(id),
            api_key_id text REFERENCES api_keys(id),
            period text NOT NULL,
            usd numeric(12,6) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT budgets_period CHECK (period IN ('day', 'month', 'total')),
            CONSTRAINT budgets_usd CHECK (usd >= 0)
        );
        CREATE UNIQUE INDEX budgets_project_period_idx ON budgets (tenant_id, period)
            WHERE api_key_id IS NULL;
        CREATE UNIQUE INDEX budgets_key_period_idx ON budgets (api_key_id, period)
            WHERE api_key_id IS NOT NULL;
    """)


def downgrade() -> None:
    op.execute("DROP TABLE budgets")
