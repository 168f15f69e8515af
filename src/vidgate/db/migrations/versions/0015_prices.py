"""Per-project price overrides set through the admin API, and the index usage reads.

``price_overrides`` holds one row per project and model (the catalogue card's id): a
multiplier of the list price or a price table of its own (``PriceTable`` as JSON),
never both. The models file's ``projects:`` section holds overrides too; a row here
wins over the file's for the same project and model.

``jobs_tenant_completed_idx``: usage (``GET /v1/usage``) counts a project's completed
jobs by the day they completed.
"""

from alembic import op

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE price_overrides (
            tenant_id text NOT NULL REFERENCES tenants(id),
            model text NOT NULL,
            multiplier numeric(12, 6),
            pricing jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, model),
            CONSTRAINT price_overrides_one CHECK ((multiplier IS NULL) <> (pricing IS NULL))
        );
        CREATE INDEX jobs_tenant_completed_idx ON jobs (tenant_id, completed_at)
            WHERE state = 'completed';
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX jobs_tenant_completed_idx;
        DROP TABLE price_overrides;
    """)
