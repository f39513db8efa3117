"""Registrar (RFC 3261 §10.3): digest-authenticated REGISTER, expiry, many contacts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import formatdate
from typing import Protocol

from confserver.limits.logins import LoginThrottle
from confserver.recent import RecentLookups
from confserver.sip.address import NameAddr
from confserver.sip.digest import RECHALLENGE, DigestServer, parse_auth_header
from confserver.sip.grammar import SipSyntaxError, parse_uint
from confserver.sip.message import Request
from confserver.sip.uri import SipUri
from confserver.storage.bindings import BindingRecord
from confserver.text import log_quoted

log = logging.getLogger("switchboard.auth")


class Users(Protocol):
    def ha1(self, username: str, realm: str, algorithm: str) -> str | None: ...

    def get(self, aor: str) -> object | None: ...


class Bindings(Protocol):
    def current(self, aor: str, now: float) -> list[BindingRecord]: ...

    def apply(self, aor: str, upserts: list[BindingRecord], removals: list[str],
              now: float) -> None: ...

    def remove_all(self, aor: str) -> None: ...

    def at_address(self, host: str, port: int, now: float) -> BindingRecord | None: ...


@dataclass(frozen=True, slots=True)
class RegistrarSettings:
    domain: str
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600


@dataclass(slots=True)
class RegisterResult:
    status: int
    reason: str
    headers: list[tuple[str, str]]


class Registrar:
    def __init__(self, settings: RegistrarSettings, users: Users, bindings: Bindings,
                 auth: DigestServer, throttle: LoginThrottle | None = None) -> None:
        self.settings = settings
        self.users = users
        self.bindings = bindings
        self.auth = auth
        self.throttle = throttle if throttle is not None else LoginThrottle()
        # every authenticated INVITE asks for the caller's HA1: for calls a password
        # change takes effect within a second, like every other directory change;
        # REGISTER (rare, and what "can this user sign in" means) always asks
        self._ha1 = RecentLookups(lambda: 0.0)

    def _challenge(self, now: float, stale: bool = False) -> RegisterResult:
        return RegisterResult(401, "Unauthorized",
                              [("WWW-Authenticate", v) for v in self.auth.challenge(now, stale)])

    def authenticate(self, request: Request, now: float, header: str = "Authorization",
                     source: str = "") -> tuple[str | None, RegisterResult | None]:
        """(username, None) when credentials check out, else (None, response).

        ``source`` is the sender's address: a source (or, from sources the user has
        not signed in from lately, a user) that keeps failing is refused for a while
        without its credentials being checked, and every failure is logged on one
        line that fail2ban can read (docs/security.md)."""
        realm = self.auth.realm
        wait = self.throttle.source_wait(source, now)
        if wait:
            return None, self._too_many(wait)
        candidates = [v for v in request.headers.get_all(header)
                      if v.strip().lower().startswith("digest") and f'realm="{realm}"' in v]
        if not candidates:
            return None, self._challenge(now)
        claimed = _username(candidates[0])
        wait = self.throttle.user_wait(claimed, source, now)
        if wait:
            return None, self._too_many(wait)

        def ha1(user: str, alg: str) -> str | None:
            if request.method == "REGISTER":
                return self.users.ha1(user, realm, alg)
            return self._ha1.get((user, realm, alg), lambda: self.users.ha1(user, realm, alg),
                                 now)

        result = self.auth.verify(candidates[0], request.method, request.uri, request.uri_text,
                                  now, ha1)
        if result.ok and result.username is not None:
            self.throttle.succeeded(result.username, source, now)
            return result.username, None
        if result.stale:
            return None, self._challenge(now, stale=True)
        self.throttle.failed(claimed, source, now)
        log.warning("auth failure: user=%s source=%s method=%s reason=%s", log_quoted(claimed),
                    source or "-", request.method, log_quoted(result.reason))
        if result.reason in RECHALLENGE:
            return None, self._challenge(now)
        return None, RegisterResult(403, "Forbidden (authentication failed)", [])

    @staticmethod
    def _too_many(wait: float) -> RegisterResult:
        return RegisterResult(403, "Forbidden (too many failed attempts; try again later)",
                              [("Retry-After", str(max(1, int(wait + 0.999))))])

    def register(self, request: Request, now: float, source: str, transport: str
                 ) -> RegisterResult:
        assert request.to is not None and request.cseq is not None
        uri = request.uri
        if not isinstance(uri, SipUri) or uri.user is not None \
                or uri.host.lower() != self.settings.domain.lower():
            return RegisterResult(404, f"Not Found (this registrar serves {self.settings.domain})", [])
        if not isinstance(request.to.uri, SipUri):
            return RegisterResult(400, "Bad Request (address-of-record must be a SIP URI)", [])
        aor = request.to.uri.aor()
        if request.to.uri.host.lower() != self.settings.domain.lower():
            return RegisterResult(403, "Forbidden (address-of-record outside this domain)", [])
        username, refusal = self.authenticate(request, now, source=source.rsplit(":", 1)[0])
        if refusal is not None:
            return refusal
        if request.to.uri.user_unescaped != username:
            return RegisterResult(403, "Forbidden (credentials do not match the address-of-record)", [])
        if self.users.get(aor) is None:
            return RegisterResult(404, "Not Found", [])
        try:
            return self._update(request, aor, now, source, transport)
        except SipSyntaxError as exc:
            return RegisterResult(400, f"Bad Request ({exc})", [])

    def _update(self, request: Request, aor: str, now: float, source: str,
                transport: str) -> RegisterResult:
        assert request.cseq is not None
        contacts = request.contacts()
        header_expires = request.headers.get("Expires")
        default = self.settings.default_expires if header_expires is None \
            else parse_uint(header_expires, "Expires")
        existing = {b.contact: b for b in self.bindings.current(aor, now)}
        if contacts is None:  # Contact: *
            if len(request.headers.get_all("Contact")) != 1 or header_expires is None \
                    or default != 0:
                return RegisterResult(400, "Bad Request (Contact: * needs Expires: 0)", [])
            for b in existing.values():
                if b.call_id == request.call_id and request.cseq.number <= b.cseq:
                    return RegisterResult(500, "Server Internal Error (CSeq out of order)", [])
            self.bindings.remove_all(aor)
            return self._ok(aor, now)
        upserts: list[BindingRecord] = []
        removals: list[str] = []
        user_agent = (request.headers.get("User-Agent") or "")[:255]
        for contact in contacts:
            expires = default
            if "expires" in contact.params:
                expires = parse_uint(contact.params["expires"] or "", "Contact expires")
            key = str(contact.uri)
            old = existing.get(key)
            if old is not None and old.call_id == request.call_id \
                    and request.cseq.number <= old.cseq:
                return RegisterResult(500, "Server Internal Error (CSeq out of order)", [])
            if expires == 0:
                removals.append(key)
                continue
            if expires < self.settings.min_expires:
                return RegisterResult(423, "Interval Too Brief",
                                      [("Min-Expires", str(self.settings.min_expires))])
            expires = min(expires, self.settings.max_expires)
            q_text = contact.params.get("q")
            q = float(q_text) if q_text and _is_q(q_text) else None
            upserts.append(BindingRecord(aor, key, now + expires, request.call_id,
                                         request.cseq.number, q, transport, source,
                                         user_agent))
        self.bindings.apply(aor, upserts, removals, now)
        return self._ok(aor, now)

    def _ok(self, aor: str, now: float) -> RegisterResult:
        headers = []
        for b in self.bindings.current(aor, now):
            contact = NameAddr.parse(f"<{b.contact}>")
            contact.params["expires"] = str(max(0, int(b.expires_at - now)))
            if b.q is not None:
                contact.params["q"] = f"{b.q:g}"
            headers.append(("Contact", str(contact)))
        headers.append(("Date", formatdate(now, usegmt=True)))
        return RegisterResult(200, "OK", headers)


def _username(header: str) -> str:
    """The username credentials claim (for throttling and the log), before checking."""
    try:
        return parse_auth_header(header)[1].get("username", "")
    except SipSyntaxError:
        return ""


def _is_q(text: str) -> bool:
    try:
        return 0.0 <= float(text) <= 1.0
    except ValueError:
        return False
