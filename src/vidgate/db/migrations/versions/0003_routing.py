"""Routing state: per-deployment circuit breakers, and the deployments a job has tried.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_health",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("open_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("unhealthy", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.add_column(
        "jobs",
        sa.Column("tried_providers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.create_index(
        "jobs_provider_inflight_idx",
        "jobs",
        ["provider"],
        postgresql_where=sa.text("state IN ('submitting', 'waiting')"),
    )


def downgrade() -> None:
    op.drop_index("jobs_provider_inflight_idx", "jobs")
    op.drop_column("jobs", "tried_providers")
    op.drop_table("deployment_health")
