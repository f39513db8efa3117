"""The mediation role's tables (created by the core's migration 0004, so one Alembic
history serves every role)."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from confserver.storage.models import Base


class GatewayRow(Base):
    __tablename__ = "med_gateways"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    settings: Mapped[str] = mapped_column(Text)  # JSON of GatewaySettings
    created_at: Mapped[float] = mapped_column(Float)


class DialPlanRow(Base):
    __tablename__ = "med_dial_plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))          # global | site | user | gateway
    applies_to: Mapped[str] = mapped_column(String(255), default="")  # site name, for site plans


class RuleRow(Base):
    __tablename__ = "med_rules"
    __table_args__ = (UniqueConstraint("plan_id", "name", name="uq_med_rules_plan_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("med_dial_plans.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(64))
    pattern: Mapped[str] = mapped_column(String(255))
    translation: Mapped[str] = mapped_column(String(255))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)


class PolicyRow(Base):
    __tablename__ = "med_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    usages: Mapped[str] = mapped_column(String(1024))       # ordered, comma-separated
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class AssignmentRow(Base):
    """A user's own dial plan and voice policy (either may be empty: the defaults)."""

    __tablename__ = "med_assignments"

    user_uri: Mapped[str] = mapped_column(String(255), primary_key=True)
    dial_plan: Mapped[str] = mapped_column(String(64), default="")
    voice_policy: Mapped[str] = mapped_column(String(64), default="")


class RouteRow(Base):
    __tablename__ = "med_routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    pattern: Mapped[str] = mapped_column(String(255))
    usages: Mapped[str] = mapped_column(String(1024))
    gateways: Mapped[str] = mapped_column(String(1024))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    alternate_caller_id: Mapped[str] = mapped_column(String(32), default="")
    suppress_caller_id: Mapped[bool] = mapped_column(Boolean, default=False)


class RateRow(Base):
    __tablename__ = "med_rates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    cost: Mapped[float] = mapped_column(Float)
    days: Mapped[str] = mapped_column(String(16), default="")   # "" every day, else "0123456"
    start_minute: Mapped[int] = mapped_column(Integer, default=0)
    end_minute: Mapped[int] = mapped_column(Integer, default=1440)


# the disposition of an answered call's record until the call ends (see b2bua.py):
# written at the answer, its ended_at (the last time its process was seen) moved on
# every RECORD_HEARTBEAT seconds; one that has not moved for STALE_AFTER was cut off
# by its process stopping (a kill, a crash)
IN_PROGRESS = "in progress"
RECORD_HEARTBEAT = 60.0
STALE_AFTER = 3 * RECORD_HEARTBEAT


class MediationCdrRow(Base):
    __tablename__ = "med_cdrs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))         # outbound | inbound
    caller: Mapped[str] = mapped_column(String(255), default="")
    dialed: Mapped[str] = mapped_column(String(64), default="")
    normalized: Mapped[str] = mapped_column(String(64), default="")
    dial_plan: Mapped[str] = mapped_column(String(64), default="")
    rule: Mapped[str] = mapped_column(String(64), default="")
    voice_policy: Mapped[str] = mapped_column(String(64), default="")
    usage: Mapped[str] = mapped_column(String(64), default="")
    route: Mapped[str] = mapped_column(String(64), default="")
    gateway: Mapped[str] = mapped_column(String(64), default="")
    target: Mapped[str] = mapped_column(String(255), default="")  # inbound: where it went
    cost_per_minute: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[str] = mapped_column(String(1024), default="")  # gateway:status, ...
    disposition: Mapped[str] = mapped_column(String(32))
    sip_status: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[float] = mapped_column(Float, index=True)
    answered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float] = mapped_column(Float)
    internal_codec: Mapped[str] = mapped_column(String(16), default="")
    gateway_codec: Mapped[str] = mapped_column(String(16), default="")
    internal_loss: Mapped[float | None] = mapped_column(Float, nullable=True)   # percent
    internal_jitter: Mapped[float | None] = mapped_column(Float, nullable=True)  # ms
    gateway_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    gateway_jitter: Mapped[float | None] = mapped_column(Float, nullable=True)
    internal_mos: Mapped[float | None] = mapped_column(Float, nullable=True)
    gateway_mos: Mapped[float | None] = mapped_column(Float, nullable=True)
    internal_srtp: Mapped[bool] = mapped_column(Boolean, default=False)
    gateway_srtp: Mapped[bool] = mapped_column(Boolean, default=False)
    transferred_to: Mapped[str] = mapped_column(String(255), default="")
    # the call's own key: its record is written when it is answered (disposition
    # "in progress", ended_at the last time its process was seen) and completed later
    record_key: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True,
                                                   index=True)
