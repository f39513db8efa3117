"""mediation call records say whether each leg's media was SRTP

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("med_cdrs") as batch:
        batch.add_column(sa.Column("internal_srtp", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("gateway_srtp", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("med_cdrs") as batch:
        batch.drop_column("gateway_srtp")
        batch.drop_column("internal_srtp")
