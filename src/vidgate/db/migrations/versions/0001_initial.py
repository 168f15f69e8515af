"""Initial schema: procrastinate 3.10.0's queue tables and vidgate's tenants, keys, jobs,
outputs. Plain SQL, what a DBA reads; tests/integration/test_schema.py checks that the
migrations leave the tables ``db/schema.py`` describes."""

from alembic import op

from vidgate.db.migrations.procrastinate import schema_sql

revision = "0001"
down_revision = None

TABLES = """
CREATE TABLE tenants (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id),
    name text NOT NULL,
    prefix text NOT NULL,
    secret_hash bytea NOT NULL UNIQUE,
    mode text NOT NULL,
    is_admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_mode CHECK (mode IN ('test', 'live'))
);
CREATE TABLE jobs (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id),
    api_key_id text NOT NULL REFERENCES api_keys (id),
    mode text NOT NULL,
    model text NOT NULL,
    kind text NOT NULL,
    spec jsonb NOT NULL,
    state text NOT NULL,
    progress integer NOT NULL DEFAULT 0,
    error_code text,
    error_message text,
    provider text NOT NULL,
    upstream_model text,
    upstream_id text,
    estimated_cost numeric(12, 6) NOT NULL,
    cost numeric(12, 6),
    step_attempts integer NOT NULL DEFAULT 0,
    poll_count integer NOT NULL DEFAULT 0,
    source_video_id text,
    webhook_url text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    submitted_at timestamptz,
    completed_at timestamptz,
    deleted_at timestamptz,
    CONSTRAINT jobs_state CHECK (state IN (
        'queued', 'submitting', 'waiting', 'finalizing', 'completed', 'failed', 'cancelled'
    )),
    CONSTRAINT jobs_progress CHECK (progress BETWEEN 0 AND 100)
);
CREATE INDEX jobs_tenant_id_idx ON jobs (tenant_id, id) WHERE deleted_at IS NULL;
CREATE INDEX jobs_active_idx ON jobs (state)
    WHERE state IN ('queued', 'submitting', 'waiting', 'finalizing');
CREATE TABLE blobs (
    sha256 text PRIMARY KEY,
    size bigint NOT NULL,
    content_type text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE job_outputs (
    job_id text REFERENCES jobs (id),
    index integer,
    video_sha256 text NOT NULL REFERENCES blobs (sha256),
    thumbnail_sha256 text NOT NULL REFERENCES blobs (sha256),
    spritesheet_sha256 text NOT NULL REFERENCES blobs (sha256),
    width integer NOT NULL,
    height integer NOT NULL,
    fps double precision NOT NULL,
    duration double precision NOT NULL,
    size_bytes bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, index)
);
CREATE TABLE idempotency_keys (
    tenant_id text REFERENCES tenants (id),
    key text,
    request_hash text NOT NULL,
    job_id text NOT NULL REFERENCES jobs (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE TABLE instance_secrets (
    name text PRIMARY KEY,
    value bytea NOT NULL
);
CREATE TABLE sandbox_tasks (
    id text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE,
    request jsonb NOT NULL,
    latency_s double precision NOT NULL,
    fail_code text,
    submit_calls integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz
);
"""


def upgrade() -> None:
    op.execute(schema_sql("3.10.0"))
    op.execute(TABLES)


def downgrade() -> None:
    op.execute(
        "DROP TABLE sandbox_tasks, instance_secrets, idempotency_keys, job_outputs, blobs,"
        " jobs, api_keys, tenants"
    )
