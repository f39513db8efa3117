"""mediation call records say where a transfer sent the phone party

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("med_cdrs") as batch:
        batch.add_column(sa.Column("transferred_to", sa.String(255), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("med_cdrs") as batch:
        batch.drop_column("transferred_to")
