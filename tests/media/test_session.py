"""MediaSession and MediaEngine with a memory reactor: latching, hold, timeout, clock."""

from __future__ import annotations

import numpy as np
import pytest
from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.calls.services import DtmfSinkApp, EchoApp, ToneApp
from confserver.adapters.media.session import MediaEngine, MediaPortUnavailable, MediaSession, MediaTarget
from confserver.media.codecs import default_registry
from confserver.media.codecs.base import Pcm
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream

from .session_helpers import MemorySockets, open_session, rtp


def test_engine_binds_rtp_and_rtcp_ports() -> None:
    _, engine, session, wire, _ = open_session()
    assert sorted(wire.bound) == [40000, 40001]
    assert list(engine.sessions.values()) == [session]
    engine.close(session)
    assert wire.bound == {}


def test_a_busy_rtcp_port_releases_the_rtp_port_and_reports_cannot_listen() -> None:
    wire = MemorySockets(busy={40001})
    engine = MediaEngine(MemoryReactorClock(), "127.0.0.1", default_registry(), sockets=wire)
    with pytest.raises(MediaPortUnavailable):
        engine.open(40000, AudioStream(default_registry().create("PCMU"), 0, None),
                    MediaTarget("127.0.0.1", 50000, 50001, False), EchoApp(), "sendrecv",
                    lambda: None)
    assert wire.bound == {} and engine.sessions == {}


def test_symmetric_rtp_latches_to_the_real_source_and_echoes() -> None:
    reactor, _, session, wire, _ = open_session()
    for i in range(10):
        session.datagram(rtp(i), ("127.0.0.9", 7777), rtcp_port=False)
        reactor.advance(0.02)
    assert session.latched and session.remote == ("127.0.0.9", 7777)
    media = [(d, a) for d, a in wire.sent if d[1] & 0x7F == 0]
    assert media and all(addr == ("127.0.0.9", 7777) for _, addr in media)


def test_hold_stops_sending_but_keeps_receiving() -> None:
    reactor, _, session, wire, timeouts = open_session(direction="recvonly")
    for i in range(20):
        session.datagram(rtp(i), ("127.0.0.9", 7777), rtcp_port=False)
        reactor.advance(0.02)
    assert [d for d, _ in wire.sent if len(d) > 12 and d[1] & 0x7F == 0] == []
    assert session.stream.stats.packets_received == 20 and timeouts == []


def test_no_media_for_30_seconds_hangs_up() -> None:
    reactor, _, session, _, timeouts = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    reactor.advance(29.0)
    for _ in range(20):
        reactor.advance(0.02)
    assert timeouts == []
    for _ in range(60):
        reactor.advance(0.02)
    assert timeouts and timeouts[0] == "timeout"


def test_rtcp_keeps_the_call_alive() -> None:
    reactor, _, session, _, timeouts = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)  # the peer, behind a NAT
    for _ in range(40):
        session.datagram(session.stream.report(reactor.seconds()), ("127.0.0.9", 7778), rtcp_port=True)
        for _ in range(50):
            reactor.advance(0.02)
    assert timeouts == []


def test_rfc4733_digits_reach_the_app() -> None:
    app = DtmfSinkApp("c1")
    _, _, session, _, _ = open_session(app)
    payloads = [bytes.fromhex("050a00a0"), bytes.fromhex("058a0320"), bytes.fromhex("058a0320")]
    for i, payload in enumerate(payloads):
        session.datagram(bytes(RtpPacket(101, i, 16000, 0xABC, payload)), ("127.0.0.9", 7777), False)
    assert app.digits == [("5", "rfc4733")]


def test_tone_app_sends_a_1khz_tone() -> None:
    reactor, _, session, wire, _ = open_session(ToneApp(1000.0))
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    for _ in range(50):
        reactor.advance(0.02)
    codec = default_registry().create("PCMU")
    pcm = np.concatenate([codec.decode(RtpPacket.parse(d).payload) for d, _ in wire.sent
                          if d[1] & 0x7F == 0][5:])
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.argmax(spectrum) * 8000 / len(pcm) - 1000) < 10


def test_one_clock_for_all_sessions_and_none_when_idle() -> None:
    reactor = MemoryReactorClock()
    engine = MediaEngine(reactor, "127.0.0.1", default_registry(), sockets=MemorySockets())
    sessions = [engine.open(40000 + 2 * i, AudioStream(default_registry().create("PCMU"), 0, None),
                            MediaTarget("127.0.0.1", 50000, 50001, False), EchoApp(), "sendrecv",
                            lambda: None) for i in range(3)]
    assert len(reactor.getDelayedCalls()) == 1  # one media clock
    for session in sessions:
        engine.close(session)
    assert reactor.getDelayedCalls() == []  # no sessions, no clock


class CountingApp:
    wants_inband_dtmf = False
    relays_audio = False
    sends_own_audio = False

    def __init__(self) -> None:
        self.frames = 0

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        self.frames += 1
        return None

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        pass


def test_late_tick_catches_up() -> None:
    app = CountingApp()
    reactor, engine, _, _, _ = open_session(app)
    reactor.advance(0.02)
    reactor.advance(0.1)  # the reactor was busy for 100 ms
    assert app.frames == 6 and engine.late_ticks == 4


# ------------------------------------------------------------------ strict source
def test_a_stranger_can_neither_move_the_stream_nor_enter_it() -> None:
    """Latched to the peer (behind a NAT: not the SDP's address), the session drops
    and counts packets from anywhere else, valid RTP or not; nothing of theirs is
    played or answered, and the peer's packets go on as before."""
    reactor, engine, session, wire, _ = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    for i in range(1, 20):
        session.datagram(rtp(i), ("127.0.0.9", 7777), rtcp_port=False)
        session.datagram(rtp(i, b"\x00" * 160), ("127.0.0.66", 6666), rtcp_port=False)
        session.datagram(session.stream.report(reactor.seconds()), ("127.0.0.66", 6667),
                         rtcp_port=True)
        reactor.advance(0.02)
    assert session.remote == ("127.0.0.9", 7777) and session.stray == 38
    assert engine.stray == 38 and session.stream.stats.packets_received == 20
    sent_to = {addr for _, addr in wire.sent}
    assert ("127.0.0.66", 6666) not in sent_to and ("127.0.0.66", 6667) not in sent_to
    echoed = [d[12:] for d, a in wire.sent if len(d) > 12 and d[1] & 0x7F == 0]
    assert echoed and all(payload != b"\x00" * 160 for payload in echoed)


@pytest.mark.parametrize("first", [
    b"\x80\x00\x00",                                              # malformed
    bytes(RtpPacket(96, 1, 160, 0x66, b"\x00" * 160)),            # a payload type not agreed
    b"not rtp at all, but long enough to look like a header",
])
def test_only_a_valid_packet_of_the_stream_teaches_the_peers_address(first: bytes) -> None:
    _, _, session, _, _ = open_session()
    session.datagram(first, ("127.0.0.66", 6666), rtcp_port=False)
    assert not session.latched and session.remote == ("127.0.0.1", 50000)
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    assert session.latched and session.remote == ("127.0.0.9", 7777)


def test_a_packet_failing_srtp_teaches_nothing() -> None:
    from confserver.media.sdes import new_crypto
    from confserver.media.srtp import SrtpContext

    ours, theirs = new_crypto(1), new_crypto(1)
    reactor = MemoryReactorClock()
    wire = MemorySockets()
    engine = MediaEngine(reactor, "127.0.0.1", default_registry(), sockets=wire)
    stream = AudioStream(default_registry().create("PCMU"), 0, 101,
                         srtp=SrtpContext(ours, theirs))
    session = engine.open(40000, stream, MediaTarget("127.0.0.1", 50000, 50001, False),
                          EchoApp(), "sendrecv", lambda: None)
    session.datagram(rtp(0), ("127.0.0.66", 6666), rtcp_port=False)  # plain: fails SRTP
    assert not session.latched
    peer = SrtpContext(theirs, ours)
    session.datagram(peer.protect(rtp(1)), ("127.0.0.9", 7777), rtcp_port=False)
    assert session.latched and session.remote == ("127.0.0.9", 7777)


def test_a_new_source_is_learned_only_after_the_old_one_fell_silent() -> None:
    reactor, engine, session, _, _ = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    reactor.advance(engine.relearn_after - 1)
    session.datagram(rtp(1), ("127.0.0.10", 8888), rtcp_port=False)
    assert session.remote == ("127.0.0.9", 7777) and session.stray == 1
    reactor.advance(1.5)  # the phone changed networks: its old address is silent
    session.datagram(rtp(2), ("127.0.0.10", 8888), rtcp_port=False)
    assert session.remote == ("127.0.0.10", 8888)


def test_the_address_the_sdp_named_is_always_heard() -> None:
    _, _, session, _, _ = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)  # learned (a NAT, say)
    session.datagram(rtp(1), ("127.0.0.1", 50000), rtcp_port=False)  # where the SDP said
    assert session.remote == ("127.0.0.1", 50000)
