"""meetings and their invitees

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meetings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("conference_id", sa.String(16), nullable=False),
        sa.Column("organizer", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("passcode_hash", sa.String(255), nullable=True),
        sa.Column("starts_at", sa.Float(), nullable=True),
        sa.Column("ends_at", sa.Float(), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("conference_id", name="uq_meetings_conference_id"),
    )
    op.create_index("ix_meetings_organizer", "meetings", ["organizer"])
    op.create_index("ix_meetings_expires_at", "meetings", ["expires_at"])
    op.create_table(
        "meeting_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("meeting_id", sa.Integer(),
                  sa.ForeignKey("meetings.id", ondelete="CASCADE",
                                name="fk_meeting_members_meeting_id_meetings"),
                  nullable=False),
        sa.Column("sip_uri", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.UniqueConstraint("meeting_id", "sip_uri", name="uq_meeting_members_meeting_id"),
    )
    op.create_index("ix_meeting_members_meeting_id", "meeting_members", ["meeting_id"])


def downgrade() -> None:
    op.drop_table("meeting_members")
    op.drop_table("meetings")
