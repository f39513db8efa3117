"""TCP/TLS connections and what they may hold: how many, how long to say something,
how long to stay quiet (twisted's memory transports on a fake clock)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from confserver.adapters.sip.endpoint import SipEndpoint, Target
from confserver.adapters.sip.transports import SipStreamProtocol, StreamLimits, StreamTransport

from .harness import make_request

LIMITS = StreamLimits(per_source=2, total=3, message_timeout=10.0, idle_timeout=60.0)


class Received:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Target]] = []

    def receive(self, data: bytes, source: Target) -> None:
        self.messages.append((data, source))


def setup() -> tuple[MemoryReactorClock, StreamTransport, Received]:
    reactor = MemoryReactorClock()
    stream = StreamTransport(SipEndpoint(reactor), "tcp", reactor, "127.0.0.1", 5060,
                             limits=LIMITS)
    received = Received()
    stream.endpoint = received  # type: ignore[assignment]
    stream.listen()
    return reactor, stream, received


def connect(stream: StreamTransport, host: str, port: int) -> tuple[
        SipStreamProtocol | None, StringTransport]:
    factory = stream.reactor.tcpServers[-1][1]  # what listen() gave the reactor
    proto = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    if proto is not None:
        proto.makeConnection(transport)
    return proto, transport


def test_connections_are_limited_per_source_and_in_all() -> None:
    _, stream, _ = setup()
    first, _ = connect(stream, "198.51.100.1", 40001)
    second, _ = connect(stream, "198.51.100.1", 40002)
    third, _ = connect(stream, "198.51.100.1", 40003)
    assert first is not None and second is not None and third is None
    other, _ = connect(stream, "198.51.100.2", 40001)
    assert other is not None
    assert connect(stream, "198.51.100.3", 40001)[0] is None  # three in all
    assert second is not None
    second.connectionLost()
    assert connect(stream, "198.51.100.3", 40001)[0] is not None
    assert stream.refused == 2


def test_a_connection_that_never_finishes_a_message_is_closed() -> None:
    reactor, stream, received = setup()
    silent, silent_wire = connect(stream, "198.51.100.1", 40001)
    keepalive, keepalive_wire = connect(stream, "198.51.100.2", 40001)
    trickle, trickle_wire = connect(stream, "198.51.100.3", 40001)
    assert silent is not None and keepalive is not None and trickle is not None
    data = bytes(make_request("OPTIONS", "sip:example.com"))
    for second in range(9):
        keepalive.dataReceived(b"\r\n\r\n")   # keep-alives are no message
        trickle.dataReceived(data[second:second + 1])  # a byte a second
        reactor.advance(1.0)
    assert not (silent_wire.disconnecting or keepalive_wire.disconnecting)
    reactor.advance(1.5)
    assert silent_wire.disconnected and keepalive_wire.disconnected \
        and trickle_wire.disconnected
    assert received.messages == []


def test_a_connection_that_talks_stays_and_a_quiet_one_goes_after_the_idle_timeout() -> None:
    reactor, stream, received = setup()
    phone, wire = connect(stream, "198.51.100.1", 40001)
    assert phone is not None
    data = bytes(make_request("OPTIONS", "sip:example.com"))
    phone.dataReceived(data)
    assert len(received.messages) == 1
    for _ in range(5):  # a message now and then, keep-alives between
        reactor.advance(30.0)
        phone.dataReceived(b"\r\n\r\n")
    assert not wire.disconnected
    reactor.advance(61.0)
    assert wire.disconnected
