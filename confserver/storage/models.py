"""SQLAlchemy 2 models. Schema changes go through Alembic migrations only."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A Switchboard user. Only digest HA1 values are stored, never a password."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sip_uri: Mapped[str] = mapped_column(String(255), unique=True)
    auth_username: Mapped[str] = mapped_column(String(255), index=True)
    realm: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255), default="")
    phone: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Binding(Base):
    """One registered contact of an address-of-record (RFC 3261 §10)."""

    __tablename__ = "bindings"
    __table_args__ = (UniqueConstraint("aor", "contact", name="uq_bindings_aor_contact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    aor: Mapped[str] = mapped_column(String(255), index=True)
    contact: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    call_id: Mapped[str] = mapped_column(String(255))
    cseq: Mapped[int] = mapped_column(Integer)
    q: Mapped[float | None] = mapped_column(Float, nullable=True)
    transport: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[float] = mapped_column(Float)


class Meeting(Base):
    """A scheduled or ad-hoc meeting the focus hosts (its roster lives in memory)."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conference_id: Mapped[str] = mapped_column(String(16), unique=True)  # digits, for phones
    organizer: Mapped[str] = mapped_column(String(255), index=True)
    subject: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(16))     # scheduled | adhoc
    access: Mapped[str] = mapped_column(String(16))   # open | closed | anonymous
    passcode_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    starts_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ends_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    state: Mapped[str] = mapped_column(String(16))    # active | ended
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class MeetingMember(Base):
    """Someone invited to a meeting, with the role they join in."""

    __tablename__ = "meeting_members"
    __table_args__ = (UniqueConstraint("meeting_id", "sip_uri",
                                       name="uq_meeting_members_meeting_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"),
                                            index=True)
    sip_uri: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))     # presenter | attendee
