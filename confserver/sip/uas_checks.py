"""Stateless checks a UAS applies before acting on a request (RFC 3261 §8.2).

Pure: a request in, an error response description (or None) out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .grammar import SipSyntaxError
from .message import Request
from .transaction import MAGIC_COOKIE
from .uri import AbsoluteUri


@dataclass(frozen=True, slots=True)
class UasPolicy:
    methods: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER",
                                "INFO", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY")
    extensions: tuple[str, ...] = ("timer", "path", "outbound")
    content_types: tuple[str, ...] = ("application/sdp", "application/dtmf-relay",
                                      "application/dtmf", "application/cccp+xml", "message/sipfrag")
    encodings: tuple[str, ...] = ("identity",)
    uri_schemes: tuple[str, ...] = ("sip", "sips", "tel")


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)


def check_request(request: Request, policy: UasPolicy) -> Rejection | None:
    """The first rule a validated request breaks, in §8.2's order."""
    assert request.cseq is not None
    if request.top_via.branch == MAGIC_COOKIE:
        return Rejection(400, "Bad Request (Via branch is only the magic cookie)")
    if isinstance(request.uri, AbsoluteUri) or (
            request.uri is not None and request.uri.scheme not in policy.uri_schemes):
        return Rejection(416, "Unsupported URI Scheme")
    if request.method not in policy.methods:
        return Rejection(501, "Not Implemented", [("Allow", ", ".join(policy.methods))])
    if request.cseq.method != request.method:
        return Rejection(400, "Bad Request (CSeq method does not match the Request-Line)")
    if request.method not in ("ACK", "CANCEL"):
        try:
            required = request.headers.values("Require")
        except SipSyntaxError:
            return Rejection(400, "Bad Request (malformed Require)")
        unsupported = [opt for opt in required if opt.lower() not in policy.extensions]
        if unsupported:
            return Rejection(420, "Bad Extension", [("Unsupported", ", ".join(unsupported))])
    if request.body and request.method not in ("ACK",):
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        encoding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
        if ctype not in policy.content_types or encoding not in policy.encodings:
            return Rejection(415, "Unsupported Media Type", [
                ("Accept", ", ".join(policy.content_types)),
                ("Accept-Encoding", ", ".join(policy.encodings)),
                ("Accept-Language", "en")])
    if request.method == "INVITE" and "Accept" in request.headers:
        try:
            accepted = [a.split(";")[0].strip().lower() for a in request.headers.values("Accept")]
        except SipSyntaxError:
            return Rejection(400, "Bad Request (malformed Accept)")
        if accepted and not any(a in ("application/sdp", "application/*", "*/*")
                                for a in accepted):
            return Rejection(406, "Not Acceptable", [("Accept", "application/sdp")])
    return None
