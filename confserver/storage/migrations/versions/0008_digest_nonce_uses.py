"""digest nonce-counts shared by every process: replayed responses are refused

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_nonce_uses",
        sa.Column("nonce", sa.String(96), nullable=False),
        sa.Column("cnonce", sa.String(128), nullable=False),
        sa.Column("nc", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", "cnonce", name="pk_digest_nonce_uses"),
    )
    op.create_index("ix_digest_nonce_uses_expires_at", "digest_nonce_uses", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_digest_nonce_uses_expires_at", "digest_nonce_uses")
    op.drop_table("digest_nonce_uses")
