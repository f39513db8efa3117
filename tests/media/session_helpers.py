"""Media sessions on memory sockets: a socket factory that binds nothing, an echo
session opened on it, and RTP packets to feed it."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.calls.services import EchoApp
from confserver.adapters.media.session import MediaEngine, MediaSession, MediaTarget
from confserver.adapters.media.udp import Address, OnDatagram
from confserver.media.codecs import default_registry
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream


class MemorySockets:
    """A socket factory that binds nothing: records what is bound and sent."""

    def __init__(self, busy: set[int] | None = None) -> None:
        self.bound: dict[int, MemorySocket] = {}
        self.sent: list[tuple[bytes, Address]] = []
        self.busy = busy or set()

    def __call__(self, host: str, port: int, on_datagram: OnDatagram, burst: int = 1) -> MemorySocket:
        if port in self.busy or port in self.bound:
            raise OSError(98, "Address already in use")
        self.bound[port] = MemorySocket(self, port, on_datagram)
        return self.bound[port]


def open_session(app: Any = None, direction: str = "sendrecv", mux: bool = False
                 ) -> tuple[MemoryReactorClock, MediaEngine, MediaSession, MemorySockets, list[str]]:
    reactor = MemoryReactorClock()
    wire = MemorySockets()
    engine = MediaEngine(reactor, "127.0.0.1", default_registry(), inactivity_timeout=30.0,
                         sockets=wire)
    stream = AudioStream(default_registry().create("PCMU"), 0, 101)
    timeouts: list[str] = []
    session = engine.open(40000, stream, MediaTarget("127.0.0.1", 50000, 50001, mux),
                          app or EchoApp(), direction, lambda: timeouts.append("timeout"))
    return reactor, engine, session, wire, timeouts


def rtp(seq: int, payload: bytes = b"\xff" * 160, pt: int = 0) -> bytes:
    return bytes(RtpPacket(pt, seq, seq * 160, 0xABC, payload))


class MemorySocket:
    def __init__(self, sockets: MemorySockets, port: int, on_datagram: OnDatagram) -> None:
        self.sockets = sockets
        self.port = port
        self.on_datagram = on_datagram

    def send(self, data: bytes, addr: Address) -> None:
        self.sockets.sent.append((data, addr))

    def drain(self, limit: int) -> None:
        pass  # nothing waits: datagrams are delivered as the test makes them

    def close(self) -> None:
        self.sockets.bound.pop(self.port, None)
