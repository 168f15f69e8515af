"""Rate limits: creates per minute (``rpm``) and jobs in flight (``max_concurrent``) per
key and per project (tenant), NULL for no limit; ``limit_admissions``, the creates
that counted against a creates-per-minute limit in the last window.

A create under a limit takes the scope's advisory lock (engine/limits.py), so the
count and the insert that follow are exact across processes. ``limit_admissions``
holds rows only for scopes that have an ``rpm``: one per accepted create, at the
database clock's time under the lock, pruned as the window slides. Jobs in flight are
counted from ``jobs`` on ``jobs_inflight_owner_idx``, which holds active jobs only.
"""

from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.execute("""
        ALTER TABLE tenants ADD COLUMN rpm integer, ADD COLUMN max_concurrent integer;
        ALTER TABLE tenants ADD CONSTRAINT tenants_rpm CHECK (rpm > 0);
        ALTER TABLE tenants ADD CONSTRAINT tenants_max_concurrent CHECK (max_concurrent > 0);
        ALTER TABLE api_keys ADD COLUMN rpm integer, ADD COLUMN max_concurrent integer;
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_rpm CHECK (rpm > 0);
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_max_concurrent
            CHECK (max_concurrent > 0);

        CREATE TABLE limit_admissions (
            scope text NOT NULL,
            at timestamptz NOT NULL
        );
        CREATE INDEX limit_admissions_scope_at_idx ON limit_admissions (scope, at);

        CREATE INDEX jobs_inflight_owner_idx ON jobs (tenant_id, api_key_id)
            WHERE state IN ('queued', 'submitting', 'waiting', 'finalizing');
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX jobs_inflight_owner_idx;
        DROP TABLE limit_admissions;
        ALTER TABLE api_keys DROP COLUMN rpm, DROP COLUMN max_concurrent;
        ALTER TABLE tenants DROP COLUMN rpm, DROP COLUMN max_concurrent;
    """)
