"""The shared RTP port takes in what waits on its socket before each media tick."""

from __future__ import annotations

import socket

from twisted.internet.testing import MemoryReactorClock

from confserver.adapters.calls.services import EchoApp
from confserver.adapters.media.session import MediaEngine, MediaTarget
from confserver.adapters.media.udp import reactor_sockets
from confserver.media.codecs import default_registry
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream

from ..ports import SHARED_DRAIN, free_even_run


def test_a_late_tick_plays_the_packets_waiting_unread_instead_of_concealing() -> None:
    # the memory reactor never polls: whatever the session hears, the tick's drain read
    reactor = MemoryReactorClock()
    port = free_even_run(SHARED_DRAIN, 2)
    engine = MediaEngine(reactor, "127.0.0.1", default_registry(), inactivity_timeout=30.0,
                         sockets=reactor_sockets(reactor), shared_port=port)
    engine.bind_shared_port()
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.settimeout(2.0)
    try:
        stream = AudioStream(default_registry().create("PCMU"), 0, None)
        session = engine.open(port, stream, MediaTarget("127.0.0.1", phone.getsockname()[1],
                                                        phone.getsockname()[1] + 1, False),
                              EchoApp(), "sendrecv", lambda: None)
        payload = b"\xd5" * 160

        def send(seq: int) -> None:
            phone.sendto(bytes(RtpPacket(0, seq, seq * 160, 0x1234, payload)), ("127.0.0.1", port))

        seq = 0
        for _ in range(25):  # half a second on time
            send(seq)
            seq += 1
            reactor.advance(0.02)
        # the server falls 100 ms behind: five frames' packets wait in the socket
        for _ in range(5):
            send(seq)
            seq += 1
        reactor.advance(0.1)
        for _ in range(25):
            send(seq)
            seq += 1
            reactor.advance(0.02)
        jitter = stream.jitter.stats
        assert jitter.received == seq
        assert jitter.late == 0 and jitter.lost == 0
        echoed = 0
        phone.settimeout(0.5)
        while True:
            try:
                data = phone.recv(2048)
            except TimeoutError:
                break
            if data[1] & 0x7F == 0:
                echoed += 1
        assert echoed >= seq - 5  # the jitter buffer still holds a frame or two
        engine.close(session)
    finally:
        engine.close_all()
        phone.close()
