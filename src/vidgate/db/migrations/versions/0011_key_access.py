"""Keys limited to some models (``models``: card ids; NULL for every model) and keys that
expire (``expires_at``; NULL for never). An expired key is refused like a revoked one.

Chained after the last migration merged before it (0013), as the merger chains them."""

from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.execute("""
        ALTER TABLE api_keys ADD COLUMN models text[];
        ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
        CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, id);
    """)


def downgrade() -> None:
    op.execute("""
        DROP INDEX api_keys_tenant_idx;
        ALTER TABLE api_keys DROP COLUMN expires_at;
        ALTER TABLE api_keys DROP COLUMN models;
    """)
