"""dial-in: access numbers, PINs and extensions, settings, dial-in call records

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("extension", sa.String(16), nullable=True))
        batch.add_column(sa.Column("pin_hash", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pin_set_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("pin_failures", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("pin_locked_until", sa.Float(), nullable=True))
        batch.create_unique_constraint("uq_users_extension", ["extension"])
    op.create_table(
        "access_numbers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("sip_uri", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("secondary_languages", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("number", name="uq_access_numbers_number"),
        sa.UniqueConstraint("sip_uri", name="uq_access_numbers_sip_uri"),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "dialin_cdrs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("access_number", sa.String(32), nullable=False),
        sa.Column("caller_id", sa.String(255), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("conference_id", sa.String(16), nullable=True),
        sa.Column("identity", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=False),
        sa.Column("joined_after", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_dialin_cdrs_access_number", "dialin_cdrs", ["access_number"])
    op.create_index("ix_dialin_cdrs_answered_at", "dialin_cdrs", ["answered_at"])


def downgrade() -> None:
    op.drop_table("dialin_cdrs")
    op.drop_table("settings")
    op.drop_table("access_numbers")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_extension", type_="unique")
        for column in ("pin_locked_until", "pin_failures", "pin_set_at", "pin_hash",
                       "extension"):
            batch.drop_column(column)
