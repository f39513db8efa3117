"""mediation: gateways, dial plans and rules, voice policies, routes, rates, CDRs

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "med_gateways",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("name", name="uq_med_gateways_name"),
    )
    op.create_table(
        "med_dial_plans",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("applies_to", sa.String(255), nullable=False, server_default=""),
        sa.UniqueConstraint("name", name="uq_med_dial_plans_name"),
    )
    op.create_table(
        "med_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("plan_id", sa.Integer(),
                  sa.ForeignKey("med_dial_plans.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("pattern", sa.String(255), nullable=False),
        sa.Column("translation", sa.String(255), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("internal", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("plan_id", "name", name="uq_med_rules_plan_name"),
    )
    op.create_index("ix_med_rules_plan_id", "med_rules", ["plan_id"])
    op.create_table(
        "med_policies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("usages", sa.String(1024), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("name", name="uq_med_policies_name"),
    )
    op.create_table(
        "med_assignments",
        sa.Column("user_uri", sa.String(255), primary_key=True),
        sa.Column("dial_plan", sa.String(64), nullable=False, server_default=""),
        sa.Column("voice_policy", sa.String(64), nullable=False, server_default=""),
    )
    op.create_table(
        "med_routes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("pattern", sa.String(255), nullable=False),
        sa.Column("usages", sa.String(1024), nullable=False),
        sa.Column("gateways", sa.String(1024), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("alternate_caller_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("suppress_caller_id", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.UniqueConstraint("name", name="uq_med_routes_name"),
    )
    op.create_table(
        "med_rates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("days", sa.String(16), nullable=False, server_default=""),
        sa.Column("start_minute", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("end_minute", sa.Integer(), nullable=False, server_default="1440"),
    )
    op.create_index("ix_med_rates_gateway", "med_rates", ["gateway"])
    op.create_table(
        "med_cdrs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("caller", sa.String(255), nullable=False, server_default=""),
        sa.Column("dialed", sa.String(64), nullable=False, server_default=""),
        sa.Column("normalized", sa.String(64), nullable=False, server_default=""),
        sa.Column("dial_plan", sa.String(64), nullable=False, server_default=""),
        sa.Column("rule", sa.String(64), nullable=False, server_default=""),
        sa.Column("voice_policy", sa.String(64), nullable=False, server_default=""),
        sa.Column("usage", sa.String(64), nullable=False, server_default=""),
        sa.Column("route", sa.String(64), nullable=False, server_default=""),
        sa.Column("gateway", sa.String(64), nullable=False, server_default=""),
        sa.Column("target", sa.String(255), nullable=False, server_default=""),
        sa.Column("cost_per_minute", sa.Float(), nullable=True),
        sa.Column("attempts", sa.String(1024), nullable=False, server_default=""),
        sa.Column("disposition", sa.String(32), nullable=False),
        sa.Column("sip_status", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("internal_codec", sa.String(16), nullable=False, server_default=""),
        sa.Column("gateway_codec", sa.String(16), nullable=False, server_default=""),
        sa.Column("internal_loss", sa.Float(), nullable=True),
        sa.Column("internal_jitter", sa.Float(), nullable=True),
        sa.Column("gateway_loss", sa.Float(), nullable=True),
        sa.Column("gateway_jitter", sa.Float(), nullable=True),
        sa.Column("internal_mos", sa.Float(), nullable=True),
        sa.Column("gateway_mos", sa.Float(), nullable=True),
    )
    op.create_index("ix_med_cdrs_started_at", "med_cdrs", ["started_at"])


def downgrade() -> None:
    for table in ("med_cdrs", "med_rates", "med_routes", "med_assignments", "med_policies",
                  "med_rules", "med_dial_plans", "med_gateways"):
        op.drop_table(table)
