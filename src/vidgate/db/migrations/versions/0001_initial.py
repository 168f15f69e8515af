"""Initial schema: procrastinate's job tables and vidgate's tenants, keys, jobs, outputs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, *, nullable: bool = True, default: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade() -> None:
    # procrastinate ships its schema as one SQL script; later versions ship migrations
    # that will get revisions of their own here.
    op.execute(SchemaManager.get_schema())

    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        _ts("created_at", nullable=False, default=True),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("prefix", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
        _ts("created_at", nullable=False, default=True),
        _ts("revoked_at"),
        sa.CheckConstraint("mode IN ('test', 'live')", name="api_keys_mode"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("api_key_id", sa.Text, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("spec", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_code", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("upstream_model", sa.Text),
        sa.Column("upstream_id", sa.Text),
        sa.Column("estimated_cost", sa.Numeric(12, 6), nullable=False),
        sa.Column("cost", sa.Numeric(12, 6)),
        sa.Column("step_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("poll_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("source_video_id", sa.Text),
        sa.Column("webhook_url", sa.Text),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        _ts("submitted_at"),
        _ts("completed_at"),
        _ts("deleted_at"),
        sa.CheckConstraint(
            "state IN ('queued', 'submitting', 'waiting', 'finalizing',"
            " 'completed', 'failed', 'cancelled')",
            name="jobs_state",
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="jobs_progress"),
    )
    op.create_index(
        "jobs_tenant_id_idx",
        "jobs",
        ["tenant_id", "id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "jobs_active_idx",
        "jobs",
        ["state"],
        postgresql_where=sa.text("state IN ('queued', 'submitting', 'waiting', 'finalizing')"),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        _ts("created_at", nullable=False, default=True),
    )
    op.create_table(
        "job_outputs",
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("index", sa.Integer, primary_key=True),
        sa.Column("video_sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("thumbnail_sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("spritesheet_sha256", sa.Text, sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("fps", sa.Float, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        _ts("created_at", nullable=False, default=True),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text, sa.ForeignKey("jobs.id"), nullable=False),
        _ts("created_at", nullable=False, default=True),
    )
    op.create_table(
        "instance_secrets",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "sandbox_tasks",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
        sa.Column("request", JSONB, nullable=False),
        sa.Column("latency_s", sa.Float, nullable=False),
        sa.Column("fail_code", sa.Text),
        sa.Column("submit_calls", sa.Integer, nullable=False, server_default="1"),
        _ts("created_at", nullable=False, default=True),
        _ts("cancelled_at"),
    )


def downgrade() -> None:
    for table in (
        "sandbox_tasks",
        "instance_secrets",
        "idempotency_keys",
        "job_outputs",
        "blobs",
        "jobs",
        "api_keys",
        "tenants",
    ):
        op.drop_table(table)
