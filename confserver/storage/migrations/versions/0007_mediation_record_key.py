"""mediation call records are written when a call is answered and kept up to date

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("med_cdrs") as batch:
        batch.add_column(sa.Column("record_key", sa.String(36), nullable=True))
        batch.create_index("ix_med_cdrs_record_key", ["record_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("med_cdrs") as batch:
        batch.drop_index("ix_med_cdrs_record_key")
        batch.drop_column("record_key")
