"""Relayed legs on the shared RTP port, lent to the compiled relay and taken back.

Real loopback sockets and the memory reactor's clock: the reactor never polls,
so each media tick's drain reads what the phone and the gateway sent since the
last one. The same calls run with the compiled relay and without it, and must
come out the same.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import pytest
from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.media import relay_offload
from confserver.adapters.media.session import MediaEngine, MediaSession, MediaTarget
from confserver.adapters.media.udp import reactor_sockets
from confserver.media.codecs import default_registry, spandsp
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream
from mediation.media_bridge import GATEWAY, INTERNAL, MediaBridge

from ..ports import (
    RELAY_COMPILED,
    RELAY_COMPILED_PER_CALL,
    RELAY_PYTHON,
    RELAY_PYTHON_PER_CALL,
    free_even_run,
)

pytestmark = pytest.mark.skipif(not relay_offload.available(),
                                reason="fastrelay not built (make native)")


PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}


class SharedCall:
    """A relayed PCMU call between a phone and a gateway, both real UDP sockets."""

    def __init__(self, offload: bool, ports: range = RELAY_COMPILED, per_call: bool = False,
                 codecs: tuple[str, str] = ("PCMU", "PCMU")) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1000.0)
        # a shared port and its RTCP port, or two pairs: the internal leg's and the gateway's
        self.port = free_even_run(ports, 4 if per_call else 2)
        self.per_call = per_call
        registry = default_registry()
        self.engine = MediaEngine(self.reactor, "127.0.0.1", registry, inactivity_timeout=30.0,
                                  sockets=reactor_sockets(self.reactor),
                                  shared_port=0 if per_call else self.port,
                                  relay_offload=offload)
        self.digits: list[tuple[int, str, str]] = []
        self.bridge = MediaBridge(lambda leg, digit, how: self.digits.append((leg, digit, how)),
                                  np.random.default_rng(3))
        self.phone = self._udp()
        self.gateway = self._udp()

        self.pts = [PAYLOAD_TYPES[codec] for codec in codecs]

        def open_leg(sock: socket.socket, leg: int, ssrc: int) -> MediaSession:
            stream = AudioStream(registry.create(codecs[leg]), self.pts[leg], 101, ssrc=ssrc)
            stream._seq, stream._ts = 100 * leg + 7, 10000 * leg + 99
            stream._rng.seed(leg)  # the same RTCP schedule in both runs
            port = sock.getsockname()[1]
            port_here = self.port + 2 * leg if per_call else self.port
            return self.engine.open(port_here, stream, MediaTarget("127.0.0.1", port, port + 1,
                                                                   False),
                                    self.bridge.sides[leg], "sendrecv", lambda: None)

        # with a port pair per call, the gateway leg has the pair above the internal one's
        self.internal = open_leg(self.phone, INTERNAL, 0x1111)
        self.gateway_leg = open_leg(self.gateway, GATEWAY, 0x2222)
        self.ports = (self.port, self.port + 2) if per_call else (self.port, self.port)
        self.seq = 0
        # what the phone and the gateway heard, read each tick (a socket's buffer is small)
        self.heard: dict[str, list[bytes]] = {"phone": [], "gateway": []}

    @staticmethod
    def _udp() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    def close(self) -> None:
        self.engine.close_all()
        self.phone.close()
        self.gateway.close()

    def send(self, phone: bool = True, gateway: bool = True) -> None:
        seq = self.seq
        if phone:
            self.phone.sendto(bytes(RtpPacket(self.pts[INTERNAL], seq & 0xFFFF, seq * 160, 0xAB,
                                              bytes([seq & 0x7F]) * 160)),
                              ("127.0.0.1", self.ports[INTERNAL]))
        if gateway:
            self.gateway.sendto(bytes(RtpPacket(self.pts[GATEWAY], (seq + 500) & 0xFFFF,
                                                seq * 160 + 7, 0xEF,
                                                bytes([0x80 | seq & 0x7F]) * 160)),
                                ("127.0.0.1", self.ports[GATEWAY]))
        self.seq += 1

    def run(self, frames: int, phone: bool = True, gateway: bool = True) -> None:
        for _ in range(frames):
            self.send(phone, gateway)
            if self.per_call:  # the memory reactor never polls: what it would read
                for reader in list(self.reactor.getReaders()):
                    reader.doRead()
            self.reactor.advance(0.02)
            self._listen()

    def _listen(self) -> None:
        for name, sock in (("phone", self.phone), ("gateway", self.gateway)):
            while True:
                try:
                    self.heard[name].append(sock.recv(2048))
                except BlockingIOError:
                    break

    def received(self, sock: socket.socket) -> list[bytes]:
        """What ``sock`` heard since the last call."""
        self._listen()
        name = "phone" if sock is self.phone else "gateway"
        out, self.heard[name] = self.heard[name], []
        return out

    def offload(self) -> relay_offload.RelayOffload | None:
        if self.per_call:
            return self.engine.per_call_offload()
        return self.engine.bind_shared_port().offload


@pytest.fixture
def calls() -> Iterator[list[SharedCall]]:
    made: list[SharedCall] = []
    yield made
    for call in made:
        call.close()


NEEDS_SPANDSP = pytest.mark.skipif(not spandsp.available(), reason="G.722 at 8 kHz is spandsp's")


@pytest.fixture(params=[pytest.param(("PCMU", "PCMU"), id="relayed"),
                        pytest.param(("G722", "PCMU"), id="converted", marks=NEEDS_SPANDSP)])
def talking(calls: list[SharedCall], request: pytest.FixtureRequest) -> SharedCall:
    """A call whose pair the compiled relay carries: both sides have talked 0.4 s.
    Relayed untouched, or converted between G.722 and G.711."""
    call = SharedCall(True, codecs=request.param)
    calls.append(call)
    call.run(20)
    assert call.internal.lent
    return call


@pytest.mark.parametrize("codecs", [
    pytest.param(("PCMU", "PCMU"), id="relayed"),
    pytest.param(("G722", "PCMU"), id="G.722 to G.711", marks=NEEDS_SPANDSP),
    pytest.param(("PCMU", "PCMA"), id="mu-law to A-law")])
def test_a_relayed_pair_is_lent_and_comes_out_as_the_python_relay_does(
        calls: list[SharedCall], codecs: tuple[str, str]) -> None:
    fast = SharedCall(True, RELAY_COMPILED, codecs=codecs)
    slow = SharedCall(False, RELAY_PYTHON, codecs=codecs)
    calls += [fast, slow]
    assert fast.offload() is not None and slow.offload() is None
    heard: dict[int, tuple[list[bytes], list[bytes]]] = {}
    for call in (fast, slow):
        call.run(400)  # 8 s: RTCP falls due, the pair is reclaimed and lent again
        heard[id(call)] = (call.received(call.phone), call.received(call.gateway))
    assert fast.internal.lent and fast.internal.lent == fast.gateway_leg.lent
    counters = fast.offload().counters()  # type: ignore[union-attr]
    assert counters["relayed"] > 700 and counters["lent"] == 1
    fast.internal.reclaim()
    assert not fast.internal.lent and not fast.gateway_leg.lent
    # what each end heard (audio and RTCP) and every counter: the same both ways
    assert heard[id(fast)] == heard[id(slow)]
    for mine, theirs in ((fast.internal, slow.internal), (fast.gateway_leg, slow.gateway_leg)):
        assert mine.stream.offload_fields() == theirs.stream.offload_fields()
        assert mine.stream.stats == theirs.stream.stats
        assert mine.last_activity == theirs.last_activity
    to_gateway = [RtpPacket.parse(d) for d in heard[id(fast)][1]
                  if d[1] & 0x7F == fast.pts[GATEWAY]]
    assert len(to_gateway) >= 395 and all(p.ssrc == 0x2222 for p in to_gateway)
    assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in pairwise(to_gateway))
    if codecs[0] != codecs[1]:  # converted: the codecs' states ran on in C and in Python
        assert fast.internal.stream.relay_convert is not None
        return
    # the phone's own payloads, untouched (the first frames crossed decoded, before pairing)
    last = [p.payload[0] for p in to_gateway[-3:]]
    assert [(n - last[0]) & 0x7F for n in last] == [0, 1, 2]
    assert last[-1] in ((fast.seq - 1) & 0x7F, (fast.seq - 2) & 0x7F)  # the latest frames


def test_a_quiet_side_is_filled_by_python_and_the_pair_is_lent_again(
        talking: SharedCall) -> None:
    call = talking
    call.received(call.phone)
    comfort = call.bridge.comfort_frames[INTERNAL]
    call.run(25, gateway=False)  # the gateway stops sending (DTX, a pause)
    assert not call.internal.lent
    assert call.bridge.comfort_frames[INTERNAL] >= comfort + 20  # noise to the phone
    assert len(call.received(call.phone)) >= 20
    call.run(10)
    assert call.internal.lent  # talking both ways again


def test_digits_holds_and_the_end_of_the_call_take_the_pair_back(
        talking: SharedCall) -> None:
    call = talking
    # a digit from the phone (RFC 4733) is not the usual packet: Python takes it
    for i, end in enumerate((False, False, True)):
        event = bytes([5, (0x80 if end else 0) | 10]) + (160 * (i + 1)).to_bytes(2, "big")
        call.phone.sendto(bytes(RtpPacket(101, call.seq + i, call.seq * 160, 0xAB, event)),
                          ("127.0.0.1", call.port))
    call.seq += 3
    offload = call.offload()
    assert offload is not None
    returned = offload.counters()["returned"]
    call.reactor.advance(0.02)  # the tick's drain hands them back; the tick lends again
    assert call.digits == [(INTERNAL, "5", "rfc4733")]
    assert offload.counters()["returned"] == returned + 3
    call.run(5)
    assert call.internal.lent
    # a digit to send to the gateway: the pair comes back until it has gone out
    call.received(call.gateway)
    call.gateway_leg.send_digit("7")
    assert not call.gateway_leg.lent
    call.run(12)
    to_gateway = [RtpPacket.parse(d) for d in call.received(call.gateway)]
    assert [p for p in to_gateway if p.payload_type == 101]
    assert all((b.sequence - a.sequence) & 0xFFFF == 1 for a, b in pairwise(to_gateway))
    assert call.internal.lent
    # the gateway holds the call: nothing goes to it while held
    call.gateway_leg.direction = "recvonly"
    assert not call.internal.lent
    call.received(call.gateway)
    call.run(10)
    assert not [d for d in call.received(call.gateway) if d[1] & 0x7F == 0]
    assert not call.internal.lent
    call.gateway_leg.direction = "sendrecv"
    call.run(3)
    assert call.internal.lent
    # the end of the relay (the call ending) leaves the counters in the streams
    call.run(5)
    assert call.internal.lent
    call.engine.bind_shared_port().drain()  # the last frame's packets, still unread
    call.bridge.end_relay()
    remote = call.internal.stream.remote
    assert not call.internal.lent and remote is not None
    # every packet the phone sent, digits included, counted once; in order, none lost
    assert call.internal.stream.stats.packets_received == call.seq
    assert remote.max_seq == call.seq - 1 and remote.lost == 0


class _RefusingTable:
    """Stands in for the compiled table: refuses every pair, as a bug in it might."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.asked = 0

    def lend(self, *_args: object, **_kwargs: object) -> int:
        self.asked += 1
        raise ValueError("refused for the test")

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_pair_the_compiled_relay_refuses_goes_on_in_python(calls: list[SharedCall]) -> None:
    call = SharedCall(True)
    calls.append(call)
    offload = call.offload()
    assert offload is not None
    refusing = _RefusingTable(offload._table)
    offload._table = refusing  # type: ignore[assignment]
    call.run(30)
    assert refusing.asked == 1  # asked once, then not again
    assert not call.internal.lent and call.internal.relay_peer is call.gateway_leg
    to_gateway = [RtpPacket.parse(d) for d in call.received(call.gateway) if d[1] & 0x7F == 0]
    assert len(to_gateway) >= 25  # the call goes on, relayed in Python


def test_a_pair_the_compiled_relay_lost_keeps_the_call(talking: SharedCall) -> None:
    offload = talking.offload()
    assert offload is not None
    offload._table.reclaim(talking.internal.lent)  # behind the sessions' backs
    talking.run(3)  # the next reclaim finds nothing: logged, the call goes on
    assert talking.internal.relay_peer is talking.gateway_leg
    assert talking.received(talking.gateway)


def test_calls_with_ports_of_their_own_are_lent_with_their_sockets_and_come_out_the_same(
        calls: list[SharedCall]) -> None:
    fast = SharedCall(True, RELAY_COMPILED_PER_CALL, per_call=True)
    slow = SharedCall(False, RELAY_PYTHON_PER_CALL, per_call=True)
    calls += [fast, slow]
    heard = {}
    for call in (fast, slow):
        call.run(300)  # 6 s: RTCP falls due once on each leg
        heard[id(call)] = (call.received(call.phone), call.received(call.gateway))
    assert fast.internal.lent and slow.offload() is None
    offload = fast.offload()
    assert offload is not None and offload.counters()["relayed"] > 500
    fast.internal.reclaim()
    assert heard[id(fast)] == heard[id(slow)]
    for mine, theirs in ((fast.internal, slow.internal), (fast.gateway_leg, slow.gateway_leg)):
        assert mine.stream.offload_fields() == theirs.stream.offload_fields()
    # the reclaimed sockets are the reactor's again: the call goes on in Python
    fast.run(3)
    assert fast.internal.lent  # ...and is lent again at its next usual tick
    fast.gateway_leg.direction = "inactive"  # a hold takes it back for good
    fast.received(fast.gateway)
    fast.run(3)
    assert not fast.internal.lent
    assert not [d for d in fast.received(fast.gateway) if d[1] & 0x7F == 0]  # held: silent
