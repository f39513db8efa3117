"""RTP/RTCP packets against hand-assembled bytes, statistics, RTCP timing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserver.media import rtcp
from confserver.media.rtp import RtpError, RtpPacket, audio_level, is_rtcp, set_audio_level
from confserver.media.stats import ReceiverStats, ntp_from_unix, round_trip_time, rtcp_interval

# V=2 P=0 X=0 CC=0 M=1 PT=0 seq=0x1234 ts=0xdeadbeef ssrc=0x01020304 payload "ab"
BASIC = bytes.fromhex("80801234deadbeef01020304") + b"ab"
# V=2 P=1 X=1 CC=2, PT=8, two CSRCs, one-byte extension id 1 len 1 (audio level 0x95), 2 padding bytes
FULL = (bytes.fromhex("b2080001000000a000000007") + bytes.fromhex("0000000a0000000b")
        + bytes.fromhex("bede0001") + bytes.fromhex("10950000") + b"xyz" + b"\x00\x02")


def test_basic_packet_round_trip() -> None:
    p = RtpPacket.parse(BASIC)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker, p.payload) == \
        (0, 0x1234, 0xDEADBEEF, 0x01020304, True, b"ab")
    assert bytes(p) == BASIC


def test_csrc_extension_padding_round_trip() -> None:
    p = RtpPacket.parse(FULL)
    assert p.csrc == (10, 11) and p.payload == b"xyz" and p.padding == 2
    assert p.extensions == {1: b"\x95"}
    assert audio_level(p, 1) == (True, 0x15)
    assert bytes(p) == FULL


def test_audio_level_written() -> None:
    p = RtpPacket(0, 1, 2, 3, b"x")
    set_audio_level(p, 3, voice=False, level_dbov=40)
    again = RtpPacket.parse(bytes(p))
    assert audio_level(again, 3) == (False, 40)


def test_two_byte_extension() -> None:
    p = RtpPacket(96, 1, 2, 3, b"x", extensions={20: b"long value > 16 bytes!!"})
    assert RtpPacket.parse(bytes(p)).extensions == {20: b"long value > 16 bytes!!"}


@pytest.mark.parametrize("data", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 11,
                                  bytes.fromhex("83000000000000000000000000"),
                                  bytes.fromhex("90000000000000000000000000000005"),
                                  bytes.fromhex("a0000000000000000000000000")])
def test_bad_rtp_rejected(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


def test_rtcp_mux_demultiplexing() -> None:
    assert not is_rtcp(BASIC)
    assert is_rtcp(rtcp.serialize(rtcp.ReceiverReport(1)))


def test_compound_round_trip() -> None:
    block = rtcp.ReportBlock(0xAA, 25, -3, 70000, 120, 0x12345678, 65536)
    packets: list[rtcp.RtcpPacket] = [
        rtcp.SenderReport(1, ntp_from_unix(1_800_000_000.5), 160000, 500, 80000, [block]),
        rtcp.SourceDescription([(1, [(rtcp.SDES_CNAME, b"sb@example.com")])]),
        rtcp.Goodbye([1], b"hanging up"),
    ]
    data = rtcp.serialize_compound(packets)
    assert len(data) % 4 == 0
    parsed = rtcp.parse_compound(data)
    assert parsed == packets
    sdes = parsed[1]
    assert isinstance(sdes, rtcp.SourceDescription) and sdes.cname(1) == b"sb@example.com"


def test_rr_bytes() -> None:
    data = rtcp.serialize(rtcp.ReceiverReport(0x01020304))
    assert data == bytes.fromhex("80c9000101020304")


@pytest.mark.parametrize("data", [b"\x80\xc9", bytes.fromhex("80c9000501020304"),
                                  bytes.fromhex("40c9000101020304"),
                                  bytes.fromhex("81c8000101020304")])
def test_bad_rtcp_rejected(data: bytes) -> None:
    with pytest.raises(rtcp.RtcpError):
        rtcp.parse_compound(data)


def test_sequence_tracking_wraps_and_counts_loss() -> None:
    stats = ReceiverStats(ssrc=5, clock_rate=8000)
    seqs = [(65530 + i) & 0xFFFF for i in range(12) if i != 8]
    accepted = [stats.update_seq(s) for s in seqs]
    assert accepted[0] is False  # probation
    assert stats.cycles == 65536 and stats.extended_max == 65536 + 5
    assert stats.lost == 1
    block = stats.report_block(0.0)
    assert block.cumulative_lost == 1 and block.fraction_lost == 256 // 11


def test_jitter_estimate_matches_constant_delay_variation() -> None:
    stats = ReceiverStats(ssrc=5, clock_rate=8000)
    for i in range(2000):
        wobble = 0.01 if i % 2 else 0.0  # alternate 10 ms late: D = 80 ts units
        stats.update_jitter(i * 160, i * 0.02 + wobble)
    assert 75 <= stats.jitter <= 85


def test_round_trip_time() -> None:
    sent = ntp_from_unix(1000.0)
    block = rtcp.ReportBlock(1, 0, 0, 0, 0, (sent >> 16) & 0xFFFFFFFF, int(0.1 * 65536))
    rtt = round_trip_time(block, 1000.35)
    assert rtt is not None and abs(rtt - 0.25) < 0.001


def test_rtcp_interval_bounds() -> None:
    rng = random.Random(1)
    values = [rtcp_interval(2, 2, 64000 * 0.05, True, 100, False, rng) for _ in range(200)]
    assert min(values) >= 5.0 * 0.5 / 1.21828 - 1e-9
    assert max(values) <= 5.0 * 1.5 / 1.21828 + 1e-9


def test_pli_and_fir_round_trip() -> None:
    pli = rtcp.KeyframeRequest(0x1111, 0x2222)
    fir = rtcp.KeyframeRequest(0x1111, 0x3333, fir=True, fir_sequence=7)
    data = rtcp.serialize_compound([rtcp.ReceiverReport(0x1111), pli, fir])
    assert is_rtcp(data)
    parsed = rtcp.parse_compound(data)
    assert parsed[1] == pli and parsed[2] == fir
    assert data[len(rtcp.serialize(rtcp.ReceiverReport(0x1111))):][:2] == bytes([0x81, 206])
    with pytest.raises(rtcp.RtcpError):
        rtcp.parse_compound(bytes([0x81, 206, 0, 1, 0, 0, 0, 1]))  # PLI cut short


def test_one_call_per_packet_keeps_the_same_statistics_as_the_two_steps() -> None:
    # ReceiverStats.update is the per-packet shortcut: in order, wrapping, lost,
    # reordered, duplicated, a restart and a jump must all count as A.1 and A.8 say
    rng = random.Random(7)
    for _trial in range(50):
        both, one = ReceiverStats(ssrc=5, clock_rate=8000), ReceiverStats(ssrc=5, clock_rate=8000)
        seq, ts, now = rng.randrange(65536), rng.randrange(1 << 32), 100.0
        for _ in range(400):
            pick = rng.random()
            if pick < 0.02:
                seq = rng.randrange(65536)  # a restart or a jump
            elif pick < 0.05:
                seq = (seq - rng.randrange(1, 5)) & 0xFFFF  # late or duplicated
            elif pick < 0.1:
                seq = (seq + rng.randrange(2, 5)) & 0xFFFF  # lost ones in between
            else:
                seq = (seq + 1) & 0xFFFF
            ts = (ts + 160) & 0xFFFFFFFF
            now += 0.02 + rng.random() * 0.01
            both.update_seq(seq)
            both.update_jitter(ts, now)
            one.update(seq, ts, now)
            assert one == both


def test_setting_the_audio_level_of_a_received_plain_packet_leaves_others_alone() -> None:
    # a parsed packet without extensions shares one read-only empty mapping
    first = RtpPacket.parse(bytes(RtpPacket(0, 1, 160, 9, b"\xff" * 160)))
    second = RtpPacket.parse(bytes(RtpPacket(0, 2, 320, 9, b"\xff" * 160)))
    set_audio_level(first, 1, voice=True, level_dbov=30)
    assert audio_level(first, 1) == (True, 30)
    assert audio_level(second, 1) is None and not second.extensions
    assert RtpPacket.parse(bytes(first)).extensions == {1: bytes([0x80 | 30])}


def test_digits_and_comfort_noise_in_the_sources_numbering_are_not_counted_lost() -> None:
    from confserver.media.codecs import default_registry
    from confserver.media.stream import AudioStream

    stream = AudioStream(default_registry().create("PCMU"), 0, 101)
    kinds = [(0, b"\x55" * 160)] * 5 + [(101, b"\x05\x0a\x00\xa0")] * 3 + [(13, b"\x40")] \
        + [(0, b"\x55" * 160)] * 3
    for seq, (pt, payload) in enumerate(kinds):
        stream.receive(bytes(RtpPacket(pt, seq, 160 * min(seq, 5), 0xAB, payload)), seq * 0.02)
    remote = stream.remote
    assert remote is not None and remote.max_seq == len(kinds) - 1
    assert remote.lost == 0


# ------------------------------------------------------------------ round trips (hypothesis)
def test_csrcs_or_padding_without_an_extension_parse_to_a_mapping() -> None:
    """A packet with CSRCs or padding and no extension once kept the dataclass Field
    object as its extensions, and reading the audio level raised on the next tick."""
    with_csrc = RtpPacket(8, 1, 160, 7, b"\xd5" * 160, csrc=(1, 2))
    padded = RtpPacket(8, 2, 320, 7, b"\xd5" * 160, padding=4)
    for packet in (with_csrc, padded):
        parsed = RtpPacket.parse(bytes(packet))
        assert dict(parsed.extensions) == {}
        assert audio_level(parsed, 1) is None


_U32 = st.integers(0, 2**32 - 1)
_ONE_BYTE = st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=5)
_TWO_BYTE = st.dictionaries(st.integers(1, 255), st.binary(max_size=40), min_size=1,
                            max_size=5).filter(
    lambda ext: not all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in ext.items()))


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    """Packets in the form the parser returns them: the extension profile is the one
    the serializer picks for the elements (none without elements)."""
    kind = draw(st.sampled_from(["none", "one", "two"]))
    extensions: dict[int, bytes] = {}
    profile = None
    if kind == "one":
        extensions, profile = draw(_ONE_BYTE.filter(bool)), 0xBEDE
    elif kind == "two":
        extensions, profile = draw(_TWO_BYTE), 0x1000
    return RtpPacket(payload_type=draw(st.integers(0, 127)), sequence=draw(st.integers(0, 65535)),
                     timestamp=draw(_U32), ssrc=draw(_U32), payload=draw(st.binary(max_size=200)),
                     marker=draw(st.booleans()),
                     csrc=tuple(draw(st.lists(_U32, max_size=15))), extensions=extensions,
                     extension_profile=profile, padding=draw(st.integers(0, 255)))


@given(rtp_packets())
def test_rtp_round_trip(packet: RtpPacket) -> None:
    again = RtpPacket.parse(bytes(packet))
    assert again == packet
    assert bytes(again) == bytes(packet)


@given(st.binary(max_size=120))
def test_rtp_parse_of_any_bytes_is_a_packet_or_an_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert isinstance(packet.extensions.get(1, b""), bytes)


_BLOCKS = st.lists(st.builds(rtcp.ReportBlock, _U32, st.integers(0, 255),
                             st.integers(-0x800000, 0x7FFFFF), _U32, _U32, _U32, _U32),
                   max_size=31)
_SDES_ITEMS = st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=255)), max_size=4)
RTCP_PACKETS = st.one_of(
    st.builds(rtcp.SenderReport, _U32, st.integers(0, 2**64 - 1), _U32, _U32, _U32, _BLOCKS),
    st.builds(rtcp.ReceiverReport, _U32, _BLOCKS),
    st.builds(rtcp.SourceDescription, st.lists(st.tuples(_U32, _SDES_ITEMS), max_size=31)),
    st.builds(rtcp.Goodbye, st.lists(_U32, max_size=31), st.binary(max_size=255)),
    st.builds(rtcp.KeyframeRequest, _U32, _U32),
    st.builds(rtcp.KeyframeRequest, _U32, _U32, st.just(True), st.integers(0, 255)),
    st.builds(rtcp.UnknownRtcp, st.integers(205, 210).filter(lambda t: t != 206)
              | st.just(204), st.integers(0, 31),
              st.binary(max_size=64).map(lambda b: b + b"\x01" * (-len(b) % 4))),
)


@given(st.lists(RTCP_PACKETS, min_size=1, max_size=4))
def test_rtcp_compound_round_trip(packets: list[rtcp.RtcpPacket]) -> None:
    data = rtcp.serialize_compound(packets)
    assert rtcp.parse_compound(data) == packets
    assert rtcp.serialize_compound(rtcp.parse_compound(data)) == data
