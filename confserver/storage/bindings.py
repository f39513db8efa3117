"""Location service storage: registered contacts per address-of-record."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select

from .database import Database
from .models import Binding


@dataclass(frozen=True, slots=True)
class BindingRecord:
    aor: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    q: float | None
    transport: str
    source: str
    user_agent: str = ""


def _record(b: Binding) -> BindingRecord:
    return BindingRecord(b.aor, b.contact, b.expires_at, b.call_id, b.cseq, b.q,
                         b.transport, b.source, b.user_agent)


class BindingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def current(self, aor: str, now: float) -> list[BindingRecord]:
        with self._db.session() as session:
            rows = session.scalars(select(Binding).where(Binding.aor == aor,
                                                         Binding.expires_at > now)
                                   .order_by(Binding.id))
            return [_record(b) for b in rows]

    def apply(self, aor: str, upserts: list[BindingRecord], removals: list[str],
              now: float) -> None:
        """Apply one REGISTER's changes atomically (§10.3 step 8)."""
        with self._db.session() as session, session.begin():
            session.execute(delete(Binding).where(Binding.aor == aor,
                                                  Binding.expires_at <= now))
            if removals:
                session.execute(delete(Binding).where(Binding.aor == aor,
                                                      Binding.contact.in_(removals)))
            for rec in upserts:
                row = session.scalar(select(Binding).where(Binding.aor == aor,
                                                           Binding.contact == rec.contact))
                if row is None:
                    row = Binding(aor=aor, contact=rec.contact)
                    session.add(row)
                row.expires_at = rec.expires_at
                row.call_id = rec.call_id
                row.cseq = rec.cseq
                row.q = rec.q
                row.transport = rec.transport
                row.source = rec.source
                row.user_agent = rec.user_agent
                row.updated_at = now

    def remove_all(self, aor: str) -> None:
        with self._db.session() as session, session.begin():
            session.execute(delete(Binding).where(Binding.aor == aor))

    def purge_expired(self, now: float) -> int:
        with self._db.session() as session, session.begin():
            result = session.execute(delete(Binding).where(Binding.expires_at <= now))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def at_address(self, host: str, port: int, now: float) -> BindingRecord | None:
        """The current binding of a device at ``host:port`` (where it registered from,
        or the address its Contact names), if one of our users registered it."""
        hostport = f"{host}:{port}"
        # a contact names the address after '@' (or right after the scheme), and ends
        # there or with a parameter, a bracket or nothing
        escaped = hostport.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        patterns = [f"%{sep}{escaped}{end}" for sep in ("@", ":")
                    for end in ("", ">", ";%", ">%")]
        with self._db.session() as session:
            row = session.scalars(
                select(Binding).where(Binding.expires_at > now,
                                      (Binding.source == hostport)
                                      | or_(*(Binding.contact.like(p, escape="\\")
                                              for p in patterns)))
                .order_by(Binding.updated_at.desc()).limit(1)).first()
            return _record(row) if row is not None else None
