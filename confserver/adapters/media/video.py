"""One participant's video RTP session: packets in go to the switch, forwarded
packets go out, key frame requests (RTCP PLI/FIR) travel both ways.

Video is forwarded as it arrives (no jitter buffer, no clock): the receiving
client's own buffer smooths it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confserver.adapters.media.udp import Address, DatagramSocket, SocketFactory
from confserver.media import rtcp
from confserver.media.rtp import RtpError, RtpPacket, is_rtcp

log = logging.getLogger("switchboard.media")


class VideoSession:
    def __init__(self, sockets: SocketFactory, address: str, local_port: int,
                 remote: Address, remote_rtcp: Address, rtcp_mux: bool,
                 on_packet: Callable[[RtpPacket], None],
                 on_keyframe_request: Callable[[], None], ssrc: int, *,
                 payload_type: int | None = None, clock: Callable[[], float] | None = None,
                 relearn_after: float = 5.0) -> None:
        """The peer is learned as for audio (``MediaSession.datagram``): the SDP's
        address, or the first valid packet of the negotiated ``payload_type``; then
        only that source, until it has been silent for ``relearn_after``."""
        self.local_port = local_port
        self.remote = remote
        self.sdp_remote = remote
        self.payload_type = payload_type
        self._clock = clock
        self.relearn_after = relearn_after
        self.heard_at = float("-inf")
        self.stray = 0
        self.remote_rtcp = remote_rtcp
        self.rtcp_mux = rtcp_mux
        self.on_packet = on_packet
        self.on_keyframe_request = on_keyframe_request
        self.ssrc = ssrc  # ours, as the sender of feedback
        self.remote_ssrc: int | None = None
        self.latched = False
        self.packets_in = 0
        self.packets_out = 0
        self._fir_sequence = 0
        self._rtp: DatagramSocket = sockets(address, local_port, self._rtp_datagram)
        try:
            self._rtcp: DatagramSocket = sockets(address, local_port + 1, self._rtcp_datagram)
        except OSError:
            self._rtp.close()
            raise
        self.closed = False

    def _rtp_datagram(self, data: bytes, addr: Address) -> None:
        self._datagram(data, addr, rtcp_socket=False)

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        self._datagram(data, addr, rtcp_socket=True)

    def _from_peer(self, addr: Address, rtcp_socket: bool) -> bool:
        if rtcp_socket:
            return addr[0] == self.remote[0]
        if (addr == self.remote and self.latched) or addr == self.sdp_remote or not self.latched:
            return True
        now = self._clock() if self._clock is not None else 0.0
        return self._clock is not None and now - self.heard_at >= self.relearn_after

    def _datagram(self, data: bytes, addr: Address, rtcp_socket: bool) -> None:
        if not self._from_peer(addr, rtcp_socket):
            self.stray += 1
            return
        if is_rtcp(data):
            self.remote_rtcp = addr
            try:
                packets = rtcp.parse_compound(data)
            except rtcp.RtcpError:
                return
            if any(isinstance(p, rtcp.KeyframeRequest) for p in packets):
                self.on_keyframe_request()
            return
        if rtcp_socket:
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        if self.payload_type is not None and packet.payload_type != self.payload_type:
            return  # not the negotiated video: it teaches us nothing
        if self._clock is not None:
            self.heard_at = self._clock()
        if not self.latched or addr != self.remote:
            self.remote = addr  # symmetric RTP, as for audio
            if self.rtcp_mux:
                self.remote_rtcp = addr
            self.latched = True
        self.remote_ssrc = packet.ssrc
        self.packets_in += 1
        self.on_packet(packet)

    def send(self, data: bytes) -> None:
        if not self.closed:
            self.packets_out += 1
            self._rtp.send(data, self.remote)

    def request_keyframe(self) -> None:
        """Ask this participant's camera for a key frame: a PLI and a FIR, since
        clients honour one or the other."""
        if self.closed or self.remote_ssrc is None:
            return
        self._fir_sequence = (self._fir_sequence + 1) & 0xFF
        data = rtcp.serialize_compound([
            rtcp.ReceiverReport(self.ssrc),
            rtcp.KeyframeRequest(self.ssrc, self.remote_ssrc),
            rtcp.KeyframeRequest(self.ssrc, self.remote_ssrc, fir=True,
                                 fir_sequence=self._fir_sequence)])
        (self._rtp if self.rtcp_mux else self._rtcp).send(data, self.remote_rtcp)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            log.info("video on port %d: %d packets in, %d out", self.local_port, self.packets_in,
                     self.packets_out)
            self._rtp.close()
            self._rtcp.close()
