"""Dial-in access numbers: the E.164 numbers (and SIP URIs) that reach the attendant.

They live in the core because two roles read them: the attendant answers
calls to them, and mediation's reverse number lookup sends PSTN calls for
them to the attendant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, or_, select
from sqlalchemy.exc import IntegrityError

from confserver.sip.grammar import SipSyntaxError
from confserver.sip.uri import SipUri

from .database import Database
from .models import AccessNumber
from .users import E164_RE

# the languages the attendant speaks (Office Communications Server 2007 R2's fourteen)
LANGUAGES = ("en-US", "en-GB", "en-AU", "zh-CN", "zh-TW", "pt-BR", "ko-KR", "es-MX", "es-ES",
             "fr-CA", "fr-FR", "de-DE", "it-IT", "ja-JP")
MAX_SECONDARY = 4
ACCESS_NUMBERS: Table = AccessNumber.__table__  # type: ignore[assignment]
_BY_NUMBER = select(ACCESS_NUMBERS).where(ACCESS_NUMBERS.c.number == bindparam("number"))
_BY_URI = select(ACCESS_NUMBERS).where(ACCESS_NUMBERS.c.sip_uri == bindparam("aor"))
_LANGUAGE_BY_LOWER = {code.lower(): code for code in LANGUAGES}


class AccessNumberError(ValueError):
    """Bad input to an access-number operation; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class AccessNumberRecord:
    number: str
    sip_uri: str
    display_name: str
    region: str
    language: str
    secondary_languages: tuple[str, ...]

    @property
    def languages(self) -> tuple[str, ...]:
        """The primary language first, then the others in the order given."""
        return (self.language, *self.secondary_languages)

    def as_dict(self) -> dict[str, object]:
        return {"number": self.number, "sip_uri": self.sip_uri, "name": self.display_name,
                "region": self.region, "language": self.language,
                "secondary_languages": list(self.secondary_languages)}


def parse_language(text: str, option: str = "--language") -> str:
    code = _LANGUAGE_BY_LOWER.get(text.strip().lower())
    if code is None:
        raise AccessNumberError(f"{option}: {text!r} is not one of the attendant's languages "
                                f"({', '.join(LANGUAGES)})")
    return code


def default_sip_uri(number: str, domain: str) -> str:
    return f"sip:{number}@{domain}"


def _record(row: AccessNumber | Row[Any]) -> AccessNumberRecord:
    others = tuple(x for x in row.secondary_languages.split(",") if x)
    return AccessNumberRecord(row.number, row.sip_uri, row.display_name, row.region,
                              row.language, others)


class AccessNumberDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, number: str, *, name: str, language: str, domain: str,
            secondary: tuple[str, ...] = (), region: str = "", sip_uri: str | None = None,
            now: float = 0.0) -> AccessNumberRecord:
        number = number.strip()
        if not E164_RE.match(number):
            raise AccessNumberError(f"number {number!r} is not an E.164 number like "
                                    "+14255550100")
        if not name.strip():
            raise AccessNumberError("--name must not be empty")
        primary = parse_language(language)
        others = tuple(parse_language(code, "--also") for code in secondary)
        if len(others) > MAX_SECONDARY:
            raise AccessNumberError(f"--also: at most {MAX_SECONDARY} secondary languages "
                                    f"(got {len(others)})")
        if primary in others or len(set(others)) != len(others):
            raise AccessNumberError("--also: each language may appear once, and not repeat "
                                    "the primary language")
        uri_text = sip_uri or default_sip_uri(number, domain)
        try:
            uri = SipUri.parse(uri_text)
        except SipSyntaxError as exc:
            raise AccessNumberError(f"--uri {uri_text!r} is not a SIP URI: {exc}") from exc
        if not uri.user or uri.port is not None or uri.headers:
            raise AccessNumberError(f"--uri {uri_text!r} must be a plain sip:user@domain")
        row = AccessNumber(number=number, sip_uri=uri.aor(), display_name=name.strip(),
                           region=region.strip(), language=primary,
                           secondary_languages=",".join(others), created_at=now)
        with self._db.session() as session:
            clash = session.scalar(select(AccessNumber).where(
                or_(AccessNumber.number == number, AccessNumber.sip_uri == row.sip_uri)))
            if clash is not None:
                raise AccessNumberError(f"access number {clash.number} ({clash.sip_uri}) "
                                        "already exists")
            session.add(row)
            try:
                session.commit()
            except IntegrityError as exc:
                raise AccessNumberError(f"access number {number} already exists") from exc
            return _record(row)

    def remove(self, number: str) -> None:
        with self._db.session() as session:
            result = session.execute(delete(AccessNumber).where(
                or_(AccessNumber.number == number.strip(), AccessNumber.sip_uri == number.strip())))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise AccessNumberError(f"no access number {number}")
            session.commit()

    def list(self) -> list[AccessNumberRecord]:
        with self._db.session() as session:
            return [_record(r) for r in session.scalars(select(AccessNumber)
                                                        .order_by(AccessNumber.number))]

    # asked on every INVITE: Core statements built once (Database.first)
    def get(self, number: str) -> AccessNumberRecord | None:
        row = self._db.first(_BY_NUMBER, number=number)
        return _record(row) if row else None

    def by_uri(self, aor: str) -> AccessNumberRecord | None:
        """The access number whose SIP URI is ``aor`` (``sip:user@host``)."""
        row = self._db.first(_BY_URI, aor=aor)
        return _record(row) if row else None
