"""Meetings: conference IDs, access types, passcodes and invitees.

A meeting has two addresses: a conference ID of digits that phone callers
key in at the attendant, and a conference SIP URI that SIP clients dial.
Access follows Office Communications Server's three types:

- ``open``: any signed-in (digest-authenticated) user of the organization;
- ``closed``: only the organizer and the invited presenters and attendees;
- ``anonymous``: anyone with the conference ID and the passcode.
"""

from __future__ import annotations

import re
import secrets as random_source
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .database import Database
from .models import Meeting, MeetingMember, User
from .secrets import hash_secret, verify_secret
from .users import UserError, normalize_aor

ACCESS_TYPES = ("open", "closed", "anonymous")
ACCESS_ALIASES = {
    "open": "open", "open-authenticated": "open",
    "closed": "closed", "closed-authenticated": "closed",
    "anonymous": "anonymous", "anonymous-allowed": "anonymous",
}
ROLES = ("organizer", "presenter", "attendee")
CONFERENCE_ID_RE = re.compile(r"[0-9]{4,16}\Z")
PASSCODE_RE = re.compile(r"[0-9]{4,24}\Z")
GENERATED_ID_DIGITS = 7
EXPIRY_AFTER_END = 14 * 86400.0  # scheduled meetings stay joinable for 14 days after their end
CONFERENCE_USER_PREFIX = "conf-"


class MeetingError(ValueError):
    """Bad input to a meeting operation; the message says which field and why."""


def conference_uri(domain: str, conference_id: str) -> str:
    """The SIP URI a client dials to join the meeting."""
    return f"sip:{CONFERENCE_USER_PREFIX}{conference_id}@{domain}"


def conference_id_of(user: str) -> str | None:
    """The conference ID a Request-URI user part names, or None if it names none."""
    if not user.startswith(CONFERENCE_USER_PREFIX):
        return None
    candidate = user[len(CONFERENCE_USER_PREFIX):]
    return candidate if CONFERENCE_ID_RE.match(candidate) else None


@dataclass(frozen=True, slots=True)
class MeetingRecord:
    conference_id: str
    organizer: str
    subject: str
    kind: str
    access: str
    has_passcode: bool
    starts_at: float | None
    ends_at: float | None
    expires_at: float | None
    state: str
    created_at: float
    presenters: tuple[str, ...] = field(default=())
    attendees: tuple[str, ...] = field(default=())

    def as_dict(self, domain: str) -> dict[str, object]:
        return {"conference_id": self.conference_id,
                "conference_uri": conference_uri(domain, self.conference_id),
                "organizer": self.organizer, "subject": self.subject, "kind": self.kind,
                "access": self.access, "passcode": self.has_passcode,
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "expires_at": self.expires_at, "state": self.state,
                "presenters": list(self.presenters), "attendees": list(self.attendees)}


def parse_access(text: str) -> str:
    access = ACCESS_ALIASES.get(text.strip().lower())
    if access is None:
        raise MeetingError(f"access {text!r} is not one of {', '.join(ACCESS_TYPES)}")
    return access


def _uris(field_name: str, values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        try:
            aor = normalize_aor(value).aor()
        except UserError as exc:
            raise MeetingError(f"{field_name}: {exc}") from exc
        if aor not in out:
            out.append(aor)
    return out


def _record(meeting: Meeting, members: Iterable[MeetingMember]) -> MeetingRecord:
    listed = sorted(members, key=lambda m: m.sip_uri)
    return MeetingRecord(
        meeting.conference_id, meeting.organizer, meeting.subject, meeting.kind, meeting.access,
        meeting.passcode_hash is not None, meeting.starts_at, meeting.ends_at,
        meeting.expires_at, meeting.state, meeting.created_at,
        tuple(m.sip_uri for m in listed if m.role == "presenter"),
        tuple(m.sip_uri for m in listed if m.role == "attendee"))


class MeetingDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, organizer: str, access: str, *, now: float, passcode: str | None = None,
               conference_id: str | None = None, subject: str = "",
               presenters: Iterable[str] = (), attendees: Iterable[str] = (),
               starts_at: float | None = None, ends_at: float | None = None,
               kind: str = "scheduled") -> MeetingRecord:
        access = parse_access(access)
        organizer_aor = _uris("organizer", [organizer])[0]
        if kind not in ("scheduled", "adhoc"):
            raise MeetingError(f"kind {kind!r} is not scheduled or adhoc")
        if passcode is not None and not PASSCODE_RE.match(passcode):
            raise MeetingError("passcode must be 4 to 24 digits (callers key it in on a phone)")
        if access == "anonymous" and passcode is None:
            raise MeetingError("an anonymous meeting needs a passcode (--passcode)")
        if conference_id is not None and not CONFERENCE_ID_RE.match(conference_id):
            raise MeetingError(f"conference ID {conference_id!r} must be 4 to 16 digits")
        if len(subject) > 255:
            raise MeetingError("subject is longer than 255 characters")
        if starts_at is not None and ends_at is not None and ends_at <= starts_at:
            raise MeetingError("the meeting must end after it starts")
        presenter_list = [u for u in _uris("presenter", presenters) if u != organizer_aor]
        attendee_list = [u for u in _uris("attendee", attendees) if u != organizer_aor]
        both = set(presenter_list) & set(attendee_list)
        if both:
            raise MeetingError(f"{sorted(both)[0]} is listed as both presenter and attendee")
        with self._db.session() as session:
            if session.scalar(select(User).where(User.sip_uri == organizer_aor)) is None:
                raise MeetingError(f"organizer {organizer_aor} is not a Switchboard user")
            if conference_id is None:
                conference_id = self._free_id(session)
            elif session.scalar(select(Meeting).where(Meeting.conference_id == conference_id)):
                raise MeetingError(f"conference ID {conference_id} is already in use")
            meeting = Meeting(
                conference_id=conference_id, organizer=organizer_aor, subject=subject,
                kind=kind, access=access,
                passcode_hash=hash_secret(passcode) if passcode is not None else None,
                starts_at=starts_at, ends_at=ends_at,
                expires_at=ends_at + EXPIRY_AFTER_END if ends_at is not None else None,
                state="active", created_at=now)
            session.add(meeting)
            try:
                session.flush()
                members = [MeetingMember(meeting_id=meeting.id, sip_uri=u, role="presenter")
                           for u in presenter_list]
                members += [MeetingMember(meeting_id=meeting.id, sip_uri=u, role="attendee")
                            for u in attendee_list]
                session.add_all(members)
                session.commit()
            except IntegrityError as exc:  # another process took the same ID meanwhile
                session.rollback()
                raise MeetingError(f"conference ID {conference_id} is already in use") from exc
            return _record(meeting, members)

    @staticmethod
    def _free_id(session: Session) -> str:
        for _ in range(100):
            candidate = str(random_source.randbelow(9 * 10 ** (GENERATED_ID_DIGITS - 1))
                            + 10 ** (GENERATED_ID_DIGITS - 1))
            if session.scalar(select(Meeting.id).where(Meeting.conference_id == candidate)) is None:
                return candidate
        raise MeetingError("no free conference ID found; pass one with --id")

    def get(self, conference_id: str) -> MeetingRecord | None:
        with self._db.session() as session:
            meeting = session.scalar(select(Meeting).where(Meeting.conference_id == conference_id))
            if meeting is None:
                return None
            members = session.scalars(select(MeetingMember)
                                      .where(MeetingMember.meeting_id == meeting.id)).all()
            return _record(meeting, members)

    def require(self, conference_id: str) -> MeetingRecord:
        if not CONFERENCE_ID_RE.match(conference_id):
            raise MeetingError(f"conference ID {conference_id!r} must be 4 to 16 digits")
        record = self.get(conference_id)
        if record is None:
            raise MeetingError(f"no meeting {conference_id}")
        return record

    def list(self, include_ended: bool = False) -> list[MeetingRecord]:
        with self._db.session() as session:
            query = select(Meeting).order_by(Meeting.created_at, Meeting.conference_id)
            if not include_ended:
                query = query.where(Meeting.state == "active")
            meetings = session.scalars(query).all()
            members = session.scalars(select(MeetingMember).where(
                MeetingMember.meeting_id.in_([m.id for m in meetings]))).all() if meetings else []
            by_meeting: dict[int, list[MeetingMember]] = {}
            for member in members:
                by_meeting.setdefault(member.meeting_id, []).append(member)
            return [_record(m, by_meeting.get(m.id, [])) for m in meetings]

    def end(self, conference_id: str, now: float) -> MeetingRecord:
        self.require(conference_id)
        with self._db.session() as session:
            meeting = session.scalar(select(Meeting).where(Meeting.conference_id == conference_id))
            assert meeting is not None
            if meeting.state == "ended":
                raise MeetingError(f"meeting {conference_id} has already ended")
            meeting.state = "ended"
            meeting.ended_at = now
            session.commit()
        return self.require(conference_id)

    def check_passcode(self, conference_id: str, passcode: str) -> bool:
        with self._db.session() as session:
            stored = session.scalar(select(Meeting.passcode_hash)
                                    .where(Meeting.conference_id == conference_id))
        return stored is not None and verify_secret(passcode, stored)

    def purge_expired(self, now: float) -> int:
        """Delete meetings past their expiry (their invitees go with them)."""
        with self._db.session() as session:
            expired = session.scalars(select(Meeting.id).where(Meeting.expires_at.is_not(None),
                                                               Meeting.expires_at < now)).all()
            if not expired:
                return 0
            session.execute(delete(MeetingMember).where(MeetingMember.meeting_id.in_(expired)))
            session.execute(delete(Meeting).where(Meeting.id.in_(expired)))
            session.commit()
            return len(expired)
