"""Dialogs (RFC 3261 §12) and session timers (RFC 4028), sans-I/O."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from confserver.text import clean_text

from .address import NameAddr
from .grammar import SipSyntaxError, parse_params, parse_uint
from .message import Headers, Request, Response
from .uri import SipUri, Uri


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


class DialogError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str      # From/To header value we use for ourselves (without tag)
    remote_uri: str     # the peer's From/To value (without tag)
    remote_target: Uri
    local_seq: int
    remote_seq: int | None
    route_set: list[str] = field(default_factory=list)
    secure: bool = False
    local_contact: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, local_contact: str) -> Dialog:
        """Dialog state from a dialog-creating request we answer (§12.1.1)."""
        assert request.cseq is not None and request.from_ is not None and request.to is not None
        contacts = request.contacts() or []
        if len(contacts) != 1:
            raise DialogError(400, "a dialog-creating request needs exactly one Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_strip_tag(request.headers.get("To") or ""),
            remote_uri=_strip_tag(request.headers.get("From") or ""),
            remote_target=contacts[0].uri,
            local_seq=secrets.randbelow(2**31 - 1) + 1,
            remote_seq=request.cseq.number,
            route_set=request.headers.values("Record-Route"),
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            local_contact=local_contact,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """Dialog state from a 1xx/2xx answering a request we sent (§12.1.2)."""
        assert request.cseq is not None and request.from_ is not None and response.to is not None
        contacts = response.contacts() or []
        if not contacts:
            raise DialogError(400, "response establishing a dialog has no Contact")
        if not response.to.tag:
            raise DialogError(400, "response establishing a dialog has no To tag")
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_strip_tag(request.headers.get("From") or ""),
            remote_uri=_strip_tag(response.headers.get("To") or ""),
            remote_target=contacts[0].uri,
            local_seq=request.cseq.number,
            remote_seq=None,
            route_set=list(reversed(response.headers.values("Record-Route"))),
            local_contact=request.headers.get("Contact") or "",
        )

    def check_remote_cseq(self, request: Request) -> None:
        """Reject out-of-order in-dialog requests with 500 (§12.2.2)."""
        assert request.cseq is not None
        if request.method in ("ACK", "CANCEL"):
            return
        if self.remote_seq is not None and request.cseq.number <= self.remote_seq:
            raise DialogError(500, "CSeq out of order")
        self.remote_seq = request.cseq.number

    def refresh_target(self, message: Request | Response) -> None:
        """Target refresh from a re-INVITE/UPDATE or its 2xx."""
        contacts = message.contacts() or []
        if contacts:
            self.remote_target = contacts[0].uri

    def create_request(self, method: str, via_host: str, via_port: int, transport: str,
                       body: bytes = b"", content_type: str | None = None,
                       cseq: int | None = None) -> Request:
        """A request inside this dialog, routed per §12.2.1.1 (loose routing)."""
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                self.local_seq += 1
            cseq = self.local_seq
        request_uri: Uri = self.remote_target
        routes = list(self.route_set)
        if routes:
            first = NameAddr.parse(routes[0])
            if isinstance(first.uri, SipUri) and "lr" not in first.uri.params:
                # strict router: it becomes the Request-URI (§12.2.1.1)
                request_uri = first.uri
                routes = [*routes[1:], f"<{self.remote_target}>"]
        items: list[tuple[str, str]] = [
            ("Via", f"SIP/2.0/{transport.upper()} {via_host}:{via_port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        items += [("Route", r) for r in routes]
        if self.local_contact and method not in ("BYE", "CANCEL", "ACK"):
            items.append(("Contact", self.local_contact))
        if content_type:
            items.append(("Content-Type", content_type))
        request = Request(headers=Headers(items), method=method, uri=request_uri, body=body)
        request.validate()
        return request

    def next_hop(self) -> Uri:
        """Where an in-dialog request goes first: the top route, else the target."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri
        return self.remote_target


def _strip_tag(value: str) -> str:
    """A From/To value as the dialog's requests carry it: no tag, and no control
    character in the display name (a quoted NUL is legal in what a peer sends, never
    in what we send; the display name plays no part in matching a dialog)."""
    addr = NameAddr.parse(value)
    addr.params.pop("tag", None)
    if addr.display_name and clean_text(addr.display_name, 1024) != addr.display_name:
        addr.display_name = clean_text(addr.display_name, 1024)
    return str(addr)


# ---------------------------------------------------------------- RFC 4028

@dataclass(frozen=True, slots=True)
class SessionTimer:
    """Negotiated session-timer state for one dialog."""

    interval: int            # Session-Expires, seconds
    refresher: str           # "uac" or "uas"
    we_refresh: bool

    def refresh_after(self) -> float:
        """When the refresher sends its refresh: half the interval."""
        return self.interval / 2

    def expire_after(self) -> float:
        """When the other side gives up without a refresh (§10): interval minus
        a margin of min(32, interval/3)."""
        return self.interval - min(32.0, self.interval / 3)


class SessionTimerTooSmall(ValueError):
    def __init__(self, min_se: int) -> None:
        super().__init__(f"Session-Expires below Min-SE {min_se}")
        self.min_se = min_se


def parse_session_expires(value: str) -> tuple[int, str | None]:
    head, _, rest = value.partition(";")
    interval = parse_uint(head, "Session-Expires")
    params = parse_params(";" + rest) if rest else {}
    refresher = params.get("refresher")
    if refresher is not None and refresher not in ("uac", "uas"):
        raise SipSyntaxError(f"bad refresher {refresher!r}")
    return interval, refresher


def negotiate_as_uac(response: Response, requested: int) -> SessionTimer | None:
    """Session timer from the 2xx to an INVITE we sent with Session-Expires
    ``requested`` (RFC 4028 §7.2). The answer's Session-Expires (and refresher)
    wins; an answer without one means the far end does not do timers, and we
    refresh ourselves at our interval. None when we asked for none."""
    raw = response.headers.get("Session-Expires")
    if raw is None:
        return SessionTimer(requested, "uac", True) if requested else None
    interval, refresher = parse_session_expires(raw)
    refresher = refresher or "uac"
    return SessionTimer(interval, refresher, refresher == "uac")


def negotiate_as_uas(request: Request, min_se: int, default_interval: int
                     ) -> SessionTimer | None:
    """Session timer for a (re-)INVITE we answer (RFC 4028 §9).

    Raises SessionTimerTooSmall (answer 422 with Min-SE) when the offered
    interval is below our minimum. Returns None when neither side wants one.
    """
    uac_supports = "timer" in request.headers.tokens("Supported")
    raw = request.headers.get("Session-Expires")
    if raw is None:
        if not default_interval:
            return None
        # The UAC did not ask; we may still run one, refreshing it ourselves.
        return SessionTimer(default_interval, "uas", True)
    interval, refresher = parse_session_expires(raw)
    if interval < min_se:
        raise SessionTimerTooSmall(min_se)
    if refresher is None:
        refresher = "uac" if uac_supports else "uas"
    if not uac_supports:
        refresher = "uas"
    return SessionTimer(interval, refresher, refresher == "uas")
