"""User directory: who may register and call, with their digest HA1 values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, bindparam, delete, select
from sqlalchemy.exc import IntegrityError

from confserver.sip.digest import compute_ha1
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.uri import SipUri

from .database import Database
from .models import User

E164_RE = re.compile(r"\+[1-9][0-9]{1,14}\Z")
EXTENSION_RE = re.compile(r"[0-9]{2,15}\Z")
MIN_PASSWORD_LENGTH = 8
USERS: Table = User.__table__  # type: ignore[assignment]
_BY_URI = select(USERS).where(USERS.c.sip_uri == bindparam("aor"))
_BY_PHONE = select(USERS).where(USERS.c.phone == bindparam("phone"))
_BY_EXTENSION = select(USERS).where(USERS.c.extension == bindparam("extension"))
_HA1 = select(USERS.c.ha1_md5, USERS.c.ha1_sha256).where(
    USERS.c.auth_username == bindparam("username"), USERS.c.realm == bindparam("realm"))


class UserError(ValueError):
    """Bad input to a user operation; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    sip_uri: str
    display_name: str
    phone: str | None
    auth_username: str
    realm: str
    extension: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"sip_uri": self.sip_uri, "name": self.display_name, "phone": self.phone,
                "username": self.auth_username, "realm": self.realm,
                "extension": self.extension}


def normalize_aor(text: str) -> SipUri:
    try:
        uri = SipUri.parse(text.strip())
    except SipSyntaxError as exc:
        raise UserError(f"SIP URI {text!r} is not valid: {exc}") from exc
    if not uri.user:
        raise UserError(f"SIP URI {text!r} has no user part")
    if uri.port is not None or uri.params or uri.headers:
        raise UserError(f"SIP URI {text!r} must be a plain address (no port or parameters)")
    return uri


def _record(user: User | Row[Any]) -> UserRecord:
    return UserRecord(user.sip_uri, user.display_name, user.phone, user.auth_username,
                      user.realm, user.extension)


class UserDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, sip_uri: str, password: str, display_name: str = "",
            phone: str | None = None, now: float = 0.0,
            extension: str | None = None) -> UserRecord:
        uri = normalize_aor(sip_uri)
        if phone is not None and not E164_RE.match(phone):
            raise UserError(f"phone {phone!r} is not an E.164 number like +14255550101")
        if extension is not None and not EXTENSION_RE.match(extension):
            raise UserError(f"extension {extension!r} must be 2 to 15 digits")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        username = uri.user_unescaped or ""
        realm = uri.host.lower()
        user = User(sip_uri=uri.aor(), auth_username=username, realm=realm,
                    display_name=display_name, phone=phone, extension=extension,
                    ha1_md5=compute_ha1("MD5", username, realm, password),
                    ha1_sha256=compute_ha1("SHA-256", username, realm, password),
                    created_at=now, updated_at=now)
        with self._db.session() as session:
            if session.scalar(select(User).where(User.sip_uri == user.sip_uri)):
                raise UserError(f"user {user.sip_uri} already exists")
            if phone and session.scalar(select(User).where(User.phone == phone)):
                raise UserError(f"phone {phone} already belongs to another user")
            if extension and session.scalar(select(User).where(User.extension == extension)):
                raise UserError(f"extension {extension} already belongs to another user")
            session.add(user)
            try:
                session.commit()
            except IntegrityError as exc:
                raise UserError(f"user {user.sip_uri} conflicts with an existing one") from exc
            return _record(user)

    def set_password(self, sip_uri: str, password: str, now: float = 0.0) -> None:
        aor = normalize_aor(sip_uri).aor()
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.sip_uri == aor))
            if user is None:
                raise UserError(f"no user {aor}")
            user.ha1_md5 = compute_ha1("MD5", user.auth_username, user.realm, password)
            user.ha1_sha256 = compute_ha1("SHA-256", user.auth_username, user.realm, password)
            user.updated_at = now
            session.commit()

    def remove(self, sip_uri: str) -> None:
        aor = normalize_aor(sip_uri).aor()
        with self._db.session() as session:
            result = session.execute(delete(User).where(User.sip_uri == aor))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise UserError(f"no user {aor}")
            session.commit()

    def list(self) -> list[UserRecord]:
        with self._db.session() as session:
            return [_record(u) for u in session.scalars(select(User).order_by(User.sip_uri))]

    # lookups on every call's path: Core statements built once (Database.first)
    def get(self, aor: str) -> UserRecord | None:
        row = self._db.first(_BY_URI, aor=aor)
        return _record(row) if row else None

    def by_phone(self, phone: str) -> UserRecord | None:
        row = self._db.first(_BY_PHONE, phone=phone)
        return _record(row) if row else None

    def by_extension(self, extension: str) -> UserRecord | None:
        row = self._db.first(_BY_EXTENSION, extension=extension)
        return _record(row) if row else None

    def ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        row = self._db.first(_HA1, username=username, realm=realm)
        if row is None:
            return None
        return str(row.ha1_sha256 if algorithm == "SHA-256" else row.ha1_md5)
