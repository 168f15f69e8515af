"""Previews after completion (issue 14, finalize under a burst): a job is completed once
its video is stored and probed, and its thumbnail and spritesheet are made afterwards,
by a low-priority step or on the first request for one. Until then they are NULL.
"""

from alembic import op

revision = "0019"
down_revision = "0018"


def upgrade() -> None:
    op.execute("""
        ALTER TABLE job_outputs
            ALTER COLUMN thumbnail_sha256 DROP NOT NULL,
            ALTER COLUMN spritesheet_sha256 DROP NOT NULL
    """)


def downgrade() -> None:
    # Fails while an output still waits for its previews (none are dropped to make room).
    op.execute("""
        ALTER TABLE job_outputs
            ALTER COLUMN thumbnail_sha256 SET NOT NULL,
            ALTER COLUMN spritesheet_sha256 SET NOT NULL
    """)
