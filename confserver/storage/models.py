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
    extension: Mapped[str | None] = mapped_column(String(16), unique=True, nullable=True)
    # dial-in PIN: a salted scrypt hash, failures since the last success, lockout
    pin_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pin_set_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
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


class AccessNumber(Base):
    """A dial-in access number: what phone callers dial to reach the attendant."""

    __tablename__ = "access_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)      # E.164
    sip_uri: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    region: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(8))                  # primary
    secondary_languages: Mapped[str] = mapped_column(String(64), default="")  # comma list
    created_at: Mapped[float] = mapped_column(Float)


class Setting(Base):
    """Server-wide settings an admin changes at run time (the PIN policy), as JSON."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


class DialInRecord(Base):
    """A call detail record of one call to the conferencing attendant."""

    __tablename__ = "dialin_cdrs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255))
    access_number: Mapped[str] = mapped_column(String(32), index=True)
    caller_id: Mapped[str] = mapped_column(String(255), default="")
    language: Mapped[str] = mapped_column(String(8))
    conference_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    identity: Mapped[str | None] = mapped_column(String(255), nullable=True)  # leader by PIN
    outcome: Mapped[str] = mapped_column(String(32))
    answered_at: Mapped[float] = mapped_column(Float, index=True)
    joined_after: Mapped[float | None] = mapped_column(Float, nullable=True)  # s answer → join
    ended_at: Mapped[float] = mapped_column(Float)
    # written when the caller joins; the end of the call completes the row by this key
    record_key: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)


class DigestNonceUse(Base):
    """The highest nonce-count a client used with one nonce and cnonce (replays of a
    digest response are refused by every process of a pool); kept until the nonce
    expires."""

    __tablename__ = "digest_nonce_uses"

    nonce: Mapped[str] = mapped_column(String(96), primary_key=True)
    cnonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    nc: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class PinLockout(Base):
    """Wrong PINs for one user from one origin (a caller's number, or the address of a
    SIP caller): a lockout locks that user's PIN for that origin only, so a stranger
    guessing cannot lock a leader out of their own phone."""

    __tablename__ = "pin_lockouts"

    aor: Mapped[str] = mapped_column(String(255), primary_key=True)
    origin: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, index=True)
