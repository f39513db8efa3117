"""A hand-driven SIP client on a loopback address of its own (127.0.0.x), for the
tests that prove a security control: it sends exactly the bytes an attacker would
and reads what the server answers, with no client stack smoothing anything over."""

from __future__ import annotations

import itertools
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confserver.sip.digest import DigestClient
from confserver.sip.message import Request, Response, parse_message
from confserver.sip.transaction import make_response

_numbers = itertools.count(1)


@dataclass
class RawSip:
    """A UDP SIP client bound to ``host`` (its own 127.0.0.x) talking to ``server``."""

    host: str
    server: tuple[str, int]
    port: int = 0  # 0: any free one
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, self.port))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, uri: str, *, from_user: str = "mallory",
                from_host: str = "evil.example", to: str | None = None,
                call_id: str | None = None, cseq: int = 1, body: bytes = b"",
                headers: list[tuple[str, str]] | None = None, from_tag: str | None = None,
                to_tag: str | None = None, display: str | None = None) -> Request:
        """A request; ``display`` goes quoted before the From URI as it is, bytes that
        are not UTF-8 included (written from lone surrogates)."""
        name = f'"{display}" ' if display is not None else ""
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)}"
                 ";rport",
                 "Max-Forwards: 70",
                 f"From: {name}<sip:{from_user}@{from_host}>;tag={from_tag or secrets.token_hex(4)}",
                 f"To: <{to or uri}>" + (f";tag={to_tag}" if to_tag else ""),
                 f"Call-ID: {call_id or f'atk{next(_numbers)}-{secrets.token_hex(4)}'}",
                 f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{from_user}@{self.host}:{self.port}>"]
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode(
            "utf-8", "surrogateescape") + body)
        assert isinstance(message, Request)
        message.validate()
        return message

    def send(self, message: Request | bytes) -> None:
        self.sock.sendto(bytes(message), self.server)

    def responses(self, timeout: float = 2.0, until: int = 200) -> list[Response]:
        """What comes back within ``timeout``, stopping at the first status >= ``until``."""
        out: list[Response] = []
        for message in self._arrivals(timeout):
            if isinstance(message, Response):
                message.validate()
                out.append(message)
                if message.status >= until:
                    break
        return out

    def _arrivals(self, timeout: float) -> Iterator[Request | Response]:
        """Each message that arrives within ``timeout``, parsed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _addr = self.sock.recvfrom(65535)
            except OSError:
                return
            yield parse_message(data)

    def collect(self, timeout: float) -> list[Request | Response]:
        """Everything that arrives within ``timeout``; requests are answered 200."""
        out: list[Request | Response] = []
        for message in self._arrivals(timeout):
            message.validate()
            out.append(message)
            if isinstance(message, Request) and message.method != "ACK":
                self.send(make_response(message, 200, "OK"))
        return out

    def final(self, message: Request | bytes, timeout: float = 3.0) -> Response | None:
        """Send ``message``; its final response (a refused INVITE's is ACKed, or the
        server would resend it for half a minute)."""
        self.send(message)
        finals = [r for r in self.responses(timeout) if r.status >= 200]
        if not finals:
            return None
        final = finals[0]
        if isinstance(message, Request) and message.method == "INVITE" and final.status >= 300:
            self.send(_ack(message, final))
        return final

    def authorized(self, message: Request, challenge: Response, user: str, password: str,
                   uri: str | None = None) -> Request:
        """``message`` again (next CSeq, new branch) with credentials answering
        ``challenge`` computed for ``uri`` (its own Request-URI unless told)."""
        header = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
        value = DigestClient.create(user, password).authorization(
            challenge.headers.get_all(header), message.method, uri or str(message.uri))
        assert message.cseq is not None and message.from_ is not None
        again = self.request(message.method, str(message.uri), from_user=user,
                             from_host=message.from_.uri.host,  # type: ignore[union-attr]
                             to=str(message.to.uri) if message.to else None,
                             call_id=message.call_id, cseq=message.cseq.number + 1,
                             body=message.body, from_tag=message.from_tag,
                             headers=[(answer, value)])
        return again


def _ack(invite: Request, response: Response) -> bytes:
    """The ACK of a non-2xx final response: the INVITE's branch, the response's To."""
    lines = [f"ACK {invite.uri} SIP/2.0", f"Via: {invite.headers.get('Via')}",
             "Max-Forwards: 70", f"From: {invite.headers.get('From')}",
             f"To: {response.headers.get('To')}", f"Call-ID: {invite.call_id}",
             f"CSeq: {invite.cseq.number if invite.cseq else 1} ACK", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sdp_offer(host: str, port: int) -> bytes:
    return (f"v=0\r\no=atk 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=sendrecv\r\n").encode()


def in_dialog(client: RawSip, invite: Request, ok: Response, method: str, cseq: int, *,
              headers: list[tuple[str, str]] | None = None, body: bytes = b"",
              content_type: str | None = None) -> Request:
    """A request of ``client``'s in the dialog ``ok`` answered to its ``invite``."""
    contact = ok.contacts() or []
    target = str(contact[0].uri) if contact else str(invite.uri)
    assert invite.from_ is not None and ok.to is not None
    lines = [f"{method} {target} SIP/2.0",
             f"Via: SIP/2.0/UDP {client.host}:{client.port};branch=z9hG4bK{secrets.token_hex(6)}"
             ";rport",
             "Max-Forwards: 70",
             f"From: {invite.headers.get('From')}",
             f"To: {ok.headers.get('To')}",
             f"Call-ID: {invite.call_id}",
             f"CSeq: {cseq} {method}"]
    if method != "ACK":
        lines.append(f"Contact: <sip:{client.host}:{client.port}>")
    for name, value in headers or []:
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Type: {content_type or 'application/sdp'}")
    lines.append(f"Content-Length: {len(body)}")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode(
        "utf-8", "surrogateescape") + body)
    assert isinstance(message, Request)
    message.validate()
    return message


def listener(host: str, port: int = 0) -> socket.socket:
    """A UDP socket that stands for a host the attacker wants the server to call."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock


def received(sock: socket.socket, timeout: float) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65535)
        except OSError:
            break
        out.append(data)
    return out
