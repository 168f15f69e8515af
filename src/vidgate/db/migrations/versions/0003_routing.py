"""Routing state: per-deployment circuit breakers, and the deployments a job has tried."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE deployment_health (
            name text PRIMARY KEY,
            consecutive_failures integer NOT NULL DEFAULT 0,
            open_until timestamptz,
            last_error text,
            unhealthy boolean NOT NULL DEFAULT false,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE jobs ADD COLUMN tried_providers jsonb NOT NULL DEFAULT '[]'::jsonb;
        CREATE INDEX jobs_provider_inflight_idx ON jobs (provider)
            WHERE state IN ('submitting', 'waiting');
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX jobs_provider_inflight_idx;
        ALTER TABLE jobs DROP COLUMN tried_providers;
        DROP TABLE deployment_health;
    """)
