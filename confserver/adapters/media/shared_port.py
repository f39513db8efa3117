"""One RTP/RTCP port pair for every call, demultiplexed by the sender's address.

With a port pair per call, each packet costs the server a readiness event
and a dispatch of its own; with one pair, a burst of packets from many calls
is read back to back. Every call's SDP names the same port, so incoming
packets are told apart by where they come from:

1. a source already latched to a session goes to that session;
2. otherwise, to the session that is still waiting for its first packet and
   whose SDP named exactly that address;
3. otherwise, to the only session whose SDP named that host and which has
   waited at least a second without hearing from the address it named (a NAT
   rewrote the port; the wait keeps a call whose session is still being set
   up from losing its first packets to a neighbour on the same host);
4. RTCP on the separate RTCP port: the address the SDP named for RTCP, the
   port above a latched RTP source, or the sender SSRC of a session's stream.

Anything else is dropped and counted: a packet that cannot be told apart
must never reach the wrong call.

On IPv4, when the compiled relay is built (``relay_offload.py``), the RTP socket
is read by it: the usual packets of relayed pairs lent to it go straight out
again, and every other datagram comes here as before.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from confserver.adapters.media import relay_offload
from confserver.adapters.media.relay_offload import RelayOffload
from confserver.adapters.media.udp import Address, DatagramSocket, SocketFactory

if TYPE_CHECKING:
    from confserver.adapters.media.session import MediaSession

log = logging.getLogger("switchboard.media")

# datagrams read per readiness event: enough to drain a tick's burst from
# thousands of calls in a few wakes, few enough to let the clock and SIP run
SHARED_BURST = 256
NAT_LATCH_AFTER = 1.0  # s a session waits for its own address before taking another port


DRAIN_LIMIT = 4096  # datagrams taken in before a tick; the rest wait for the reactor


class _SessionEnd:
    """What one session sees as its socket: sends go out of the shared one."""

    def __init__(self, port: SharedRtpPort, sock: DatagramSocket, session: MediaSession) -> None:
        self._port = port
        self._sock = sock
        self._session = session
        # every packet a session sends goes out here: straight to the shared socket
        self.send: Callable[[bytes, Address], None] = sock.send

    def drain(self, limit: int) -> None:
        self._sock.drain(limit)

    def close(self) -> None:
        self._port.detach(self._session)


class SharedRtpPort:
    def __init__(self, sockets: SocketFactory, host: str, port: int,
                 clock: Callable[[], float] | None = None) -> None:
        """``clock``: the media clock's time, for the compiled relay; None keeps
        every packet in Python."""
        self.host = host
        self.port = port
        self._rtp = sockets(host, port, self._rtp_datagram, SHARED_BURST)
        try:
            self._rtcp = sockets(host, port + 1, self._rtcp_datagram, SHARED_BURST)
        except OSError:
            self._rtp.close()
            raise
        self.offload: RelayOffload | None = None
        read_with = getattr(self._rtp, "read_with", None)
        if clock is not None and ":" not in host and read_with is not None \
                and relay_offload.available():
            self.offload = RelayOffload(self._rtp.fileno(), clock)  # type: ignore[attr-defined]
            read_with(self.offload.read)
        self._by_source: dict[Address, MediaSession] = {}  # learned RTP sources
        self._learned: dict[MediaSession, Address] = {}     # and the other way round
        self._by_rtcp_source: dict[Address, MediaSession] = {}
        # what each session's SDP named: looked up, never scanned (a flood of packets
        # from unknown addresses must not cost a walk over every call)
        self._by_sdp: dict[Address, set[MediaSession]] = {}
        self._by_sdp_host: dict[str, set[MediaSession]] = {}
        self._by_sdp_rtcp: dict[Address, set[MediaSession]] = {}
        self._sessions: set[MediaSession] = set()
        self.unmatched = 0

    # ------------------------------------------------------------ sessions
    def attach(self, session: MediaSession) -> tuple[DatagramSocket, DatagramSocket]:
        self._sessions.add(session)
        self._index(session)
        return _SessionEnd(self, self._rtp, session), _SessionEnd(self, self._rtcp, session)

    def _index(self, session: MediaSession) -> None:
        self._by_sdp.setdefault(session.sdp_remote, set()).add(session)
        self._by_sdp_host.setdefault(session.sdp_remote[0], set()).add(session)
        self._by_sdp_rtcp.setdefault(session.sdp_remote_rtcp, set()).add(session)

    def _unindex(self, session: MediaSession, sdp: Address, rtcp: Address) -> None:
        for table, key in ((self._by_sdp, sdp), (self._by_sdp_rtcp, rtcp)):
            members = table.get(key)
            if members is not None:
                members.discard(session)
                if not members:
                    del table[key]
        hosts = self._by_sdp_host.get(sdp[0])
        if hosts is not None:
            hosts.discard(session)
            if not hosts:
                del self._by_sdp_host[sdp[0]]

    def retargeted(self, session: MediaSession, old_sdp: Address, old_rtcp: Address) -> None:
        """The signalling named a new address for ``session`` (a re-INVITE)."""
        if session in self._sessions:
            self._unindex(session, old_sdp, old_rtcp)
            self._index(session)

    def drain(self) -> None:
        """Take in the RTP already waiting on the shared socket. Run before each media
        tick: a tick the reactor started late would otherwise play out (conceal) frames
        whose packets sit unread in the socket, and then discard them as late."""
        self._rtp.drain(DRAIN_LIMIT)

    def reclaim_due(self, now: float) -> None:
        """Before the sessions' ticks: pairs the compiled relay found quiet or unusual
        go back to their sessions."""
        if self.offload is not None and len(self.offload):
            self.offload.reclaim_due(now)

    def detach(self, session: MediaSession) -> None:
        if session not in self._sessions:
            return
        if session.lent:
            session.reclaim()
        self._sessions.discard(session)
        self._unindex(session, session.sdp_remote, session.sdp_remote_rtcp)
        learned = self._learned.pop(session, None)
        if learned is not None and self._by_source.get(learned) is session:
            del self._by_source[learned]
        for addr in [a for a, s in self._by_rtcp_source.items() if s is session]:
            del self._by_rtcp_source[addr]

    def close(self) -> None:
        if self.offload is not None:
            self.offload.reclaim_all()
        self._rtp.close()
        self._rtcp.close()

    # ------------------------------------------------------------ input
    def _rtp_datagram(self, data: bytes, addr: Address) -> None:
        session = self._by_source.get(addr)
        if session is None:
            session = self._match_rtp(addr)
            if session is None:
                self._drop(addr)
                return
        session.datagram(data, addr, False)
        if session.latched and session.remote == addr and self._learned.get(session) != addr:
            # the session learned (or moved to) this source: its packets come straight here
            old = self._learned.get(session)
            if old is not None and self._by_source.get(old) is session:
                del self._by_source[old]
            self._by_source[addr] = session
            self._learned[session] = addr

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        session = self._by_rtcp_source.get(addr)
        if session is None:
            session = self._match_rtcp(addr, data)
            if session is None:
                self._drop(addr)
                return
            self._by_rtcp_source[addr] = session
        session.datagram(data, addr, True)

    def _match_rtp(self, addr: Address) -> MediaSession | None:
        """A session that may learn ``addr``: the one whose SDP named exactly that
        address, else the only one whose SDP named that host and which may take a
        source of another port (not heard from its own for NAT_LATCH_AFTER, or its
        learned source silent for the relearning window)."""
        for session in self._by_sdp.get(addr, ()):
            return session
        candidates = [session for session in self._by_sdp_host.get(addr[0], ())
                      if self._may_learn(session)]
        return candidates[0] if len(candidates) == 1 else None

    def _may_learn(self, session: MediaSession) -> bool:
        now = float(session.engine.reactor.seconds())
        if session.latched:
            return now - session.last_activity >= session.engine.relearn_after
        return now - session.opened_at >= NAT_LATCH_AFTER

    def _match_rtcp(self, addr: Address, data: bytes) -> MediaSession | None:
        for session in self._by_sdp_rtcp.get(addr, ()):
            return session
        beside_rtp = self._by_source.get((addr[0], addr[1] - 1))
        if beside_rtp is not None:
            return beside_rtp
        if len(data) >= 8:
            (sender,) = struct.unpack_from("!I", data, 4)
            for candidate in self._by_sdp_host.get(addr[0], ()):
                remote = candidate.stream.remote
                if remote is not None and remote.ssrc == sender and candidate.remote[0] == addr[0]:
                    return candidate
        return None

    def _drop(self, addr: Address) -> None:
        self.unmatched += 1
        if self.unmatched & (self.unmatched - 1) == 0:  # 1st, 2nd, 4th, 8th ...: no log flood
            log.info("shared RTP port %d: packet from %s:%d matches no call (%d so far)",
                     self.port, addr[0], addr[1], self.unmatched)
