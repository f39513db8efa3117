"""RTP sockets and the one media clock (Twisted side of the media core).

Every media session is a passive port pulled by a single 20 ms clock, as in
pjmedia's conference bridge: on each tick a session takes the next frame out
of its jitter buffer, hands it to its app (echo, tone, DTMF sink, later the
mixer) and sends what the app returns. Sockets only feed packets in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.media import relay_offload as offload_module
from confserver.adapters.media.relay_offload import OffloadReader, RelayOffload
from confserver.adapters.media.shared_port import DRAIN_LIMIT, SHARED_BURST, SharedRtpPort
from confserver.adapters.media.udp import Address, DatagramSocket, SocketFactory, UdpSocket, reactor_sockets
from confserver.adapters.media.wav import WavRecorder, WavSource
from confserver.media.codecs import CodecRegistry
from confserver.media.codecs.base import AudioCodec, Pcm
from confserver.media.dtmf import DetectorBank, DtmfDetector, tone_for
from confserver.media.frame_clock import Frame, FrameClock
from confserver.media.packet_convert import PayloadConverter, convertible
from confserver.media.resample import Resampler
from confserver.media.rtp import RtpPacket
from confserver.media.srtp import SrtpContext
from confserver.media.stream import NOTHING, REFUSED, AudioStream

log = logging.getLogger("switchboard.media")

# a relaying session that has had nothing to relay for this many frames sends what
# its app gives instead (comfort noise), so the far end never hears a dead line
RELAY_SILENT_FRAMES = 3
MAX_FRAMES_BEHIND = 5  # a stall longer than this many frames drops the rest
FRAME_MS = 20  # the media clock's tick: every session pulls and sends this much audio


class MediaPortUnavailable(Exception):
    """An RTP/RTCP port could not be bound (another process holds it)."""

    def __init__(self, address: str, port: int, error: OSError) -> None:
        super().__init__(f"cannot bind RTP port {address}:{port}: {error.strerror or error}")
        self.address = address
        self.port = port
        self.error = error


class MediaApp(Protocol):
    """What a call does with its audio."""

    wants_inband_dtmf: bool
    # sends back exactly what it receives: the session may relay payloads untouched
    relays_audio: bool
    # something else (a conference bridge) sends this session's audio with send_payload
    sends_own_audio: bool

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        """Receive 20 ms (None before audio starts); return 20 ms to send, or None."""
        ...

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        """A digit arrived (``session`` is None for SIP INFO before media starts)."""
        ...


@dataclass
class MediaTarget:
    """Where the peer said it receives (SDP), until latching learns better."""

    host: str
    port: int
    rtcp_port: int
    rtcp_mux: bool


class MediaSession:
    def __init__(self, engine: MediaEngine, local_port: int, stream: AudioStream,
                 target: MediaTarget, app: MediaApp, direction: str,
                 on_timeout: Callable[[], None]) -> None:
        self.engine = engine
        self.local_port = local_port
        self.stream = stream
        # relaying (see relay_with): the session whose received audio this one sends
        self.relay_peer: MediaSession | None = None
        self.relayed_at = 0.0
        # the negotiated terms the stream was built from (the call's to compare)
        self.negotiated: tuple[object, ...] = ()
        # while a relayed pair's usual packets are moved by the compiled relay: its
        # handle (see relay_offload.py; 0 when not lent), and that relay, when the
        # session is on a shared port that has one
        self.lent = 0
        self.lend_refused = False  # the compiled relay refused this session: not again
        self._offload: RelayOffload | None = None
        self.app = app
        self.sending = False  # set with direction: this side sends audio (read every frame)
        self.direction = direction
        self.on_timeout = on_timeout
        self.remote = (target.host, target.port)
        self.sdp_remote = self.remote  # where the signalling says the peer receives
        self.remote_rtcp = (target.host, target.port if target.rtcp_mux else target.rtcp_port)
        self.sdp_remote_rtcp = self.remote_rtcp
        self._shared: SharedRtpPort | None = None  # the port it shares, if any
        self.rtcp_mux = target.rtcp_mux
        self.latched = False
        self.stray = 0  # datagrams from addresses that are not the peer's, dropped
        self._seconds: Callable[[], float] = engine.reactor.seconds
        self.opened_at: float = self._seconds()
        self.last_activity: float = self.opened_at
        self.closed = False
        self.serial = 0
        self._rtp: DatagramSocket | None = None
        self._rtcp: DatagramSocket | None = None
        self._inband: list[Pcm] = []  # queued in-band DTMF frames, sent instead of app audio
        self._detector: DtmfDetector | None = None
        self._to_8k: Resampler | None = None
        # G.711 payloads can reach the detector undecoded (decoded with all the others)
        self._decode_table: Any = getattr(stream.codec, "decode_table", None)
        if app.wants_inband_dtmf:
            self._detector = DtmfDetector()
            self._to_8k = Resampler(stream.codec.sample_rate, 8000)

    @property
    def app(self) -> MediaApp:
        return self._app

    @app.setter
    def app(self, app: MediaApp) -> None:
        # a relay was set up by the app it pairs this session for: another app ends it
        self.end_relay()
        self._app = app

    @property
    def direction(self) -> str:
        """The SDP direction of our side: sendrecv, sendonly, recvonly or inactive."""
        return self._direction

    @direction.setter
    def direction(self, direction: str) -> None:
        if self.lent:
            self.reclaim()  # a held leg sends nothing: no longer the usual state
        self._direction = direction
        self.sending = direction in ("sendrecv", "sendonly")

    @property
    def listens_inband(self) -> bool:
        """An in-band DTMF detector hears this session's audio."""
        return self._detector is not None

    # ------------------------------------------------------------ relay
    def relay_with(self, peer: MediaSession) -> None:
        """Pair this session with ``peer`` (same codec, or one its packets convert to
        one by one: packet_convert.py): what either receives goes out of the other at
        once, payload untouched or converted, with no jitter buffer or resampling in
        between. The app is asked for audio only while the other side is silent (to
        fill in comfort noise); digits still reach the app and go out in turn.
        Ended by ``end_relay`` (either session), a change of app, or closing."""
        self.end_relay()
        peer.end_relay()
        ours, theirs = self.stream.codec, peer.stream.codec
        converted = ours.name != theirs.name
        if converted and not convertible(ours, theirs):
            raise ValueError(f"{ours.name} and {theirs.name} packets do not convert")
        log.debug("media on ports %d and %d relayed %s", self.local_port, peer.local_port,
                  f"converting {ours.name} <-> {theirs.name} packet by packet" if converted
                  else f"untouched ({ours.name})")
        now = self.engine.reactor.seconds()
        for session, other in ((self, peer), (peer, self)):
            session.relay_peer = other
            session.relayed_at = now
            session.stream.bypass = other.relay
            session.stream.relay_convert = PayloadConverter(
                other.stream.codec, session.stream.codec) if converted else None

    def end_relay(self) -> None:
        """Back to the jitter buffer and the app on both sessions of the pair."""
        peer = self.relay_peer
        if peer is None:
            return
        if self.lent:
            self.reclaim()
        for session in (self, peer):
            session.relay_peer = None
            session.stream.bypass = None
            session.stream.relay_convert = None

    def reclaim(self) -> None:
        """Take this session's pair back from the compiled relay, counters and
        numbering up to date (it then relays in Python until lent again)."""
        if self.lent and self._offload is not None:
            self._offload.reclaim(self.lent)

    def lendable(self, now: float) -> bool:
        """This side of a relayed pair is in the usual state the compiled relay
        serves: latched on IPv4, sending, its peer's audio arriving, no digit or
        RTCP of its own due, no SRTP."""
        stream = self.stream
        remote = stream.remote
        return (self._offload is not None and not self.lend_refused and self.latched
                and self.sending
                and not self.closed and not self._inband and not stream.dtmf_pending
                and stream.srtp is None and remote is not None and remote.initialized
                and stream.payload_type != stream.dtmf_payload_type
                and ":" not in self.remote[0] and now < stream.next_rtcp_at
                and now - self.relayed_at < RELAY_SILENT_FRAMES * stream.ptime_ms / 1000)

    def own_rtp_socket(self) -> UdpSocket | None:
        """The RTP socket of this session alone (a port pair per call), if it has one."""
        return self._rtp if isinstance(self._rtp, UdpSocket) else None

    def _lend_pair(self, now: float) -> None:
        peer = self.relay_peer
        offload = self._offload
        if peer is None or offload is None or peer._offload is not offload or self.lent \
                or not self.lendable(now) or not peer.lendable(now):
            return
        silent_after = RELAY_SILENT_FRAMES * min(self.stream.ptime_ms, peer.stream.ptime_ms) / 1000
        offload.lend(self, peer, silent_after)

    def relay(self, packet: RtpPacket, now: float) -> None:
        """An audio packet the paired session received: out of this one."""
        self.relayed_at = now
        stream = self.stream
        if self._inband or stream.dtmf_pending or self.closed \
                or not self.sending:
            return  # a digit being sent replaces the audio; a held call sends none
        self._send(stream.relay_packet(packet), self.remote)

    def _relay_tick(self, now: float) -> None:
        own = bool(self._inband) or self.stream.dtmf_pending
        if own or now - self.relayed_at >= RELAY_SILENT_FRAMES * self.stream.ptime_ms / 1000:
            # a digit goes out in its turn; while the paired session hears nothing (DTX,
            # a hold, a pause in its sender) the app fills in, as on the jitter-buffer path
            sending = self.sending
            if self._inband:
                out: Pcm | None = self._inband.pop(0)
            else:
                out = None if own else self.app.on_frame(self, None, now)
            data = self.stream.packetize(out if sending else None)
            if data is not None and sending:
                self._send(data, self.remote)
        self._send_rtcp_when_due(now)

    def renegotiate(self, codec: AudioCodec, payload_type: int, dtmf_payload_type: int | None,
                    remote_ptime_ms: int, srtp: SrtpContext | None) -> None:
        """The call's re-INVITE settled another codec or other keys: the stream takes
        them, and whatever was built for the old codec is rebuilt."""
        self.end_relay()
        self.stream.renegotiate(codec, payload_type, dtmf_payload_type, remote_ptime_ms, srtp)
        self._decode_table = getattr(codec, "decode_table", None)
        if self._detector is not None:
            self._to_8k = Resampler(codec.sample_rate, 8000)
        self._inband.clear()

    def set_pcm_rate(self, rate: int) -> bool:
        """The stream's codec works at ``rate`` from now on, if it can (see
        ``AudioStream.set_pcm_rate``); what listens to its audio follows."""
        if self.lent:
            self.reclaim()
        if self.stream.relay_convert is not None and self.stream.codec.sample_rate != rate:
            self.end_relay()  # converting packet by packet needs 8 kHz (packet_convert.py)
        if not self.stream.set_pcm_rate(rate):
            return False
        if self._detector is not None:
            self._to_8k = Resampler(rate, 8000)
        return True

    @property
    def dtmf_in_burst(self) -> bool:
        """The in-band detector is hearing a tone pair right now (it may become a digit)."""
        return self._detector is not None and self._detector.in_burst

    def attach(self, shared: SharedRtpPort) -> None:
        """Use the engine's shared port pair instead of a pair of its own."""
        self._shared = shared
        self._rtp, self._rtcp = shared.attach(self)
        self._offload = shared.offload

    def listen(self, address: str, sockets: SocketFactory) -> None:
        """Bind the RTP port and the one above it for RTCP (both, or neither)."""
        try:
            self._rtp = sockets(address, self.local_port, self._rtp_datagram)
            self._rtcp = sockets(address, self.local_port + 1, self._rtcp_datagram)
            if isinstance(self._rtp, UdpSocket):
                self._offload = self.engine.per_call_offload()
        except OSError as exc:
            if self._rtp is not None:
                self._rtp.close()
                self._rtp = None
            raise MediaPortUnavailable(address, self.local_port, exc) from exc

    def _rtp_datagram(self, data: bytes, addr: Address) -> None:
        self.datagram(data, addr, False)

    def _rtcp_datagram(self, data: bytes, addr: Address) -> None:
        self.datagram(data, addr, True)

    def _send(self, data: bytes, addr: Address, rtcp_socket: bool = False) -> None:
        sock = self._rtcp if rtcp_socket and not self.rtcp_mux else self._rtp
        if sock is None:
            return
        outbox = self.engine.outbox
        if outbox is not None:
            outbox.append((sock, data, addr))
        else:
            sock.send(data, addr)

    # ------------------------------------------------------------ input
    def datagram(self, data: bytes, addr: Address, rtcp_port: bool) -> None:
        """A datagram on our RTP (or RTCP) port. The peer is where the SDP said, or (a
        NAT between) where the first valid packet of this stream came from; after
        that, packets from anywhere else are dropped and counted, until the learned
        source has been silent for ``relearn_after`` (rtpengine's strict source)."""
        now = self._seconds()
        if (addr != self.remote or not self.latched) \
                and not self._may_come_from(addr, rtcp_port, now):
            self._stray(addr)
            return
        if self.lent:
            self.reclaim()  # not the usual packet (the compiled relay handed it back)
        peer = self.relay_peer
        if peer is not None and self.latched:
            # relayed: the usual packet goes straight out of the other session (what
            # stream.receive, its bypass and relay() would do, in one compiled step)
            out = self.stream.relay_datagram(
                data, now, peer.stream, peer.sending and not peer._inband and not peer.closed)
            if out is not None:
                self.last_activity = now
                peer.relayed_at = now
                sock = peer._rtp
                if out and sock is not None:  # peer._send(out, peer.remote), inline
                    outbox = self.engine.outbox
                    if outbox is None:
                        sock.send(out, peer.remote)
                    else:
                        outbox.append((sock, out, peer.remote))
                return
        received = self.stream.receive(data, now)
        if received is REFUSED:
            return  # not this stream's (counted by the stream): it teaches us nothing
        self.last_activity = now
        if received is NOTHING and self.latched and addr == self.remote:
            return  # the usual packet: audio for the jitter buffer, source known
        if received.rtcp:
            self.remote_rtcp = addr  # symmetric RTCP
        elif not rtcp_port and (not self.latched or addr != self.remote):
            # symmetric RTP (RFC 4961): answer to where the media really comes from
            if self.latched:
                log.info("media on port %d: the peer moved from %s:%d to %s:%d",
                         self.local_port, *self.remote, *addr)
            self.remote = addr
            if self.rtcp_mux:
                self.remote_rtcp = addr
            self.latched = True
        for digit in received.digits:
            self.app.on_digit(self, digit, "rfc4733")

    def _may_come_from(self, addr: Address, rtcp_port: bool, now: float) -> bool:
        """Whether a datagram from ``addr`` (not the latched RTP source) is heard."""
        if rtcp_port:
            # RTCP on its own port: from the host we learned (or the SDP named)
            return addr[0] == self.remote[0]
        if addr == self.sdp_remote:
            return True  # where the signalling said: never a stranger
        if not self.latched:
            return True  # the first valid packet teaches us the peer behind a NAT
        # a new source only once the learned one has fallen silent (a phone that
        # changed networks); never while the compiled relay carries the pair
        return not self.lent and now - self.last_activity >= self.engine.relearn_after

    def _stray(self, addr: Address) -> None:
        self.stray += 1
        self.engine.stray += 1
        if self.stray & (self.stray - 1) == 0:  # 1st, 2nd, 4th, 8th ...: no log flood
            log.info("media on port %d: %d packets from %s:%d dropped (the peer is %s:%d)",
                     self.local_port, self.stray, *addr, *self.remote)

    def retarget(self, host: str, port: int, rtcp_port: int) -> None:
        """The signalling named a new address (a re-INVITE): it is the peer's now, and
        until a packet comes from there, the one the peer is taken to be."""
        old, old_rtcp = self.sdp_remote, self.sdp_remote_rtcp
        self.sdp_remote = (host, port)
        self.sdp_remote_rtcp = (host, port if self.rtcp_mux else rtcp_port)
        if not self.latched:
            self.remote = self.sdp_remote
        if self._shared is not None and (old, old_rtcp) != (self.sdp_remote,
                                                             self.sdp_remote_rtcp):
            self._shared.retargeted(self, old, old_rtcp)

    # ------------------------------------------------------------ clock
    def tick(self, now: float) -> None:
        if self.lent:
            # the compiled relay carries the audio; quiet pairs were reclaimed before
            # this tick (RelayOffload.reclaim_due), so only our own RTCP can be due
            if now < self.stream.next_rtcp_at:
                return
            self.reclaim()
        if now - self.last_activity > self.engine.inactivity_timeout:
            log.info("no RTP or RTCP on port %d for %.0f s: hanging up", self.local_port,
                     self.engine.inactivity_timeout)
            self.on_timeout()
            return
        if self.relay_peer is not None:
            stream = self.stream
            # the usual relayed frame: the other side's audio is flowing, nothing of
            # our own waits and no RTCP is due (asked here, as every relayed session
            # asks each frame, before the call to _relay_tick)
            if now - self.relayed_at < RELAY_SILENT_FRAMES * stream.ptime_ms / 1000 \
                    and not self._inband and now < stream.next_rtcp_at \
                    and not stream.dtmf_pending:
                if self._offload is not None:
                    self._lend_pair(now)
                return
            self._relay_tick(now)
            return
        app = self._app
        sending = self.sending
        if app.relays_audio and self._detector is None and not self._inband:
            payload, relayed = self.stream.pull_payload(now)
            if payload is not None:
                if sending:
                    self._send(self.stream.packetize_payload(payload), self.remote)
                else:
                    self.stream.packetize(None)  # time runs on while on hold
                self._send_rtcp_when_due(now)
                return
            pcm = relayed
        elif self._detector is not None and self._decode_table is not None \
                and not getattr(app, "hears_caller", True):
            # only the detector listens: no decode here and no concealment (a lost
            # frame cannot hold a digit anyway)
            payload = self.stream.pull_received(now)
            if payload is not None:
                self.engine.inband.put_encoded(self._detector, payload, self._decode_table,
                                               self)
            pcm = None
        else:
            pcm = self.stream.pull(now)
        if pcm is not None and self._detector is not None and self._to_8k is not None:
            # detected with every other session's audio at the end of the tick
            self.engine.inband.put(self._detector, self._to_8k.process(pcm), self)
        out = app.on_frame(self, pcm, now)
        if app.sends_own_audio and not self._inband:
            self._send_rtcp_when_due(now)
            return
        if self._inband:
            out = self._inband.pop(0)
        data = self.stream.packetize(out if sending else None)
        if data is not None and sending:
            self._send(data, self.remote)
        self._send_rtcp_when_due(now)

    def _send_rtcp_when_due(self, now: float) -> None:
        if now < self.stream.next_rtcp_at:
            return
        report = self.stream.rtcp_due(now)
        if report is not None:
            self._send(report, self.remote_rtcp, rtcp_socket=True)

    def send_payload(self, payload: bytes, csrc: tuple[int, ...] = ()) -> None:
        """Send one frame already encoded in this stream's codec (a bridge's output);
        queued DTMF goes first, and nothing is sent while the peer holds the call."""
        if self.closed:
            return
        if self._inband:
            data = self.stream.packetize(self._inband.pop(0))
            if data is not None:
                self._send(data, self.remote)
        elif self.sending:
            self._send(self.stream.packetize_payload(payload, csrc), self.remote)
        else:
            self.stream.packetize(None)  # time runs on while on hold

    def send_digit(self, digit: str, method: str = "rfc4733", duration_ms: int = 100) -> None:
        """Send DTMF as RFC 4733 events or as in-band tones (SIP INFO is the call's job)."""
        if self.lent:
            self.reclaim()  # the digit replaces audio while it lasts
        if method == "rfc4733":
            self.stream.send_digit(digit, duration_ms)
            return
        if method != "inband":
            raise ValueError(f"unknown DTMF method {method!r}")
        rate = self.stream.codec.sample_rate
        tone = Resampler(8000, rate).process(tone_for(digit, duration_ms)) if rate != 8000 \
            else tone_for(digit, duration_ms)
        gap = np.zeros(rate * 60 // 1000, dtype=np.int16)
        signal = np.concatenate([tone, gap])
        n = self.stream.frame_samples
        signal = np.concatenate([signal, np.zeros(-len(signal) % n, dtype=np.int16)])
        self._inband += [signal[i:i + n] for i in range(0, len(signal), n)]

    def close(self) -> None:
        if self.closed:
            return
        self.end_relay()
        self.closed = True
        log.debug("media on port %d closed: %d packets in, %d out, %d frames quiet undecoded%s",
                  self.local_port, self.stream.stats.packets_received,
                  self.stream.stats.packets_sent, self.stream.stats.quiet_frames,
                  "; the sender's audio level was agreed"
                  if self.stream.audio_level_id is not None else "")
        bye = self.stream.report(self.engine.reactor.seconds(), bye=True)
        self._send(bye, self.remote_rtcp, rtcp_socket=True)
        for sock in (self._rtp, self._rtcp):
            if sock is not None:
                sock.close()
        self._rtp = self._rtcp = None


class MediaEngine:
    """Owns the media clock and every session of this process."""

    def __init__(self, reactor: Any, address: str, codecs: CodecRegistry,
                 inactivity_timeout: float = 30.0, tick: float = FRAME_MS / 1000,
                 sockets: SocketFactory | None = None, shared_port: int = 0,
                 relay_offload: bool = True, relearn_after: float = 5.0) -> None:
        """``relearn_after``: seconds a peer's learned source must be silent before
        another may take its place (strict source)."""
        self.reactor = reactor
        self.relearn_after = relearn_after
        self.stray = 0  # datagrams dropped by every session: not from their peer
        # relayed pairs on the shared port moved by the compiled relay, when it is built
        self.relay_offload = relay_offload
        self.sockets = sockets if sockets is not None else reactor_sockets(reactor)
        self.shared_port = shared_port
        self._shared: SharedRtpPort | None = None
        # relayed pairs with ports of their own, lent to the compiled relay (once used)
        self._per_call: RelayOffload | None = None
        self._per_call_reader: OffloadReader | None = None
        self.address = address
        self.codecs = codecs
        self.inactivity_timeout = inactivity_timeout
        self.tick_interval = tick
        self.sessions: dict[int, MediaSession] = {}  # by serial number
        self._serial = 0
        self._frames: FrameClock | None = None  # while any session is open
        self._timer: IDelayedCall | None = None
        self.late_ticks = 0
        self._last_tick_cost = 0.0
        self._late_reported_at = 0.0
        self._late_since_report = 0
        # during a tick, packets wait here and leave together at its end: a burst
        # wakes each receiver once instead of once per packet
        self.outbox: list[tuple[DatagramSocket, bytes, Address]] | None = None
        # in-band DTMF of every session that listens for it, detected together each tick
        self.inband = DetectorBank()
        # run after every session of a tick has pulled its frame (conference bridges)
        self.tickers: list[Callable[[float], None]] = []

    def open(self, local_port: int, stream: AudioStream, target: MediaTarget, app: MediaApp,
             direction: str, on_timeout: Callable[[], None]) -> MediaSession:
        session = MediaSession(self, local_port, stream, target, app, direction, on_timeout)
        if self.shared_port:
            session.attach(self.bind_shared_port())
        else:
            session.listen(self.address, self.sockets)
        self._serial += 1
        session.serial = self._serial
        self.sessions[session.serial] = session
        if self._frames is None:
            self._frames = FrameClock(self.tick_interval, self.reactor.seconds(),
                                      MAX_FRAMES_BEHIND)
            self._timer = self.reactor.callLater(self.tick_interval, self._clock_fired)
        return session

    def bind_shared_port(self) -> SharedRtpPort:
        """Bind ``[media] shared_port`` (and the port above) once; MediaPortUnavailable if taken."""
        if self._shared is None:
            try:
                self._shared = SharedRtpPort(
                    self.sockets, self.address, self.shared_port,
                    self.reactor.seconds if self.relay_offload else None)
            except OSError as exc:
                raise MediaPortUnavailable(self.address, self.shared_port, exc) from exc
        return self._shared

    def per_call_offload(self) -> RelayOffload | None:
        """The compiled relay for sessions with their own ports (None when it is off
        or not built); its epoll descriptor is read by the reactor."""
        if self._per_call is None and self.relay_offload and offload_module.available():
            self._per_call = RelayOffload(-1, self.reactor.seconds)
            self._per_call_reader = OffloadReader(self._per_call, SHARED_BURST)
            self.reactor.addReader(self._per_call_reader)
        return self._per_call

    def close(self, session: MediaSession) -> None:
        session.close()
        self.sessions.pop(session.serial, None)
        if not self.sessions and self._frames is not None:
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
            self._frames = None

    def _clock_fired(self) -> None:
        self._timer = None
        frames = self._frames
        if frames is None:
            return
        frame = frames.take(self.reactor.seconds())
        if frame is not None:
            self._tick(frame)
        if self._frames is frames:  # not stopped by the last session closing in the tick
            self._timer = self.reactor.callLater(frames.delay(self.reactor.seconds()),
                                                 self._clock_fired)

    def _tick(self, frame: Frame) -> None:
        """One 20 ms frame for every session; a late clock catches up one frame per
        call, the reactor reading the sockets in between (see ``FrameClock``)."""
        now = self.reactor.seconds()
        late = int(frame.late) + frame.dropped
        if late:
            self.late_ticks += late
            self._late_since_report += late
            if now - self._late_reported_at >= 10.0:  # at most one line per 10 s
                log.info("media clock: %d ticks late in the last %.0f s (%d sessions; "
                         "the tick before took %.1f ms)", self._late_since_report,
                         min(now - self._late_reported_at, 999), len(self.sessions),
                         self._last_tick_cost * 1000)
                self._late_reported_at = now
                self._late_since_report = 0
        started = time.perf_counter()
        if self._shared is not None:
            self._shared.drain()
            self._shared.reclaim_due(now)
        per_call = self._per_call
        if per_call is not None and len(per_call):
            per_call.poll(DRAIN_LIMIT)  # as the shared port's drain: nothing left unread
            per_call.reclaim_due(now)
        outbox: list[tuple[DatagramSocket, bytes, Address]] = []
        self.outbox = outbox
        try:
            for session in list(self.sessions.values()):
                try:
                    session.tick(now)
                except Exception:
                    log.exception("media session on port %d failed; closing it", session.local_port)
                    self.close(session)
            for owner, found in self.inband.run():
                if isinstance(owner, MediaSession) and not owner.closed:
                    try:
                        owner.app.on_digit(owner, found.digit, "inband")
                    except Exception:
                        log.exception("in-band digit on port %d failed", owner.local_port)
            for ticker in list(self.tickers):
                try:
                    ticker(now)
                except Exception:
                    log.exception("media ticker %r failed; removing it", ticker)
                    self.tickers.remove(ticker)
        finally:
            self.outbox = None
            for sock, data, addr in outbox:
                sock.send(data, addr)
            self._last_tick_cost = time.perf_counter() - started

    def close_all(self) -> None:
        for session in list(self.sessions.values()):
            self.close(session)
        if self._per_call is not None:
            self._log_offload(self._per_call, "ports of their own")
            if self._per_call_reader is not None:
                self.reactor.removeReader(self._per_call_reader)
            self._per_call = self._per_call_reader = None
        if self._shared is not None:
            if self._shared.offload is not None:
                self._log_offload(self._shared.offload, "shared port")
            self._shared.close()
            self._shared = None
        log.info("media clock: %d late ticks", self.late_ticks)


    @staticmethod
    def _log_offload(offload: RelayOffload, where: str) -> None:
        counters = offload.counters()
        log.info("compiled relay (%s): %d packets relayed, %d handed to Python, "
                 "%d sends failed", where, counters["relayed"], counters["returned"],
                 counters["send_errors"])


# ---------------------------------------------------------------- apps

class PlayerApp:
    """Plays a WAV source into the call and optionally records what the caller says."""

    wants_inband_dtmf = False
    relays_audio = False
    sends_own_audio = False

    def __init__(self, source: WavSource | None = None, recorder: WavRecorder | None = None,
                 on_done: Callable[[], None] | None = None) -> None:
        self.source = source
        self.recorder = recorder
        self.on_done = on_done

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        if self.recorder is not None and pcm is not None:
            self.recorder.write(pcm)
        if self.source is None:
            return None
        frame = self.source.read(session.stream.frame_samples)
        if frame is None and self.on_done is not None:
            done, self.on_done = self.on_done, None
            done()
        return frame

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        pass
