"""An in-memory server: the real endpoint, application and storage, a fake wire."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from twisted.internet.task import Clock

from confserver.adapters.calls.application import AppSettings, SipApplication
from confserver.adapters.calls.call import CallSettings
from confserver.adapters.media.ports import PortPool
from confserver.adapters.media.session import MediaEngine
from confserver.adapters.sip.endpoint import SipEndpoint, Target
from confserver.adapters.sip.registrar import Registrar, RegistrarSettings
from confserver.media.codecs import default_registry
from confserver.sip.digest import DigestClient, DigestServer
from confserver.sip.message import Request, Response, SipParseError, parse_message
from confserver.storage.bindings import BindingStore
from confserver.storage.database import Database, open_database
from confserver.storage.users import UserDirectory


@dataclass
class WireTransport:
    name: str
    sent: list[tuple[bytes, Target]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 5060
    fail: bool = False

    def send(self, data: bytes, target: Target) -> bool:
        if self.fail:
            return False
        self.sent.append((data, target))
        return True

    def local_address(self) -> tuple[str, int]:
        return self.host, self.port


class Harness:
    def __init__(self, db_url: str = "sqlite://", domain: str = "example.com",
                 algorithms: tuple[str, ...] = ("MD5", "SHA-256"), media: bool = False) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.db: Database = open_database(db_url)
        self.users = UserDirectory(self.db)
        self.bindings = BindingStore(self.db)
        self.endpoint = SipEndpoint(self.clock)
        self.wire = {name: WireTransport(name) for name in ("udp", "tcp")}
        for t in self.wire.values():
            self.endpoint.add_transport(t)
        self.registrar = Registrar(RegistrarSettings(domain), self.users, self.bindings,
                                   DigestServer(domain, b"k" * 32, 300, algorithms))
        self.ports = PortPool(20000, 20100)
        self.media: MediaEngine | None = None
        if media:  # calls get media sessions on memory sockets (self.media.sockets)
            from tests.media.session_helpers import MemorySockets

            self.media = MediaEngine(self.clock, "127.0.0.1", default_registry(),
                                     sockets=MemorySockets())
        # the test services answer callers on loopback without a sign-in, as in the demo
        self.app = SipApplication(self.clock, self.endpoint,
                                  AppSettings(domain, public_services=("127.0.0.0/8",)),
                                  self.registrar,
                                  lambda aor: self.users.get(aor) is not None,
                                  CallSettings(media_address="127.0.0.1"), self.ports,
                                  media=self.media)
        self.endpoint.handler = self.app

    def feed(self, data: bytes | Request | Response, transport: str = "udp",
             source: tuple[str, int] = ("127.0.0.1", 5099)) -> None:
        raw = bytes(data) if not isinstance(data, bytes) else data
        self.endpoint.receive(raw, Target(transport, *source))

    def take(self, transport: str = "udp") -> list[Request | Response]:
        out = []
        for data, _target in self.wire[transport].sent:
            msg = parse_message(data)
            with contextlib.suppress(SipParseError):
                msg.validate()  # a stateless 400 echoes the malformed headers it answers
            out.append(msg)
        self.wire[transport].sent.clear()
        return out

    def responses(self, transport: str = "udp") -> list[Response]:
        return [m for m in self.take(transport) if isinstance(m, Response)]


def authorize(request: Request, challenge: Response, username: str, password: str) -> Request:
    """Add an Authorization header answering ``challenge`` and bump the CSeq."""
    client = DigestClient.create(username, password)
    value = client.authorization(challenge.headers.get_all("WWW-Authenticate"),
                                 request.method, str(request.uri))
    request.headers.add("Authorization", value)
    return request


def make_request(method: str, uri: str = "sip:echo@example.com", *, branch: str = "z9hG4bKt1",
                 call_id: str = "c1@test", cseq: int = 1, from_tag: str = "ft1",
                 to: str | None = None, to_tag: str | None = None, body: bytes = b"",
                 extra: list[tuple[str, str]] | None = None, contact: bool = True,
                 via_host: str = "127.0.0.1:5099", transport: str = "UDP") -> Request:
    lines = [f"{method} {uri} SIP/2.0",
             f"Via: SIP/2.0/{transport} {via_host};branch={branch};rport",
             "Max-Forwards: 70",
             f"From: <sip:alice@example.com>;tag={from_tag}",
             f"To: <{to or uri}>" + (f";tag={to_tag}" if to_tag else ""),
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} {method}"]
    if contact:
        lines.append("Contact: <sip:alice@127.0.0.1:5099>")
    for name, value in extra or []:
        lines.append(f"{name}: {value}")
    if body and not any(name.lower() == "content-type" for name, _ in extra or []):
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    request = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(request, Request)
    request.validate()
    return request


OFFER = (b"v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-16\r\n")


def ack(h: Harness, ok: Response, call_id: str = "c1@test") -> None:
    h.feed(make_request("ACK", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKack",
                        to="sip:echo@example.com", to_tag=ok.to_tag, call_id=call_id))
