"""Per-tenant webhook signing secrets ("whsec_...", made on first use)."""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN webhook_secret text")


def downgrade() -> None:
    op.execute("ALTER TABLE tenants DROP COLUMN webhook_secret")
