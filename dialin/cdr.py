"""Call detail records of the attendant: one row per dial-in call."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from confserver.storage.database import Database
from confserver.storage.models import DialInRecord

from .flow import CallRecord


@dataclass(frozen=True, slots=True)
class DialInCdr:
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

    def as_dict(self) -> dict[str, object]:
        return {"call_id": self.call_id, "access_number": self.access_number,
                "caller_id": self.caller_id, "language": self.language,
                "conference_id": self.conference_id, "identity": self.identity,
                "outcome": self.outcome, "answered_at": self.answered_at,
                "joined_after": self.joined_after, "ended_at": self.ended_at}


class DialInCdrStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def write(self, call_id: str, access_number: str, caller_id: str, record: CallRecord,
              ended_at: float) -> None:
        row = DialInRecord(call_id=call_id[:255], access_number=access_number,
                           caller_id=caller_id[:255], language=record.language,
                           conference_id=record.conference_id, identity=record.identity,
                           outcome=record.outcome or "hung-up", answered_at=record.answered_at,
                           joined_after=record.joined_after, ended_at=ended_at)
        with self._db.session() as session:
            session.add(row)
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
