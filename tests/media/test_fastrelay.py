"""The compiled relay (confserver/adapters/media/fastrelay.c) against the Python relay it stands in for.

Real loopback sockets: the table reads a bound UDP socket with recvmmsg and
writes with sendmmsg, so its tests send it datagrams and read what it sends.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from confserver.adapters.media import relay_offload
from confserver.media import packet_convert
from confserver.media.codecs import default_registry, g711, spandsp
from confserver.media.codecs.base import try_pcm_rate
from confserver.media.packet_convert import PayloadConverter, native_codec
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream

pytestmark = pytest.mark.skipif(not relay_offload.available(),
                                reason="fastrelay not built (make native)")
if relay_offload.available():
    from confserver.adapters.media import fastrelay
    from confserver.adapters.media.fastrelay import RelayTable


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def wire() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """The shared port, the phone and the gateway."""
    shared, phone, gateway = udp(), udp(), udp()
    shared.setblocking(False)
    yield shared, phone, gateway
    for sock in (shared, phone, gateway):
        sock.close()


def stream(ssrc: int, seq: int = 1000, ts: int = 5000) -> AudioStream:
    s = AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=ssrc)
    s._seq, s._ts = seq, ts
    return s


def rtp(seq: int, ts: int, ssrc: int, payload: bytes = b"\x55" * 160, pt: int = 0,
        marker: bool = False) -> bytes:
    return bytes(RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker))


def leg(sock: socket.socket, s: AudioStream, at: float = 0.0) -> tuple[Any, ...]:
    host, port = sock.getsockname()
    return (host, port, *s.offload_fields(), at, at)


def warmed(seed_ssrc: int, source_ssrc: int) -> AudioStream:
    """A stream that has heard two packets from ``source_ssrc`` (its source known)."""
    s = stream(seed_ssrc)
    for n in range(2):
        s.receive(rtp(n, n * 160, source_ssrc), n * 0.02)
    return s


# a source's numbering as it may really arrive: in order, a loss, reordering, a
# duplicate, a jump the source makes twice (a restart: resynchronized), wrap-around,
# a marker bit and a timestamp jump
def awkward_arrivals() -> list[tuple[int, int, bool]]:
    seqs = [*range(2, 20), 22, 21, 23, 23, 24, 9000, 9000, 9001, 9002, *range(65530, 65536),
            *range(0, 6)]
    out, ts = [], 320
    for i, seq in enumerate(seqs):
        ts += 160 if i != 30 else 16000
        out.append((seq, ts, i == 5))
    return out


def test_the_compiled_relay_numbers_and_counts_exactly_as_the_python_relay(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    shared, phone, gateway = wire
    here = shared.getsockname()
    # the Python relay: the internal leg hears the phone, the gateway leg sends
    py_in, py_out = warmed(0x1111, 0xAB), warmed(0x2222, 0xEF)
    c_in, c_out = warmed(0x1111, 0xAB), warmed(0x2222, 0xEF)
    table = RelayTable(shared.fileno())
    handle = table.lend(leg(phone, c_in), leg(gateway, c_out), 0.06)
    assert len(table) == 1
    rng = random.Random(7)
    now = 1.0
    for seq, ts, marker in awkward_arrivals():
        now += 0.02 + rng.uniform(-0.004, 0.004)  # arrival jitter, in A.8's arithmetic
        data = rtp(seq, ts, 0xAB, bytes([seq & 0xFF]) * 160, marker=marker)
        expected = py_in.relay_datagram(data, now, py_out, True)
        phone.sendto(data, here)
        assert table.drain(64, now) == []  # nothing for Python
        got = gateway.recv(2048)
        assert got == expected
    a, b = table.reclaim(handle)
    assert len(table) == 0
    c_in.restore_offload_fields(a[2:26])
    c_out.restore_offload_fields(b[2:26])
    assert c_in.offload_fields() == py_in.offload_fields()
    assert c_out.offload_fields() == py_out.offload_fields()
    assert a[26:] == (0.0, now) and b[26:] == (now, 0.0)  # relayed at, heard at
    assert table.counters()["relayed"] == len(awkward_arrivals())


def test_both_directions_cross_and_the_state_round_trips_untouched(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    shared, phone, gateway = wire
    a_stream, b_stream = warmed(0x1111, 0xAB), warmed(0x2222, 0xEF)
    a_stream.remote.transit = None  # type: ignore[union-attr]  # None passes both ways
    table = RelayTable(shared.fileno())
    a, b = leg(phone, a_stream, 0.5), leg(gateway, b_stream, 0.25)
    handle = table.lend(a, b, 0.06)
    assert table.reclaim(handle) == (a, b)  # nothing happened: exactly what was lent
    handle = table.lend(a, b, 0.06)
    phone.sendto(rtp(2, 320, 0xAB), shared.getsockname())
    gateway.sendto(rtp(2, 320, 0xEF), shared.getsockname())
    assert table.drain(64, 1.0) == []
    to_gateway, to_phone = RtpPacket.parse(gateway.recv(2048)), RtpPacket.parse(phone.recv(2048))
    assert to_gateway.ssrc == 0x2222 and to_phone.ssrc == 0x1111
    assert (to_gateway.sequence, to_phone.sequence) == (1000, 1000)
    table.reclaim(handle)


def test_an_unusual_packet_holds_the_pair_and_everything_after_it_goes_to_python(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    shared, phone, gateway = wire
    here = shared.getsockname()
    table = RelayTable(shared.fileno())
    handle = table.lend(leg(phone, warmed(1, 0xAB)), leg(gateway, warmed(2, 0xEF)), 0.06)
    stranger = udp()
    try:
        digit = rtp(3, 480, 0xAB, b"\x05\x0a\x00\xa0", pt=101)
        sequence = [(phone, rtp(2, 320, 0xAB)), (stranger, rtp(1, 1, 0x99)),
                    (phone, digit), (phone, rtp(4, 640, 0xAB)), (gateway, rtp(2, 320, 0xEF))]
        for sock, data in sequence:
            sock.sendto(data, here)
        back = table.drain(64, 1.0)
        # the stranger's packet and the pair's packets from the digit on, in order
        assert [d for d, _ in back] == [rtp(1, 1, 0x99), digit, rtp(4, 640, 0xAB),
                                        rtp(2, 320, 0xEF)]
        assert back[0][1] == stranger.getsockname() and back[1][1] == phone.getsockname()
        assert RtpPacket.parse(gateway.recv(2048)).sequence == 1000  # the one before it
        assert table.due(1.0) == [handle]
        # other unusual packets hold a pair too: RTCP on the port, another SSRC,
        # another payload type, CSRCs, a short datagram
        for unusual in (b"\x80\xc8" + bytes(26), rtp(5, 800, 0xCD), rtp(5, 800, 0xAB, pt=8),
                        bytes(RtpPacket(0, 5, 800, 0xAB, b"\x55" * 160, csrc=(9,))),
                        b"\x80\x00"):
            table.reclaim(handle)
            handle = table.lend(leg(phone, warmed(1, 0xAB)), leg(gateway, warmed(2, 0xEF)), 0.06)
            phone.sendto(unusual, here)
            assert table.drain(64, 1.0) == [(unusual, phone.getsockname())]
            assert table.due(1.0) == [handle]
    finally:
        stranger.close()


def test_a_pair_quiet_in_either_direction_is_due(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    shared, phone, gateway = wire
    table = RelayTable(shared.fileno())
    handle = table.lend(leg(phone, warmed(1, 0xAB), 1.0), leg(gateway, warmed(2, 0xEF), 1.0), 0.06)
    assert table.due(1.05) == []
    phone.sendto(rtp(2, 320, 0xAB), shared.getsockname())
    table.drain(64, 1.05)  # the gateway leg relayed at 1.05; the phone leg still at 1.0
    assert table.due(1.059) == [] and table.due(1.06) == [handle]


def test_many_pairs_lent_and_reclaimed_in_any_order_keep_finding_their_legs(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    shared, phone, gateway = wire
    table = RelayTable(shared.fileno())
    template = warmed(1, 0xAB)
    rng = random.Random(3)
    lent: dict[int, tuple[Any, ...]] = {}

    def fake(n: int) -> tuple[Any, ...]:  # addresses nobody sends from
        return (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 4000 + n % 50000,
                *template.offload_fields(), float(n), 0.0)

    for n in range(0, 6000, 2):
        lent[table.lend(fake(n), fake(n + 1), 0.06)] = (fake(n), fake(n + 1))
    for handle in rng.sample(sorted(lent), 2000):
        assert table.reclaim(handle) == lent.pop(handle)
    real = table.lend(leg(phone, warmed(1, 0xAB)), leg(gateway, warmed(2, 0xEF)), 0.06)
    for n in range(10000, 12000, 2):
        lent[table.lend(fake(n), fake(n + 1), 0.06)] = (fake(n), fake(n + 1))
    assert len(table) == len(lent) + 1
    phone.sendto(rtp(2, 320, 0xAB), shared.getsockname())
    assert table.drain(64, 1.0) == [] and gateway.recv(2048)
    for handle in list(lent):
        assert table.reclaim(handle) == lent.pop(handle)
    table.reclaim(real)
    assert len(table) == 0


def test_bad_leg_states_and_codecs_are_refused_with_the_reason(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    shared, phone, gateway = wire
    table = RelayTable(shared.fileno())
    a, b = leg(phone, warmed(1, 0xAB)), leg(gateway, warmed(2, 0xEF))
    with pytest.raises(ValueError, match="not an IPv4 address"):
        table.lend(("::1", *a[1:]), b, 0.06)
    with pytest.raises(ValueError, match="not a UDP port"):
        table.lend((a[0], 0, *a[2:]), b, 0.06)
    with pytest.raises(ValueError, match="already lent"):
        table.lend(a, a, 0.06)
    with pytest.raises(TypeError):
        table.lend(a[:5], b, 0.06)
    with pytest.raises(TypeError):
        table.lend(list(a), b, 0.06)  # type: ignore[arg-type]
    handle = table.lend(a, b, 0.06)
    with pytest.raises(ValueError, match="already lent"):
        table.lend(b, ("127.0.0.1", 9, *warmed(3, 0x1).offload_fields(), 0.0, 0.0), 0.06)
    with pytest.raises(KeyError):
        table.reclaim(handle + 1)
    table.reclaim(handle)
    with pytest.raises(KeyError):
        table.reclaim(handle)
    with pytest.raises(ValueError, match="or -1 for none"):
        RelayTable(-2)
    with pytest.raises(ValueError, match="no shared socket"):
        RelayTable(-1).lend(a, b, 0.06)
    with pytest.raises(ValueError, match="their own sockets"):
        RelayTable(-1).lend(a, b, 0.06, phone.fileno(), -1)
    # codecs it cannot convert between, or that come without their states
    with pytest.raises(ValueError, match="not a codec"):
        table.lend(a, b, 0.06, codecs=((9, 0, 0), (1, 0, 0)))
    with pytest.raises(ValueError, match="cannot be bridged"):
        table.lend(a, b, 0.06, codecs=((0, 0, 0), (1, 0, 0)))
    with pytest.raises(ValueError, match="needs its encoder and decoder"):
        table.lend(a, b, 0.06, codecs=((3, 0, 0), (1, 0, 0)))
    with pytest.raises(TypeError):
        table.lend(a, b, 0.06, codecs=((1, 0, 0),))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        table.lend(a, b, 0.06, codecs=([1, 0, 0], (2, 0, 0)))  # type: ignore[arg-type]
    assert len(table) == 0
    table.reclaim(table.lend(a, b, 0.06, codecs=((1, 0, 0), (1, 0, 0))))  # the same: copied


def test_the_g711_tables_are_those_of_the_python_codec() -> None:
    ulaw_dec, alaw_dec, ulaw_enc, alaw_enc = fastrelay.g711_tables()
    assert (np.frombuffer(ulaw_dec, dtype=np.int16) == g711.ULAW_DECODE).all()
    assert (np.frombuffer(alaw_dec, dtype=np.int16) == g711.ALAW_DECODE).all()
    assert (np.frombuffer(ulaw_enc, dtype=np.uint8) == g711.ULAW_ENCODE).all()
    assert (np.frombuffer(alaw_enc, dtype=np.uint8) == g711.ALAW_ENCODE).all()
    assert (packet_convert.CODEC_UNTOUCHED, packet_convert.CODEC_PCMU, packet_convert.CODEC_PCMA,
            packet_convert.CODEC_G722_8K) == (fastrelay.CODEC_UNTOUCHED, fastrelay.CODEC_PCMU,
                                              fastrelay.CODEC_PCMA, fastrelay.CODEC_G722_8K)


def coded_stream(codec: str, ssrc: int, seq: int = 1000, ts: int = 5000) -> AudioStream:
    made = default_registry().create(codec)
    assert try_pcm_rate(made, 8000)
    s = AudioStream(made, PAYLOAD_TYPES[codec], 101, ssrc=ssrc)
    s._seq, s._ts = seq, ts
    return s


def coded_warmed(codec: str, seed_ssrc: int, source_ssrc: int) -> AudioStream:
    s = coded_stream(codec, seed_ssrc)
    for n in range(2):
        s.receive(rtp(n, n * 160, source_ssrc, pt=PAYLOAD_TYPES[codec]), n * 0.02)
    return s


PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}


@pytest.mark.skipif(not spandsp.available(), reason="G.722 at 8 kHz is spandsp's")
@pytest.mark.parametrize("source, target", [("PCMU", "G722"), ("G722", "PCMU"),
                                            ("PCMA", "G722"), ("G722", "PCMA"),
                                            ("PCMU", "PCMA"), ("PCMA", "PCMU")])
def test_converted_packets_come_out_as_the_python_relay_converts_them(
        wire: tuple[socket.socket, socket.socket, socket.socket], source: str,
        target: str) -> None:
    """Byte for byte, under loss and reordering; and the codec states the table used
    are the Python codecs' own, so Python carries on exactly where it stopped."""
    shared, phone, gateway = wire
    here = shared.getsockname()
    py_in, py_out = coded_warmed(source, 0x1111, 0xAB), coded_warmed(target, 0x2222, 0xEF)
    c_in, c_out = coded_warmed(source, 0x1111, 0xAB), coded_warmed(target, 0x2222, 0xEF)
    py_out.relay_convert = PayloadConverter(py_in.codec, py_out.codec)
    c_out.relay_convert = PayloadConverter(c_in.codec, c_out.codec)
    table = RelayTable(shared.fileno())
    handle = table.lend(leg(phone, c_in), leg(gateway, c_out), 0.06,
                        codecs=(native_codec(c_in.codec, True), native_codec(c_out.codec, True)))
    rng = np.random.default_rng(5)
    voice = rng.normal(0, 3000, 160 * 80).clip(-32768, 32767).astype(np.int16)
    talker = default_registry().create(source)
    try_pcm_rate(talker, 8000)
    arrivals = awkward_arrivals()
    for n, (seq, ts, marker) in enumerate(arrivals):
        data = rtp(seq, ts, 0xAB, talker.encode(voice[n * 160:(n + 1) * 160]),
                   pt=PAYLOAD_TYPES[source], marker=marker)
        expected = py_in.relay_datagram(data, 1.0 + n * 0.02, py_out, True)
        phone.sendto(data, here)
        assert table.drain(64, 1.0 + n * 0.02) == []
        got = gateway.recv(2048)
        assert got == expected and got[1] & 0x7F == PAYLOAD_TYPES[target]
        assert got[12:] != data[12:]
    a, b = table.reclaim(handle)
    c_in.restore_offload_fields(a[2:26])
    c_out.restore_offload_fields(b[2:26])
    assert c_out.offload_fields() == py_out.offload_fields()
    more = rtp(40, 99999, 0xAB, talker.encode(voice[-160:]), pt=PAYLOAD_TYPES[source])
    assert c_in.relay_datagram(more, 9.0, c_out, True) == \
        py_in.relay_datagram(more, 9.0, py_out, True)


def test_a_closed_socket_reads_nothing_and_does_not_raise() -> None:
    sock = udp()
    table = RelayTable(sock.fileno())
    sock.close()
    assert table.drain(64, 0.0) == []


def test_whatever_arrives_is_relayed_or_handed_back_whole(
        wire: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    """Datagrams of any length and content, from a lent leg and from strangers:
    each is either relayed (a usual packet) or handed back exactly as it came."""
    shared, phone, gateway = wire
    here = shared.getsockname()
    table = RelayTable(shared.fileno())
    a, b = leg(phone, warmed(1, 0xAB)), leg(gateway, warmed(2, 0xEF))
    rng = random.Random(11)
    stranger = udp()
    try:
        for round_ in range(40):
            handle = table.lend(a, b, 0.06)
            sent: list[tuple[bytes, tuple[str, int]]] = []
            for _ in range(rng.randrange(1, 100)):
                sock = rng.choice((phone, phone, stranger))
                kind = rng.random()
                if kind < 0.4:  # a usual packet, perhaps with a stray bit
                    data = bytearray(rtp(rng.randrange(65536), rng.randrange(1 << 32), 0xAB,
                                         rng.randbytes(rng.randrange(0, 400))))
                    if rng.random() < 0.3:
                        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
                    datagram = bytes(data)
                else:  # anything at all, up to the largest datagram read
                    datagram = rng.randbytes(rng.choice((0, 1, 11, 12, 13, rng.randrange(2048))))
                sock.sendto(datagram, here)
                sent.append((datagram, sock.getsockname()))
            back = table.drain(4096, 1.0 + round_)
            relayed = []  # sendmmsg on loopback has delivered them before drain returns
            gateway.setblocking(False)
            while True:
                try:
                    relayed.append(gateway.recv(4096))
                except BlockingIOError:
                    break
            gateway.settimeout(2.0)
            assert len(back) + len(relayed) == len(sent)
            assert all(item in sent for item in back)  # whole, with its source
            # what was relayed kept its payload behind a 12-byte header of ours
            assert all(d[8:12] == bytes.fromhex("00000002") for d in relayed)
            table.reclaim(handle)
    finally:
        stranger.close()


def test_legs_with_sockets_of_their_own_are_read_from_and_sent_out_of_them() -> None:
    """A port pair per call: the pair is lent with its two RTP sockets, which the
    table polls; each leg's packets must come from its latched address."""
    internal_port, gateway_port, phone, gateway, stranger = udp(), udp(), udp(), udp(), udp()
    try:
        table = RelayTable(-1)
        for sock in (internal_port, gateway_port):
            sock.setblocking(False)
        a_stream, b_stream = warmed(0x1111, 0xAB), warmed(0x2222, 0xEF)
        handle = table.lend(leg(phone, a_stream), leg(gateway, b_stream), 0.06,
                            internal_port.fileno(), gateway_port.fileno())
        assert table.drain(64, 1.0) == []  # no shared socket to read
        phone.sendto(rtp(2, 320, 0xAB), internal_port.getsockname())
        gateway.sendto(rtp(2, 320, 0xEF), gateway_port.getsockname())
        assert table.poll(64, 1.0) == []
        to_gateway, there = gateway.recvfrom(2048)
        assert there == gateway_port.getsockname()  # out of the gateway leg's own socket
        assert RtpPacket.parse(to_gateway).ssrc == 0x2222
        to_phone, there = phone.recvfrom(2048)
        assert there == internal_port.getsockname() and RtpPacket.parse(to_phone).ssrc == 0x1111
        # a packet from anywhere else on the leg's socket: Python's, with the socket;
        # the pair stays lent (a stranger cannot take it back from the compiled relay)
        stranger.sendto(rtp(3, 480, 0xAB), internal_port.getsockname())
        assert table.poll(64, 1.0) == [(internal_port.fileno(), rtp(3, 480, 0xAB),
                                        stranger.getsockname())]
        assert table.due(1.0) == []
        phone.sendto(rtp(3, 480, 0xAB), internal_port.getsockname())
        assert table.poll(64, 1.0) == []  # the leg's next packet is relayed as before
        assert RtpPacket.parse(gateway.recvfrom(2048)[0]).ssrc == 0x2222
        table.reclaim(handle)
        phone.sendto(rtp(4, 640, 0xAB), internal_port.getsockname())
        assert table.poll(64, 1.0) == []  # no longer watched: the packet waits unread
        assert internal_port.recv(2048) == rtp(4, 640, 0xAB)
        assert table.fileno() > 0
    finally:
        for sock in (internal_port, gateway_port, phone, gateway, stranger):
            sock.close()
