"""Relayed pairs lent to the compiled relay on the shared RTP port (fastrelay.c).

A relayed call's usual packet only needs counting, a new header and a send
(``AudioStream.relay_datagram``). In Python each such packet costs two socket
calls and an interpreted dispatch; :class:`RelayOffload` hands the whole way
to ``fastrelay.RelayTable``, which reads the shared port with ``recvmmsg``,
relays the usual packets of the pairs lent to it and writes them with
``sendmmsg``, and gives everything else back to Python in order.

With a port pair per call there is no shared socket: the pair's two RTP
sockets are lent with it (``UdpSocket.pause``: the table watches them in its own
epoll set, whose descriptor the reactor reads through :class:`OffloadReader`)
and given back when it is reclaimed.

The sessions stay in charge. A pair is lent (``lend``) only in the usual state:
both legs latched on IPv4, audio flowing both ways, nothing of their own to
send (a digit, RTCP), no SRTP. A pair converting its packets between G.711
and G.722 (confserver/media/packet_convert.py) is lent with its codecs, and
the table converts them with the same spandsp states. While lent, the counters and numbering that the
compiled relay updates belong to it; a session reclaims the pair
(``MediaSession.reclaim``) before it does anything else with either leg (a
packet that is not the usual one, RTCP due, a hold, a digit, the end of the
relay), and the media clock reclaims each tick the pairs that have gone quiet
in either direction (``reclaim_due``), where comfort noise and the
inactivity timeout take over as before. A pair that is still usual at its
next tick is lent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

from confserver.adapters.media.udp import Address, UdpSocket
from confserver.media.packet_convert import native_codec

if TYPE_CHECKING:
    from confserver.adapters.media.session import MediaSession

log = logging.getLogger("switchboard.media")

try:
    from confserver.adapters.media import fastrelay
except ImportError:  # not built (no C compiler): the shared port relays in Python
    fastrelay = None  # type: ignore[assignment]


def available() -> bool:
    """Is the compiled relay built (``python -m confserver.native``)?"""
    return fastrelay is not None


class RelayOffload:
    """The lent pairs of one shared RTP port (``fd``, read with ``read``), or with
    ``fd`` -1 of the calls with ports of their own (read with ``poll``)."""

    def __init__(self, fd: int, clock: Callable[[], float]) -> None:
        if fastrelay is None:
            raise RuntimeError("confserver.adapters.media.fastrelay is not built")
        self._table = fastrelay.RelayTable(fd)
        self._clock = clock
        self._pairs: dict[int, tuple[MediaSession, MediaSession]] = {}
        # per-call ports: the sockets each lent pair's packets come in on, by handle
        # and by descriptor (a datagram handed back goes to its socket's session)
        self._own: dict[int, tuple[UdpSocket, UdpSocket]] = {}
        self._by_fd: dict[int, UdpSocket] = {}

    def fileno(self) -> int:
        """The epoll descriptor of the lent pairs' own sockets."""
        return self._table.fileno()

    def __len__(self) -> int:
        return len(self._pairs)

    def counters(self) -> dict[str, int]:
        return self._table.counters()

    # ------------------------------------------------------------ socket
    def read(self, limit: int) -> list[tuple[bytes, Address]]:
        """Read up to ``limit`` datagrams; what is not relayed here comes back in order."""
        return self._table.drain(limit, self._clock())

    def poll(self, limit: int) -> None:
        """Read the lent pairs' own sockets that are ready (up to ``limit``
        datagrams); what is not relayed goes to its socket's session, in order."""
        if not self._own:
            return
        by_fd = self._by_fd
        for fd, data, addr in self._table.poll(limit, self._clock()):
            sock = by_fd.get(fd)
            if sock is not None:
                sock.deliver(data, addr)

    # ------------------------------------------------------------ pairs
    def lend(self, a: MediaSession, b: MediaSession, silent_after: float) -> bool:
        """Relay ``a`` and ``b``'s usual packets here from now on (both must be in
        the usual state: ``MediaSession.lendable``). False when the table refuses
        them (it should not): the pair goes on relaying in Python."""
        own = (a.own_rtp_socket(), b.own_rtp_socket())
        fds = (-1, -1)
        if own[0] is not None and own[1] is not None:
            fds = (own[0].fileno(), own[1].fileno())
        convert = a.stream.relay_convert is not None
        codecs = (native_codec(a.stream.codec, convert), native_codec(b.stream.codec, convert))
        try:
            handle = self._table.lend(_leg_state(a), _leg_state(b), silent_after, *fds,
                                      codecs=codecs)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            log.error("compiled relay refused the pair on ports %s:%d and %s:%d (%s); "
                      "it relays in Python", *a.remote, *b.remote, exc)
            a.lend_refused = b.lend_refused = True
            return False
        self._pairs[handle] = (a, b)
        a.lent = b.lent = handle
        if own[0] is not None and own[1] is not None:
            self._own[handle] = (own[0], own[1])
            for sock in (own[0], own[1]):
                sock.pause()
                self._by_fd[sock.fileno()] = sock
        return True

    def reclaim(self, handle: int) -> None:
        """The pair's counters and numbering back into its sessions; no longer lent."""
        a, b = self._pairs.pop(handle)
        for sock in self._own.pop(handle, ()):
            self._by_fd.pop(sock.fileno(), None)
            sock.resume()
        try:
            state_a, state_b = self._table.reclaim(handle)
        except KeyError:  # cannot happen while this class alone lends and reclaims
            log.error("compiled relay lost pair %d: its counters stay as last reclaimed",
                      handle)
            a.lent = b.lent = 0
            return
        for session, state in ((a, state_a), (b, state_b)):
            session.lent = 0
            session.stream.restore_offload_fields(state[2:26])
            session.relayed_at = state[26]
            session.last_activity = max(session.last_activity, state[27])

    def reclaim_due(self, now: float) -> None:
        """Reclaim the pairs that went quiet in either direction or met a packet
        that is not the usual one: their sessions' ticks take over."""
        for handle in self._table.due(now):
            self.reclaim(handle)

    def reclaim_all(self) -> None:
        for handle in list(self._pairs):
            self.reclaim(handle)


@implementer(IReadDescriptor)
class OffloadReader:
    """The reactor's reader of the lent pairs' own sockets (per-call ports)."""

    def __init__(self, offload: RelayOffload, burst: int) -> None:
        self._offload = offload
        self._burst = burst

    def fileno(self) -> int:
        return self._offload.fileno()

    def doRead(self) -> None:
        self._offload.poll(self._burst)

    def connectionLost(self, reason: Any) -> None:
        pass

    def logPrefix(self) -> str:
        return "rtp-relay"


def _leg_state(session: MediaSession) -> tuple[Any, ...]:
    """One leg as fastrelay.c's LEG_FORMAT reads it: its address, its stream's
    fields (``AudioStream.offload_fields``), when it last relayed and heard."""
    host, port = session.remote
    return (host, port, *session.stream.offload_fields(), session.relayed_at,
            session.last_activity)
