"""dial-in records are written when a caller joins and completed when they leave

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dialin_cdrs") as batch:
        batch.add_column(sa.Column("record_key", sa.String(36), nullable=True))
        batch.create_index("ix_dialin_cdrs_record_key", ["record_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("dialin_cdrs") as batch:
        batch.drop_index("ix_dialin_cdrs_record_key")
        batch.drop_column("record_key")
