"""The lean RTP socket against a real loopback socket and a memory reactor."""

from __future__ import annotations

import select
import socket

import pytest
from twisted.internet.testing import MemoryReactor

from confserver.server.udp import UdpSocket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_reads_one_datagram_per_wake_sends_directly_and_unregisters() -> None:
    reactor = MemoryReactor()
    got: list[tuple[bytes, tuple[str, int]]] = []
    port = free_port()
    rtp = UdpSocket(reactor, "127.0.0.1", port, lambda data, addr: got.append((data, addr)))
    assert rtp in reactor.getReaders()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(2.0)
        peer.sendto(b"one", ("127.0.0.1", port))
        peer.sendto(b"two", ("127.0.0.1", port))
        for _ in range(2):
            assert select.select([rtp.fileno()], [], [], 2.0)[0]
            rtp.doRead()
        assert [d for d, _ in got] == [b"one", b"two"]
        assert got[0][1] == peer.getsockname()
        rtp.doRead()  # nothing queued: a spurious wake is harmless
        assert len(got) == 2
        rtp.send(b"back", peer.getsockname())
        assert peer.recvfrom(100)[0] == b"back"
    rtp.send(b"x", ("127.0.0.1", 9))  # nobody listening: UDP loses it quietly
    rtp.close()
    rtp.close()
    assert rtp not in reactor.getReaders() and rtp.fileno() == -1


def test_a_bound_port_raises_oserror_and_leaks_nothing() -> None:
    reactor = MemoryReactor()
    port = free_port()
    first = UdpSocket(reactor, "127.0.0.1", port, lambda d, a: None)
    with pytest.raises(OSError):
        UdpSocket(reactor, "127.0.0.1", port, lambda d, a: None)
    assert reactor.getReaders() == [first]
    first.close()
