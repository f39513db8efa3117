"""PIN lockouts per user and origin: a stranger's wrong PINs lock only their own tries

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pin_lockouts",
        sa.Column("aor", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("aor", "origin", name="pk_pin_lockouts"),
    )
    op.create_index("ix_pin_lockouts_updated_at", "pin_lockouts", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_pin_lockouts_updated_at", "pin_lockouts")
    op.drop_table("pin_lockouts")
