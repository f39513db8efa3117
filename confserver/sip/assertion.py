"""What one Switchboard process vouches for to another in a request it sends itself.

Some INVITEs the server sends come back to the server (the same process or
another of its pool): a meeting dialing a phone number goes through mediation,
and mediation hands a PSTN caller to the attendant. The receiving side must
know on whose behalf the call comes (the user whose voice policy applies) or
where it came from (the gateway and the caller's number), and must not take a
stranger's word for either, nor trust the sender's address alone.

So the sender signs what it vouches for with the server's secret (shared by a
pool through the database) into one header, bound to the request it rides in
(Call-ID, From tag, CSeq, method, Request-URI) and to the time. A header that
does not verify is ignored: the request is then what it would be without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from .message import Request

HEADER = "Switchboard-Assertion"
VERSION = "v1"
MAX_AGE = 32.0  # s: an INVITE's transaction lasts 32 s (64*T1); an older one is a replay


@dataclass(frozen=True, slots=True)
class Assertion:
    """``identity``: the user the call is placed for (their voice policy and call
    records apply); ``origin``: where the call really comes from (``gateway:NAME``,
    ``meeting:ID``); ``caller``: the calling number a gateway gave."""

    identity: str | None = None
    origin: str = ""
    caller: str = ""


def _bound(request: Request, stamp: int, claims: str) -> bytes:
    cseq = request.cseq.number if request.cseq is not None else 0
    return "\n".join((VERSION, str(stamp), request.call_id, request.from_tag or "", str(cseq),
                      request.method, str(request.uri), claims)).encode()


def sign(secret: bytes, request: Request, assertion: Assertion, now: float) -> str:
    """The header value vouching for ``assertion`` in ``request`` (validated, final)."""
    claims = base64.urlsafe_b64encode(json.dumps(
        [assertion.identity, assertion.origin, assertion.caller]).encode()).decode()
    stamp = int(now)
    mac = hmac.new(secret, _bound(request, stamp, claims), hashlib.sha256).hexdigest()
    return f"{VERSION}.{stamp}.{claims}.{mac}"


def verify(secret: bytes, request: Request, now: float) -> Assertion | None:
    """The assertion ``request`` carries, if it verifies and is fresh; None otherwise
    (no header, more than one, a bad signature, too old: all the same to the caller)."""
    values = request.headers.get_all(HEADER)
    if len(values) != 1:
        return None
    parts = values[0].strip().split(".")
    if len(parts) != 4 or parts[0] != VERSION or not parts[1].isdigit():
        return None
    _version, stamp_text, claims, mac = parts
    stamp = int(stamp_text)
    if not -5.0 <= now - stamp <= MAX_AGE:
        return None
    expected = hmac.new(secret, _bound(request, stamp, claims), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        identity, origin, caller = json.loads(base64.urlsafe_b64decode(claims))
    except (ValueError, TypeError):
        return None
    if not (identity is None or isinstance(identity, str)) or not isinstance(origin, str) \
            or not isinstance(caller, str):
        return None
    return Assertion(identity, origin, caller)
