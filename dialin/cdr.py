"""Call detail records of the attendant: one row per dial-in call."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from confserver.storage.database import Database
from confserver.storage.models import DialInRecord
from confserver.text import clean_text

from .flow import CallRecord

RECORD_DELAY = 0.0  # seconds a record waits to be written with others (the next turn)
RECORD_RETRY = 5.0  # seconds before writing again after the database refused
MAX_QUEUED_RECORDS = 100_000  # beyond this the oldest unwritten go


@dataclass(frozen=True, slots=True)
class DialInCdr:
    """One dial-in call's record."""

    call_id: str
    access_number: str
    caller_id: str
    language: str
    conference_id: str | None
    identity: str | None
    outcome: str
    answered_at: float
    joined_after: float | None
    ended_at: float
    record_key: str | None = None  # a joined caller's: the end of the call completes it

    @classmethod
    def of_call(cls, call_id: str, access_number: str, caller_id: str, record: CallRecord,
                ended_at: float, record_key: str | None = None) -> DialInCdr:
        return cls(call_id, access_number, caller_id, record.language, record.conference_id,
                   record.identity, record.outcome or "hung-up", record.answered_at,
                   record.joined_after, ended_at, record_key)

    def as_dict(self) -> dict[str, object]:
        return {"call_id": self.call_id, "access_number": self.access_number,
                "caller_id": self.caller_id, "language": self.language,
                "conference_id": self.conference_id, "identity": self.identity,
                "outcome": self.outcome, "answered_at": self.answered_at,
                "joined_after": self.joined_after, "ended_at": self.ended_at}


@dataclass(frozen=True, slots=True)
class DialInEnd:
    """A joined caller's call ended: their record (written at the join) says when."""

    record_key: str
    ended_at: float


class DialInCdrStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def write_all(self, records: list[DialInCdr | DialInEnd]) -> None:
        """Store ``records`` in one transaction, in order (an end after its record)."""
        with self._db.session() as session:
            for r in records:
                if isinstance(r, DialInEnd):
                    session.execute(update(DialInRecord)
                                    .where(DialInRecord.record_key == r.record_key)
                                    .values(ended_at=r.ended_at))
                    continue
                session.add(DialInRecord(
                    call_id=clean_text(r.call_id),
                    access_number=clean_text(r.access_number, 32),
                    caller_id=clean_text(r.caller_id), language=r.language,
                    conference_id=r.conference_id, identity=r.identity, outcome=r.outcome,
                    answered_at=r.answered_at, joined_after=r.joined_after,
                    ended_at=r.ended_at, record_key=r.record_key))
                session.flush()  # before an end of the same batch looks for it
            session.commit()

    def recent(self, limit: int = 50, access_number: str | None = None) -> list[DialInCdr]:
        with self._db.session() as session:
            query = select(DialInRecord).order_by(DialInRecord.answered_at.desc(),
                                                  DialInRecord.id.desc()).limit(limit)
            if access_number:
                query = query.where(DialInRecord.access_number == access_number)
            return [DialInCdr(r.call_id, r.access_number, r.caller_id, r.language,
                              r.conference_id, r.identity, r.outcome, r.answered_at,
                              r.joined_after, r.ended_at) for r in session.scalars(query)]
