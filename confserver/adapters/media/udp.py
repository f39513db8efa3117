"""Lean UDP sockets for RTP, polled together behind one descriptor.

Twisted's ``listenUDP`` port reads in a loop until the socket raises
``EAGAIN`` and routes every write through several checks. At 50 packets a
second on each of hundreds of sockets that overhead dominates the media
path, so a per-call RTP socket reads exactly one datagram per readiness
event (a level-triggered poll reports it again while more are queued), a
socket shared by many calls reads what is queued up to a bound, and both
write with ``sendto`` directly.

The reactor's own dispatch of a readiness event (a logging context per call,
checks for disconnection and writes) costs more than reading the datagram, so
the media sockets are not the reactor's readers: they sit in a private epoll
set (:class:`SocketPoller`) whose one descriptor the reactor reads, and which
hands each ready socket straight to its ``doRead``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

log = logging.getLogger("switchboard.media")

Address = tuple[str, int]
OnDatagram = Callable[[bytes, Address], None]

MAX_DATAGRAM = 2048  # RTP over Ethernet never comes near this
RECEIVE_BUFFER = 256 * 1024  # rides out a reactor stall of a few hundred ms
SHARED_RECEIVE_BUFFER = 8 * 1024 * 1024  # the same, for a socket carrying thousands of calls


class DatagramSocket(Protocol):
    """What a media session needs from one bound UDP socket."""

    def send(self, data: bytes, addr: Address) -> None: ...

    def drain(self, limit: int) -> None:
        """Deliver up to ``limit`` datagrams already waiting, without the reactor."""

    def close(self) -> None: ...


class SocketFactory(Protocol):
    def __call__(self, host: str, port: int, on_datagram: OnDatagram,
                 burst: int = 1) -> DatagramSocket: ...


@implementer(IReadDescriptor)
class UdpSocket:
    """One bound, non-blocking UDP socket, read when ``reactor`` (the reactor, or a
    :class:`SocketPoller` standing in for it) finds it readable."""

    def __init__(self, reactor: Any, host: str, port: int, on_datagram: OnDatagram,
                 burst: int = 1) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # else the system maximum applies
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                RECEIVE_BUFFER if burst == 1 else SHARED_RECEIVE_BUFFER)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self._reactor = reactor
        self._sock = sock
        self._fileno = sock.fileno()
        self._on_datagram = on_datagram
        self._burst = burst
        self._read_batch: Callable[[int], list[tuple[bytes, Address]]] | None = None
        self._paused = False
        self._recvfrom = sock.recvfrom
        self._sendto = sock.sendto
        reactor.addReader(self)

    # IReadDescriptor
    def fileno(self) -> int:
        return self._fileno

    def doRead(self) -> None:
        self.drain(self._burst)

    def read_with(self, read_batch: Callable[[int], list[tuple[bytes, Address]]]) -> None:
        """Read through ``read_batch(limit)`` (the compiled relay on a shared port),
        which takes up to ``limit`` datagrams and returns those left for us."""
        self._read_batch = read_batch

    def pause(self) -> None:
        """Stop being read: the compiled relay reads this socket meanwhile."""
        if not self._paused and self._fileno != -1:
            self._reactor.removeReader(self)
            self._paused = True

    def resume(self) -> None:
        if self._paused and self._fileno != -1:
            self._reactor.addReader(self)
        self._paused = False

    def deliver(self, data: bytes, addr: Address) -> None:
        """A datagram read for us elsewhere (by the compiled relay)."""
        self._on_datagram(data, addr)

    def drain(self, limit: int) -> None:
        recvfrom, deliver = self._recvfrom, self._on_datagram
        if self._read_batch is not None:
            for data, addr in self._read_batch(limit):
                deliver(data, addr)
                if self._fileno == -1:
                    return  # the callback closed us
            return
        for _ in range(limit):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except OSError:
                return  # EAGAIN (all read, or a spurious wake), or an ICMP error surfaced
            deliver(data, addr if len(addr) == 2 else (addr[0], addr[1]))  # IPv6: 4 items
            if self._fileno == -1:
                return  # the callback closed us

    def connectionLost(self, reason: Any) -> None:
        self._close_socket()

    def logPrefix(self) -> str:
        return "rtp"

    # DatagramSocket
    def send(self, data: bytes, addr: Address) -> None:
        try:
            self._sendto(data, addr)
        except OSError as exc:
            # a full send buffer or an unreachable peer loses one packet, as UDP does
            log.debug("rtp send to %s failed: %s", addr, exc)

    def close(self) -> None:
        if self._fileno == -1:
            return
        self._reactor.removeReader(self)
        self._close_socket()

    def _close_socket(self) -> None:
        self._fileno = -1
        self._sock.close()


def port_pair_free(host: str) -> Callable[[int], bool]:
    """A probe for :class:`PortPool`: can UDP ``port`` and ``port + 1`` be bound on ``host``?"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def probe(port: int) -> bool:
        with socket.socket(family, socket.SOCK_DGRAM) as rtp, \
                socket.socket(family, socket.SOCK_DGRAM) as rtcp:
            try:
                rtp.bind((host, port))
                rtcp.bind((host, port + 1))
            except OSError:
                return False
        return True

    return probe


@implementer(IReadDescriptor)
class SocketPoller:
    """Many sockets' readiness behind one epoll descriptor, which ``reactor`` reads.

    It offers the reactor's ``addReader``/``removeReader``, so a :class:`UdpSocket`
    registers with it as it would with the reactor. When the reactor finds the
    set readable, up to ``MAX_EVENTS`` ready sockets are read, each once; any
    left over keep the descriptor readable for the reactor's next turn, so
    timers and signaling still get their share under load."""

    MAX_EVENTS = 1024

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._epoll = select.epoll()
        self._readers: dict[int, Any] = {}
        reactor.addReader(self)

    def addReader(self, reader: Any) -> None:
        fd = reader.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self._readers[fd] = reader

    def removeReader(self, reader: Any) -> None:
        fd = reader.fileno()
        if self._readers.get(fd) is reader:
            del self._readers[fd]
            with contextlib.suppress(OSError):  # already closed: epoll forgot it then
                self._epoll.unregister(fd)

    def getReaders(self) -> list[Any]:
        return list(self._readers.values())

    # IReadDescriptor
    def fileno(self) -> int:
        return self._epoll.fileno()

    def doRead(self) -> None:
        readers = self._readers
        for fd, _events in self._epoll.poll(0, self.MAX_EVENTS):
            reader = readers.get(fd)
            if reader is None:
                continue
            try:
                reader.doRead()
            except Exception:
                # as the reactor does with a reader that raises: log it and drop that
                # socket, so one broken call cannot stall or flood the others
                log.exception("rtp reader %s failed; closing it", reader.logPrefix())
                self.removeReader(reader)
                with contextlib.suppress(Exception):
                    reader.connectionLost(None)

    def connectionLost(self, reason: Any) -> None:
        # the reactor is shutting down: its readers hear of it, ours too
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            with contextlib.suppress(Exception):
                reader.connectionLost(reason)
        self._epoll.close()

    def logPrefix(self) -> str:
        return "rtp-poller"


def reactor_sockets(reactor: Any) -> SocketFactory:
    """The production factory: lean UDP sockets, polled together on ``reactor``
    (each on the reactor itself where there is no epoll)."""
    pollers: list[SocketPoller] = []

    def open_socket(host: str, port: int, on_datagram: OnDatagram, burst: int = 1) -> DatagramSocket:
        if not hasattr(select, "epoll"):
            return UdpSocket(reactor, host, port, on_datagram, burst)
        if not pollers:
            pollers.append(SocketPoller(reactor))
        return UdpSocket(pollers[0], host, port, on_datagram, burst)

    return open_socket
