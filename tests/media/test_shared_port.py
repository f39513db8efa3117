"""Many calls on one RTP/RTCP port pair, told apart by the sender's address."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.calls.services import EchoApp
from confserver.adapters.media.session import MediaEngine, MediaPortUnavailable, MediaSession, MediaTarget
from confserver.media import rtcp
from confserver.media.codecs import default_registry
from confserver.media.stream import AudioStream

from .session_helpers import MemorySockets, rtp

SHARED = 30000


def engine_with(*targets: MediaTarget) -> tuple[MemoryReactorClock, MediaEngine, MemorySockets,
                                                list[MediaSession]]:
    reactor = MemoryReactorClock()
    wire = MemorySockets()
    engine = MediaEngine(reactor, "127.0.0.1", default_registry(), sockets=wire, shared_port=SHARED)
    sessions = [engine.open(SHARED, AudioStream(default_registry().create("PCMU"), 0, 101),
                            target, EchoApp(), "sendrecv", lambda: None) for target in targets]
    return reactor, engine, wire, sessions


def deliver(wire: MemorySockets, port: int, data: bytes, addr: tuple[str, int]) -> None:
    wire.bound[port].on_datagram(data, addr)


def test_every_call_shares_one_bound_pair() -> None:
    _, engine, wire, sessions = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                            MediaTarget("127.0.0.3", 4000, 4001, False))
    assert sorted(wire.bound) == [SHARED, SHARED + 1] and len(engine.sessions) == 2
    for session in sessions:
        engine.close(session)
    assert sorted(wire.bound) == [SHARED, SHARED + 1]  # the pair outlives its calls
    engine.close_all()
    assert wire.bound == {}


def test_packets_reach_the_call_whose_sdp_named_the_source() -> None:
    _, _, wire, (a, b) = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                     MediaTarget("127.0.0.2", 4002, 4003, False))
    deliver(wire, SHARED, rtp(0), ("127.0.0.2", 4002))
    deliver(wire, SHARED, rtp(0), ("127.0.0.2", 4000))
    assert a.stream.stats.packets_received == 1 and b.stream.stats.packets_received == 1
    assert a.latched and b.latched


def test_a_nat_rewritten_port_latches_only_when_one_call_waits_on_that_host() -> None:
    reactor, engine, wire, (a, b) = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                                MediaTarget("127.0.0.3", 4000, 4001, False))
    # at first an unknown port may belong to a call still being set up: not taken
    deliver(wire, SHARED, rtp(0), ("127.0.0.3", 61000))
    assert b.stream.stats.packets_received == 0
    reactor.advance(1.0)
    deliver(wire, SHARED, rtp(0), ("127.0.0.3", 61000))
    assert b.remote == ("127.0.0.3", 61000) and b.stream.stats.packets_received == 1
    assert a.stream.stats.packets_received == 0
    # two calls waiting on one host: an unknown port cannot be told apart, so it is dropped
    c = engine.open(SHARED, AudioStream(default_registry().create("PCMU"), 0, 101),
                    MediaTarget("127.0.0.4", 4000, 4001, False), EchoApp(), "sendrecv", lambda: None)
    d = engine.open(SHARED, AudioStream(default_registry().create("PCMU"), 0, 101),
                    MediaTarget("127.0.0.4", 4002, 4003, False), EchoApp(), "sendrecv", lambda: None)
    reactor.advance(1.0)
    deliver(wire, SHARED, rtp(0), ("127.0.0.4", 62000))
    deliver(wire, SHARED, rtp(0), ("127.0.0.9", 4000))
    assert c.stream.stats.packets_received == d.stream.stats.packets_received == 0
    assert engine.bind_shared_port().unmatched == 3


def test_replies_leave_from_the_shared_port_to_each_latched_source() -> None:
    reactor, _, wire, _ = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                      MediaTarget("127.0.0.3", 4000, 4001, False))
    for i in range(6):
        deliver(wire, SHARED, rtp(i), ("127.0.0.2", 4000))
        deliver(wire, SHARED, rtp(i), ("127.0.0.3", 4000))
        reactor.advance(0.02)
    destinations = {addr for data, addr in wire.sent if len(data) > 12 and data[1] & 0x7F == 0}
    assert destinations == {("127.0.0.2", 4000), ("127.0.0.3", 4000)}


def test_rtcp_on_the_shared_rtcp_port_by_address_or_sender_ssrc() -> None:
    reactor, _, wire, (a, b) = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                           MediaTarget("127.0.0.3", 4000, 4001, False))
    reactor.advance(1.0)
    # a: RTCP from the port the SDP named
    deliver(wire, SHARED + 1, rtcp.serialize(rtcp.ReceiverReport(0xABC)), ("127.0.0.2", 4001))
    assert a.remote_rtcp == ("127.0.0.2", 4001)
    # b: RTP latched from a NATed port, RTCP from elsewhere but with its RTP sender's SSRC
    deliver(wire, SHARED, rtp(0), ("127.0.0.3", 50000))
    report = rtcp.serialize(rtcp.SenderReport(0xABC, 0x1234567800000000, 0, 1, 160, []))
    deliver(wire, SHARED + 1, report, ("127.0.0.3", 50007))
    assert b.remote_rtcp == ("127.0.0.3", 50007)
    assert b.stream.remote is not None and b.stream.remote.last_sr_arrival is not None


def test_a_closed_call_releases_its_sources() -> None:
    _, engine, wire, (a, b) = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                          MediaTarget("127.0.0.3", 4000, 4001, False))
    deliver(wire, SHARED, rtp(0), ("127.0.0.2", 4000))
    engine.close(a)
    deliver(wire, SHARED, rtp(1), ("127.0.0.2", 4000))
    assert engine.bind_shared_port().unmatched == 1 and b.stream.stats.packets_received == 0


def test_a_taken_shared_port_is_reported() -> None:
    wire = MemorySockets(busy={SHARED + 1})
    engine = MediaEngine(MemoryReactorClock(), "127.0.0.1", default_registry(), sockets=wire,
                         shared_port=SHARED)
    with pytest.raises(MediaPortUnavailable):
        engine.bind_shared_port()
    assert wire.bound == {}


def test_on_the_shared_port_a_stranger_can_neither_move_a_call_nor_enter_it() -> None:
    """A call latched to its peer: a packet from another port of the same host (or an
    invalid one from anywhere) is dropped; the call's own packets go on to it alone."""
    reactor, engine, wire, (a, b) = engine_with(MediaTarget("127.0.0.2", 4000, 4001, False),
                                                MediaTarget("127.0.0.3", 4000, 4001, False))
    reactor.advance(1.0)
    deliver(wire, SHARED, b"\x80\x00junk", ("127.0.0.2", 61000))  # before any RTP of a's
    deliver(wire, SHARED, rtp(0), ("127.0.0.2", 4000))
    assert a.remote == ("127.0.0.2", 4000)
    for i in range(1, 10):
        deliver(wire, SHARED, rtp(i, b"\x00" * 160), ("127.0.0.2", 61000))
        deliver(wire, SHARED, rtp(i), ("127.0.0.2", 4000))
        reactor.advance(0.02)
    assert a.remote == ("127.0.0.2", 4000) and a.stream.stats.packets_received == 10
    assert b.stream.stats.packets_received == 0
    assert a.stream.stats.malformed == 1  # the junk, refused: it taught a nothing
    assert a.stray + engine.bind_shared_port().unmatched == 9
    sent_to = {addr for _, addr in wire.sent}
    assert ("127.0.0.2", 61000) not in sent_to
