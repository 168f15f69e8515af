"""Per-tenant webhook signing secrets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("webhook_secret", sa.Text))


def downgrade() -> None:
    op.drop_column("tenants", "webhook_secret")
