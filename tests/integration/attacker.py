"""A hand-driven SIP client on a loopback address of its own (127.0.0.x), for the
tests that prove a security control: it sends exactly the bytes an attacker would
and reads what the server answers, with no client stack smoothing anything over."""

from __future__ import annotations

import itertools
import secrets
import socket
import time
from dataclasses import dataclass, field

from confserver.sip.digest import DigestClient
from confserver.sip.message import Request, Response, parse_message

_numbers = itertools.count(1)


@dataclass
class RawSip:
    """A UDP SIP client bound to ``host`` (its own 127.0.0.x) talking to ``server``."""

    host: str
    server: tuple[str, int]
    sock: socket.socket = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, uri: str, *, from_user: str = "mallory",
                from_host: str = "evil.example", to: str | None = None,
                call_id: str | None = None, cseq: int = 1, body: bytes = b"",
                headers: list[tuple[str, str]] | None = None, from_tag: str | None = None,
                to_tag: str | None = None) -> Request:
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(6)}"
                 ";rport",
                 "Max-Forwards: 70",
                 f"From: <sip:{from_user}@{from_host}>;tag={from_tag or secrets.token_hex(4)}",
                 f"To: <{to or uri}>" + (f";tag={to_tag}" if to_tag else ""),
                 f"Call-ID: {call_id or f'atk{next(_numbers)}-{secrets.token_hex(4)}'}",
                 f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{from_user}@{self.host}:{self.port}>"]
        for name, value in headers or []:
            lines.append(f"{name}: {value}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        assert isinstance(message, Request)
        message.validate()
        return message

    def send(self, message: Request | bytes) -> None:
        self.sock.sendto(bytes(message), self.server)

    def responses(self, timeout: float = 2.0, until: int = 200) -> list[Response]:
        """What comes back within ``timeout``, stopping at the first status >= ``until``."""
        out: list[Response] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _addr = self.sock.recvfrom(65535)
            except OSError:
                break
            message = parse_message(data)
            if isinstance(message, Response):
                message.validate()
                out.append(message)
                if message.status >= until:
                    break
        return out

    def final(self, message: Request | bytes, timeout: float = 3.0) -> Response | None:
        self.send(message)
        finals = [r for r in self.responses(timeout) if r.status >= 200]
        return finals[0] if finals else None

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


def sdp_offer(host: str, port: int) -> bytes:
    return (f"v=0\r\no=atk 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=sendrecv\r\n").encode()
