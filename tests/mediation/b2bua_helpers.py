"""Mediation in memory: the harness with one gateway and bob's two devices, what it
sent, replies from the far ends, and an answered call through the gateway."""

from __future__ import annotations

from confserver.adapters.sip.endpoint import Target
from confserver.sip.message import Request, Response
from confserver.sip.transaction import make_response
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.bindings import BindingRecord
from mediation.b2bua import GatewayRouter, Mediation, OutboundRouter
from mediation.profiles import from_profile
from mediation.rates import ALWAYS
from mediation.routing import Route
from mediation.store import MediationStore
from tests.harness import OFFER, Harness, authorize, make_request

GATEWAY = ("127.0.0.1", 5098)


ANSWER = (b"v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          b"m=audio 41000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


def mediation_harness(media: bool = False, next_hop: Target | None = None) -> Harness:
    """The in-memory server with mediation, one gateway and bob's two devices (with
    ``media``: calls get media sessions on memory sockets)."""
    harness = Harness(media=media)
    harness.users.add("sip:bob@example.com", "bob-secret-1", "Bob", phone="+14255550102",
                      extension="4002")
    now = harness.clock.seconds()
    harness.bindings.apply("sip:bob@example.com", [
        BindingRecord("sip:bob@example.com", f"<sip:bob@127.0.0.1:{port}>", now + 3600,
                      f"reg{port}", 1, None, "udp", f"127.0.0.1:{port}")
        for port in (6001, 6002)], [], now)
    store = MediationStore(harness.db, clock=harness.clock.seconds)
    store.add_gateway(from_profile("gw", "generic-sip", {
        "host": GATEWAY[0], "port": GATEWAY[1], "max_calls": 1, "probe_interval": 0}))
    store.add_policy("local", ("local",), default=True)
    store.add_route(Route("all", r"\+.*", ("local",), ("gw",)))
    store.import_rates("gw", [("1", 0.01, ALWAYS)])
    mediation = Mediation(harness.app, store, harness.users, AccessNumberDirectory(harness.db),
                          harness.bindings, harness.registrar,
                          wall_clock=harness.clock.seconds, next_hop=next_hop)
    harness.app.routers.insert(0, GatewayRouter(mediation))
    harness.app.routers.append(OutboundRouter(mediation))
    harness.mediation = mediation  # type: ignore[attr-defined]
    return harness


def sent(h: Harness) -> list[tuple[Request | Response, tuple[str, int]]]:
    from confserver.sip.message import parse_message

    out = []
    for data, target in h.wire["udp"].sent:
        message = parse_message(data)
        message.validate()
        out.append((message, (target.host, target.port)))
    h.wire["udp"].sent.clear()
    return out


def reply(h: Harness, request: Request, status: int, source: tuple[str, int],
          body: bytes = b"", tag: str = "dev") -> None:
    response = make_response(request, status, "X", tag)
    response.headers.add("Contact", f"<sip:dev@{source[0]}:{source[1]}>")
    if body:
        response.headers.add("Content-Type", "application/sdp")
    response.body = body
    h.feed(bytes(response), source=source)


def authenticated_invite(h: Harness, number: str, call_id: str) -> Request:
    request = make_request("INVITE", f"sip:{number}@example.com", body=OFFER, call_id=call_id,
                           branch=f"z9hG4bK{call_id.split('@')[0]}a")
    h.feed(request)
    challenge = [m for m, _w in sent(h) if isinstance(m, Response)][-1]
    assert challenge.status == 401
    again = make_request("INVITE", f"sip:{number}@example.com", body=OFFER, call_id=call_id,
                         branch=f"z9hG4bK{call_id.split('@')[0]}b", cseq=2)
    again = authorize(again, challenge, "alice", "alice-secret")
    h.feed(again)
    return again


def established_call(h: Harness, call_id: str) -> tuple[Request, Response, Request]:
    """alice's authenticated INVITE, answered by the gateway and ACKed by alice:
    (her INVITE, our 200 to her, our INVITE to the gateway)."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    invite = authenticated_invite(h, "+14255550123", call_id)
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    reply(h, to_gateway, 200, GATEWAY, ANSWER)
    ok = next(m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY
              and m.status == 200)
    to_tag = ok.to.params["tag"] if ok.to else None
    h.feed(make_request("ACK", "sip:+14255550123@example.com", call_id=call_id, cseq=2,
                        to_tag=to_tag, branch="z9hG4bKack1"))
    return invite, ok, to_gateway
