"""The lean RTP socket against a real loopback socket and a memory reactor."""

from __future__ import annotations

import select
import socket

import pytest
from twisted.internet.testing import MemoryReactor

from confserver.adapters.media.udp import SocketPoller, UdpSocket


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


def test_a_poller_reads_many_sockets_behind_the_one_descriptor_the_reactor_sees() -> None:
    reactor = MemoryReactor()
    poller = SocketPoller(reactor)
    assert reactor.getReaders() == [poller]
    got: list[tuple[int, bytes]] = []
    ports = [free_port() for _ in range(3)]
    sockets = [UdpSocket(poller, "127.0.0.1", port,
                         lambda data, addr, n=n: got.append((n, data)))
               for n, port in enumerate(ports)]
    assert reactor.getReaders() == [poller] and poller.getReaders() == sockets
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        for n, port in enumerate(ports):
            peer.sendto(b"a%d" % n, ("127.0.0.1", port))
            peer.sendto(b"b%d" % n, ("127.0.0.1", port))
        for _ in range(10):
            if len(got) == 6 or not select.select([poller.fileno()], [], [], 2.0)[0]:
                break
            poller.doRead()  # one datagram from each ready socket per turn
    assert sorted(got) == [(0, b"a0"), (0, b"b0"), (1, b"a1"), (1, b"b1"), (2, b"a2"), (2, b"b2")]
    assert [data for n, data in got if n == 0] == [b"a0", b"b0"]  # in order per socket
    sockets[1].close()
    assert poller.getReaders() == [sockets[0], sockets[2]]
    # the closed socket's descriptor number may come back for a new socket
    again = UdpSocket(poller, "127.0.0.1", free_port(), lambda d, a: None)
    assert again in poller.getReaders()
    poller.connectionLost(None)  # the reactor shuts down: the sockets are closed too
    assert all(s.fileno() == -1 for s in (sockets[0], sockets[2], again))


def test_a_socket_whose_handler_raises_is_dropped_and_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    reactor = MemoryReactor()
    poller = SocketPoller(reactor)
    got: list[bytes] = []

    def broken(data: bytes, addr: tuple[str, int]) -> None:
        raise RuntimeError("bug")

    bad_port, good_port = free_port(), free_port()
    bad = UdpSocket(poller, "127.0.0.1", bad_port, broken)
    good = UdpSocket(poller, "127.0.0.1", good_port, lambda data, addr: got.append(data))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.sendto(b"x", ("127.0.0.1", bad_port))
        peer.sendto(b"y", ("127.0.0.1", good_port))
        for _ in range(10):
            if got and bad.fileno() == -1:
                break
            select.select([poller.fileno()], [], [], 2.0)
            poller.doRead()
    assert got == [b"y"] and bad.fileno() == -1
    assert poller.getReaders() == [good]
    assert "closing it" in caplog.text
    good.close()
