"""Same-codec legs relay packets untouched, G.711 and G.722 legs relay them converted:
numbering, pairing, conversion and what ends it."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.media.session import MediaEngine, MediaSession, MediaTarget
from confserver.media.codecs import default_registry, spandsp
from confserver.media.codecs.base import try_pcm_rate
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream
from confserver.media.tones import RINGBACK_PLANS, CadencedTone
from mediation.media_bridge import GATEWAY, INTERNAL, MediaBridge, ParkedSide
from tests.media.session_helpers import MemorySockets

PHONE = ("127.0.0.9", 7000)     # where the internal leg's peer sends from
GATEWAY_AT = ("127.0.0.8", 8000)


def packet(seq: int, payload: bytes = b"\x55" * 160, ssrc: int = 0xAB, pt: int = 0,
           step: int = 160) -> RtpPacket:
    return RtpPacket(pt, seq & 0xFFFF, (seq * step) & 0xFFFFFFFF, ssrc, payload)


def test_relayed_packets_keep_the_payload_and_the_sources_gaps_and_order() -> None:
    out = AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=0x1111)
    first = RtpPacket.parse(out.relay_packet(packet(1000, b"\x01" * 160)))
    assert (first.ssrc, first.payload_type, first.payload) == (0x1111, 0, b"\x01" * 160)
    later = [RtpPacket.parse(out.relay_packet(packet(n))) for n in (1001, 1003, 1002, 1004)]
    assert [p.sequence - first.sequence for p in later] == [1, 3, 2, 4]  # the gap and reorder stay
    assert [(p.timestamp - first.timestamp) // 160 for p in later] == [1, 3, 2, 4]
    # a new source continues where ours stands, without a jump
    fresh = RtpPacket.parse(out.relay_packet(packet(7, ssrc=0xCD)))
    assert fresh.sequence == (later[-1].sequence + 1) & 0xFFFF
    assert fresh.timestamp == (later[-1].timestamp + 160) & 0xFFFFFFFF
    # our own packet in between (a digit, comfort noise): the relay re-anchors after it
    own = RtpPacket.parse(out.packetize(np.zeros(160, dtype=np.int16)) or b"")
    after = RtpPacket.parse(out.relay_packet(packet(8, ssrc=0xCD)))
    assert own.sequence == (fresh.sequence + 1) & 0xFFFF
    assert after.sequence == (own.sequence + 1) & 0xFFFF
    assert after.timestamp == (own.timestamp + 160) & 0xFFFFFFFF
    assert out.stats.packets_sent == 8


def test_wrap_around_of_the_sources_numbers_passes_through() -> None:
    out = AudioStream(default_registry().create("PCMU"), 0, None)
    sent = [RtpPacket.parse(out.relay_packet(packet(n))) for n in (0xFFFE, 0xFFFF, 0x10000, 0x10001)]
    assert [(p.sequence - sent[0].sequence) & 0xFFFF for p in sent] == [0, 1, 2, 3]


def test_the_one_step_relay_matches_the_general_path_and_declines_the_unusual() -> None:
    def pair() -> tuple[AudioStream, AudioStream]:
        inbound = AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=0x2222)
        return inbound, AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=0x1111)

    inbound, out = pair()
    assert inbound.relay_datagram(bytes(packet(1)), 0.0, out, True) is None  # a new source
    inbound.receive(bytes(packet(1)), 0.0)  # ...which the general path takes in first
    marked = RtpPacket(0, 2, 320, 0xAB, b"\x07" * 160, marker=True)
    seq, ts = out._seq, out._ts
    fast = inbound.relay_datagram(bytes(marked), 0.02, out, True)
    _, general = pair()
    general._seq, general._ts = seq, ts  # the same starting numbers
    assert fast == general.relay_packet(marked)  # the same bytes, marker included
    assert inbound.stats.packets_received == 2 and inbound.remote is not None
    assert inbound.remote.max_seq == 2 and out.stats.packets_sent == 1
    # counted but held back: the other side is on hold, or sending a digit of its own
    assert inbound.relay_datagram(bytes(packet(3)), 0.04, out, False) == b""
    out.send_digit("1")
    assert inbound.relay_datagram(bytes(packet(4)), 0.06, out, True) == b""
    assert inbound.stats.packets_received == 4 and out.stats.packets_sent == 1
    # left to the general path: digits, other payload types, CSRCs, RTCP, short data
    unusual = [RtpPacket(101, 5, 800, 0xAB, b"\x01\x0a\x00\xa0"), packet(5, pt=8),
               RtpPacket(0, 5, 800, 0xAB, b"\x55" * 160, csrc=(9,))]
    for candidate in [bytes(p) for p in unusual] + [b"\x80\xc8" + bytes(26), b"\x80\x00"]:
        assert inbound.relay_datagram(candidate, 0.08, out, True) is None


class Call:
    """Two legs' sessions in one engine with memory sockets, coupled by a bridge."""

    def __init__(self, internal_codec: str = "PCMU", gateway_codec: str = "PCMU",
                 gateway_inband: bool = False, internal_ptime: int = 20) -> None:
        self.reactor = MemoryReactorClock()
        self.wire = MemorySockets()
        registry = default_registry()
        self.engine = MediaEngine(self.reactor, "127.0.0.1", registry, inactivity_timeout=30.0,
                                  sockets=self.wire)
        self.digits: list[tuple[int, str]] = []
        self.bridge = MediaBridge(lambda leg, digit, _m: self.digits.append((leg, digit)),
                                  np.random.default_rng(3))
        self.bridge.sides[GATEWAY].wants_inband_dtmf = gateway_inband

        self.pts: dict[int, int] = {}

        def open_leg(port: int, codec: str, peer: tuple[str, int], leg: int) -> MediaSession:
            pt = self.pts[leg] = {"PCMU": 0, "PCMA": 8, "G722": 9}[codec]
            ptime = internal_ptime if leg == INTERNAL else 20
            stream = AudioStream(registry.create(codec), pt, 101, ptime_ms=ptime)
            return self.engine.open(port, stream, MediaTarget(peer[0], peer[1], peer[1] + 1, False),
                                    self.bridge.sides[leg], "sendrecv", lambda: None)

        self.internal = open_leg(30000, internal_codec, PHONE, INTERNAL)
        self.gateway = open_leg(30002, gateway_codec, GATEWAY_AT, GATEWAY)

    def from_phone(self, seq: int, payload: bytes = b"\x55" * 160) -> None:
        self.internal.datagram(bytes(packet(seq, payload, pt=self.pts[INTERNAL])), PHONE,
                               rtcp_port=False)

    def from_gateway(self, seq: int, payload: bytes = b"\x66" * 160) -> None:
        self.gateway.datagram(bytes(packet(seq, payload, ssrc=0xEF, pt=self.pts[GATEWAY])),
                              GATEWAY_AT, rtcp_port=False)

    def audio_to(self, addr: tuple[str, int]) -> list[RtpPacket]:
        got = [RtpPacket.parse(d) for d, a in self.wire.sent if a == addr and d[1] & 0x7F < 72]
        return got

    def run(self, frames: int, phone: bool = True, gateway: bool = True, start: int = 0) -> None:
        for i in range(start, start + frames):
            if phone:
                self.from_phone(i)
            if gateway:
                self.from_gateway(i)
            self.reactor.advance(0.02)


def test_same_codec_legs_pair_and_relay_each_packet_as_it_arrives() -> None:
    call = Call()
    call.run(5)
    assert call.bridge.relays == 1
    assert call.internal.relay_peer is call.gateway and call.gateway.relay_peer is call.internal
    call.wire.sent.clear()
    received = call.internal.stream.jitter.stats.received
    call.from_phone(100, b"\x12" * 160)  # out toward the gateway at once, before any tick
    (out,) = call.audio_to(GATEWAY_AT)
    assert out.payload == b"\x12" * 160 and out.ssrc == call.gateway.stream.ssrc
    call.from_gateway(100, b"\x34" * 160)
    (back,) = call.audio_to(PHONE)
    assert back.payload == b"\x34" * 160 and back.ssrc == call.internal.stream.ssrc
    assert call.internal.stream.jitter.stats.received == received  # no jitter buffer
    call.wire.sent.clear()
    comfort = list(call.bridge.comfort_frames)
    call.run(50, start=101)  # a second of talk both ways: one packet out per packet in
    assert len(call.audio_to(GATEWAY_AT)) == 50 and len(call.audio_to(PHONE)) == 50
    assert call.bridge.comfort_frames == comfort


def test_a_silent_side_is_filled_with_comfort_noise_and_digits_go_out_in_turn() -> None:
    call = Call()
    call.run(5)
    call.wire.sent.clear()
    call.run(25, gateway=False, start=5)  # the gateway leg stops sending (DTX, a pause)
    to_phone = call.audio_to(PHONE)
    assert len(to_phone) >= 20 and call.bridge.comfort_frames[INTERNAL] >= 20
    assert all(p.payload != b"\x66" * 160 for p in to_phone)
    call.wire.sent.clear()
    call.gateway.send_digit("5")  # the call sends a digit the phone pressed, RFC 4733
    call.run(12, start=30)
    to_gateway = [RtpPacket.parse(d) for d, a in call.wire.sent if a == GATEWAY_AT]
    events = [p for p in to_gateway if p.payload_type == 101]
    assert events and events[-1].payload[1] & 0x80  # the end packet went out
    # while the digit went out, the phone's audio was held back; afterwards it flows
    # again, numbered on after the events
    audio = [p for p in to_gateway if p.payload_type == 0]
    assert audio and audio[-1].sequence == (to_gateway[-1].sequence)
    seqs = [p.sequence for p in to_gateway]
    assert all((b - a) & 0xFFFF == 1 for a, b in pairwise(seqs))
    assert call.internal.relay_peer is call.gateway  # still relaying


def test_digits_received_still_reach_the_call_while_relaying() -> None:
    call = Call()
    call.run(5)
    for i, end in enumerate((False, False, True)):
        event = bytes([5, (0x80 if end else 0) | 10]) + (160 * (i + 1)).to_bytes(2, "big")
        digit = RtpPacket(101, 200 + i, 5 * 160, 0xAB, event)
        call.internal.datagram(bytes(digit), PHONE, rtcp_port=False)
    assert call.digits == [(INTERNAL, "5")]
    assert not [p for p in call.audio_to(GATEWAY_AT) if p.payload_type == 101]  # not relayed raw


def test_ring_back_a_new_app_or_a_closed_leg_ends_the_relay() -> None:
    call = Call()
    call.run(5)
    assert call.internal.relay_peer is call.gateway
    call.bridge.ring_back(INTERNAL, CadencedTone(RINGBACK_PLANS["us"]))
    assert call.internal.relay_peer is None and call.gateway.relay_peer is None
    call.wire.sent.clear()
    call.run(5, start=5)  # ring-back plays to the phone (not relayed gateway audio)
    assert all(p.payload != b"\x66" * 160 for p in call.audio_to(PHONE))
    assert call.bridge.relays == 1
    call.bridge.ring_back(INTERNAL, None)
    call.run(3, start=10)
    assert call.bridge.relays == 2 and call.internal.relay_peer is call.gateway
    call.gateway.app = ParkedSide()  # a transfer parks the gateway leg
    assert call.internal.relay_peer is None
    call.gateway.app = call.bridge.sides[GATEWAY]
    call.run(3, start=13)
    assert call.internal.relay_peer is call.gateway
    call.engine.close(call.gateway)
    assert call.internal.relay_peer is None and call.internal.stream.bypass is None


def test_codecs_that_do_not_convert_packet_by_packet_or_an_inband_listener_keep_decoding() -> None:
    calls = [Call(gateway_inband=True)]
    if spandsp.available():  # without spandsp, G.722 is FFmpeg's, at 16 kHz only
        calls.append(Call(internal_codec="G722", internal_ptime=30))
    for call in calls:
        call.run(10)
        assert call.bridge.relays == 0 and call.internal.relay_peer is None
        assert call.audio_to(GATEWAY_AT) and call.internal.stream.jitter.stats.received == 10


def tone_frames(count: int, frequency: float, start: int = 0) -> list[np.ndarray]:
    t = np.arange(start * 160, (start + count) * 160) / 8000
    wave = (8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return [wave[i:i + 160] for i in range(0, len(wave), 160)]


def likeness(heard: np.ndarray, sent: np.ndarray) -> float:
    """The best normalized correlation of ``heard`` with ``sent`` within 2 ms of lag."""
    best = 0.0
    for lag in range(0, 17):
        a, b = heard[lag:].astype(float), sent[:len(sent) - lag].astype(float)
        best = max(best, float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9)))
    return best


@pytest.mark.skipif(not spandsp.available(), reason="G.722 at 8 kHz is spandsp's")
@pytest.mark.parametrize("internal, gateway", [("G722", "PCMU"), ("PCMU", "G722"),
                                               ("PCMA", "PCMU"), ("G722", "PCMA")])
def test_g711_and_g722_legs_pair_and_convert_each_packet_as_it_arrives(
        internal: str, gateway: str) -> None:
    call = Call(internal_codec=internal, gateway_codec=gateway)
    registry = default_registry()
    coders = {leg: registry.create(codec) for leg, codec in ((INTERNAL, internal),
                                                             (GATEWAY, gateway))}
    for codec in coders.values():
        assert try_pcm_rate(codec, 8000)  # the far ends' own codecs, at 8 kHz
    phone_tone, gateway_tone = tone_frames(150, 440), tone_frames(150, 1000)
    for i in range(150):
        call.from_phone(i, coders[INTERNAL].encode(phone_tone[i]))
        call.from_gateway(i, coders[GATEWAY].encode(gateway_tone[i]))
        call.reactor.advance(0.02)
        if i == 20:
            assert call.bridge.relays == 1 and call.internal.relay_peer is call.gateway
            assert call.internal.stream.relay_convert is not None
            received = call.internal.stream.jitter.stats.received
            call.wire.sent.clear()
    assert call.internal.stream.jitter.stats.received == received  # no jitter buffer
    for leg, to, tone in ((GATEWAY, GATEWAY_AT, phone_tone), (INTERNAL, PHONE, gateway_tone)):
        packets = call.audio_to(to)
        assert len(packets) == 129  # one out for each in, as it arrived
        assert all(p.payload_type == call.pts[leg] and len(p.payload) == 160 for p in packets)
        assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in pairwise(packets))
        assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 160 for a, b in pairwise(packets))
        decoder = registry.create(call.gateway.stream.codec.name if leg == GATEWAY
                                  else call.internal.stream.codec.name)
        try_pcm_rate(decoder, 8000)
        heard = np.concatenate([decoder.decode(p.payload) for p in packets])
        # the far end hears the other's tone: the last second, after its decoder settled
        assert likeness(heard[-8000:], np.concatenate(tone[-50:])) > 0.97
