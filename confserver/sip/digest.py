"""HTTP Digest for SIP (RFC 2617, RFC 8760: MD5 and SHA-256, qop=auth).

The server side issues stateless nonces (timestamp + HMAC), so any process
of a pool can verify a nonce another one issued, given the shared secret.
Credentials must use ``qop=auth`` and name the Request-URI they came with; the
highest nonce-count used with each nonce and cnonce goes to a ``NonceUses``
table (in memory here; the server's is the database, shared by a pool), and a
count not above it is a replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .grammar import SipSyntaxError, split_top_level, unquote
from .uri import SipUri, Uri, parse_uri

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def digest_hex(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    return digest_hex(algorithm, f"{username}:{realm}:{password}")


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """``Digest a=b, c="d"`` -> ("digest", {"a": "b", "c": "d"})."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    params: dict[str, str] = {}
    for item in split_top_level(rest, ","):
        item = item.strip()
        if not item:
            continue
        name, eq, val = item.partition("=")
        if not eq:
            raise SipSyntaxError(f"bad auth parameter {item[:30]!r}")
        val = val.strip()
        params[name.strip().lower()] = unquote(val) if val.startswith('"') else val
    return scheme.lower(), params


def _response_digest(algorithm: str, ha1: str, nonce: str, method: str, uri: str,
                     qop: str | None, nc: str | None, cnonce: str | None) -> str:
    ha2 = digest_hex(algorithm, f"{method}:{uri}")
    if qop:
        return digest_hex(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return digest_hex(algorithm, f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    username: str | None = None
    stale: bool = False
    reason: str = ""


# the reasons that deserve a fresh challenge rather than a refusal (RFC 2617 §3.2.3)
RECHALLENGE = frozenset({"unknown nonce", "replayed nonce-count"})


class NonceUses(Protocol):
    """Where the nonce-counts used so far are kept (every process of a pool must see
    the same table, or a response replayed to another process would pass)."""

    def use(self, nonce: str, cnonce: str, count: int, expires_at: float) -> bool:
        """Record ``count`` for (``nonce``, ``cnonce``); False when a count as high
        was used already."""
        ...


class MemoryNonceUses:
    """The table in one process's memory, the most recent ``limit`` pairs."""

    def __init__(self, limit: int = 10_000) -> None:
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._limit = limit

    def use(self, nonce: str, cnonce: str, count: int, expires_at: float) -> bool:
        key = (nonce, cnonce)
        if count <= self._seen.get(key, 0):
            return False
        self._seen[key] = count
        self._seen.move_to_end(key)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True


def same_request_uri(credentials_uri: str, request_uri: Uri | None, request_text: str) -> bool:
    """The ``uri`` of Digest credentials names the request they came with: the same
    text, or a SIP URI equal to it by RFC 3261 §19.1.4's main rules (scheme, user,
    host without case, port, transport)."""
    if credentials_uri in (request_text, str(request_uri)):
        return True
    try:
        named = parse_uri(credentials_uri)
    except SipSyntaxError:
        return False
    if not isinstance(named, SipUri) or not isinstance(request_uri, SipUri):
        return False

    def key(uri: SipUri) -> tuple[object, ...]:
        return (uri.scheme.lower(), uri.user_unescaped, uri.host.lower(), uri.port,
                (uri.params.get("transport") or "").lower())

    return key(named) == key(request_uri)


class DigestServer:
    """Challenges requests and verifies credentials."""

    def __init__(self, realm: str, secret: bytes, nonce_lifetime: float = 300.0,
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
                 nonce_uses: NonceUses | None = None) -> None:
        for algorithm in algorithms:
            if algorithm not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {algorithm!r}")
        self.realm = realm
        self._secret = secret
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = algorithms
        self.nonce_uses: NonceUses = nonce_uses if nonce_uses is not None \
            else MemoryNonceUses()

    def _nonce(self, now: float) -> str:
        stamp = f"{int(now)}.{secrets.token_hex(4)}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return base64.urlsafe_b64encode(f"{stamp}:{mac}".encode()).decode().rstrip("=")

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since the nonce was issued, or None if we never issued it."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)).decode()
            stamp, mac = raw.rsplit(":", 1)
            expected = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
            if not hmac.compare_digest(mac, expected):
                return None
            return now - int(stamp.split(".")[0])
        except (ValueError, UnicodeDecodeError):
            return None

    def challenge(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) values, strongest first."""
        nonce = self._nonce(now)
        out = []
        for algorithm in self.algorithms:
            value = (f'Digest realm="{self.realm}", nonce="{nonce}", '
                     f'algorithm={algorithm}, qop="auth"')
            if stale:
                value += ", stale=true"
            out.append(value)
        return out

    def verify(self, header: str, method: str, request_uri: Uri | None, request_text: str,
               now: float, lookup_ha1: Callable[[str, str], str | None]) -> AuthResult:
        """Check one Authorization header of a request to ``request_uri`` (as parsed, and
        ``request_text`` as received); ``lookup_ha1(username, algorithm)``."""
        try:
            scheme, params = parse_auth_header(header)
        except SipSyntaxError as exc:
            return AuthResult(False, reason=f"malformed credentials: {exc}")
        if scheme != "digest":
            return AuthResult(False, reason=f"unsupported scheme {scheme!r}")
        if params.get("realm") != self.realm:
            return AuthResult(False, reason="credentials for another realm")
        username = params.get("username")
        nonce = params.get("nonce")
        uri = params.get("uri")
        response = params.get("response")
        if not (username and nonce and uri and response):
            return AuthResult(False, reason="incomplete credentials")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in self.algorithms:
            return AuthResult(False, username, reason=f"algorithm {algorithm} not offered")
        age = self._nonce_age(nonce, now)
        if age is None:
            return AuthResult(False, username, reason="unknown nonce")
        qop = params.get("qop")
        nc = params.get("nc")
        cnonce = params.get("cnonce")
        if qop != "auth" or not nc or not cnonce:
            # without qop=auth a response can be replayed at will: it names no count
            return AuthResult(False, username, reason="qop=auth with nc and cnonce required")
        try:
            count = int(nc, 16)
        except ValueError:
            return AuthResult(False, username, reason="bad nonce-count")
        if not same_request_uri(uri, request_uri, request_text):
            return AuthResult(False, username, reason="credentials for another Request-URI")
        ha1 = lookup_ha1(username, algorithm)
        if ha1 is None:
            return AuthResult(False, username, reason="unknown user")
        expected = _response_digest(algorithm, ha1, nonce, method, uri, qop, nc, cnonce)
        if not hmac.compare_digest(expected, response.lower()):
            return AuthResult(False, username, reason="wrong password")
        if age > self.nonce_lifetime or age < -5:
            # right password, old nonce: the client retries silently (stale=true)
            return AuthResult(False, username, stale=True, reason="nonce expired")
        issued = now - age
        if not self.nonce_uses.use(nonce, cnonce, count, issued + self.nonce_lifetime + 5):
            return AuthResult(False, username, reason="replayed nonce-count")
        return AuthResult(True, username)


@dataclass(slots=True)
class DigestClient:
    """Answers challenges from trunks and registrars."""

    username: str
    password: str
    nonce_counts: dict[str, int]

    @classmethod
    def create(cls, username: str, password: str) -> DigestClient:
        return cls(username, password, {})

    def authorization(self, challenges: list[str], method: str, uri: str,
                      cnonce: str | None = None) -> str:
        """Authorization value for the strongest algorithm offered."""
        parsed: list[dict[str, str]] = []
        for value in challenges:
            scheme, params = parse_auth_header(value)
            if scheme == "digest":
                parsed.append(params)
        if not parsed:
            raise SipSyntaxError("no Digest challenge offered")
        rank = {"SHA-256": 0, "MD5": 1}
        usable = [p for p in parsed if p.get("algorithm", "MD5").upper() in rank]
        if not usable:
            raise SipSyntaxError("no supported digest algorithm offered")
        chosen = min(usable, key=lambda p: rank[p.get("algorithm", "MD5").upper()])
        algorithm = chosen.get("algorithm", "MD5").upper()
        realm = chosen.get("realm", "")
        nonce = chosen.get("nonce", "")
        qops = [q.strip() for q in chosen.get("qop", "").split(",") if q.strip()]
        ha1 = compute_ha1(algorithm, self.username, realm, self.password)
        parts = [f'username="{self.username}"', f'realm="{realm}"', f'nonce="{nonce}"',
                 f'uri="{uri}"', f"algorithm={algorithm}"]
        if "auth" in qops:
            count = self.nonce_counts.get(nonce, 0) + 1
            self.nonce_counts[nonce] = count
            nc = f"{count:08x}"
            cnonce = cnonce or secrets.token_hex(8)
            response = _response_digest(algorithm, ha1, nonce, method, uri, "auth", nc, cnonce)
            parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _response_digest(algorithm, ha1, nonce, method, uri, None, None, None)
        parts.append(f'response="{response}"')
        if "opaque" in chosen:
            parts.append(f'opaque="{chosen["opaque"]}"')
        return "Digest " + ", ".join(parts)
