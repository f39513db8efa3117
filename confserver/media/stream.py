"""One RTP audio stream, sans-I/O: packets in, frames out, and the reverse.

The stream owns the receive side (RTP parsing, statistics, jitter buffer,
decoding or concealment, RFC 4733 events) and the send side (encoding,
sequence numbers and timestamps, RFC 4733 packets), plus RTCP reports.
Its caller owns the sockets and the 20 ms clock.
"""

from __future__ import annotations

import functools
import random
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import rtcp
from .codecs.base import AudioCodec, Pcm, try_pcm_rate
from .dtmf import TelephoneEventReceiver, telephone_event_packets
from .jitter import Frame, FrameKind, JitterBuffer
from .rtp import RtpError, RtpPacket, is_rtcp
from .srtp import SrtpContext, SrtpError
from .stats import ReceiverStats, ntp_from_unix, round_trip_time, rtcp_interval

CN_PAYLOAD = 13
_PLAIN_HEADER = struct.Struct("!BBHII")  # an RTP header with no CSRC, extension or padding
_SEQ_TS_SSRC = struct.Struct("!HII")  # the same header from its third byte


@functools.lru_cache(maxsize=256)
def _csrc_block(csrc: tuple[int, ...]) -> bytes:
    """The CSRC list as it goes on the wire (at most 15). Memoized: in a meeting every
    silent listener gets the same list each tick, and talkers a few others."""
    return struct.pack(f"!{min(len(csrc), 15)}I", *csrc[:15])


@dataclass(slots=True)
class StreamStats:
    packets_received: int = 0
    packets_sent: int = 0
    octets_sent: int = 0
    malformed: int = 0
    ignored_payload: int = 0
    comfort_noise: int = 0
    fec_recovered: int = 0
    quiet_frames: int = 0  # frames judged quiet without decoding (see AudioStream.pull)
    rtt: float | None = None
    remote_fraction_lost: int = 0
    remote_jitter: int = 0


@dataclass(frozen=True, slots=True)
class Received:
    """What one incoming datagram produced."""

    digits: list[str] = field(default_factory=list)
    rtcp: list[rtcp.RtcpPacket] = field(default_factory=list)


# AudioStream.offload_fields: receive statistics, then send numbering (see there)
OffloadFields = tuple[int, int, int, int, int, int, int, int, int, int, int, int, float,
                      int | None, int, int, int, int, int, int | None, int, int, int, int]


NOTHING = Received()  # most packets: audio for the jitter buffer, nothing to report
# what is not a packet of this stream: malformed, failing SRTP, or a payload type that
# was not negotiated (a session learns its peer only from a packet that is one)
REFUSED = Received()
MAX_PULLS_PER_FRAME = 8  # jitter-buffer frames one pull may take (a 2.5 ms sender's)


class AudioStream:
    def __init__(self, codec: AudioCodec, payload_type: int, dtmf_payload_type: int | None,
                 ptime_ms: int = 20, ssrc: int | None = None, cname: str = "switchboard",
                 srtp: SrtpContext | None = None, remote_ptime_ms: int | None = None) -> None:
        """``ptime_ms`` is our frame: what one pull returns and one packet we send
        carries (the media clock's tick). ``remote_ptime_ms`` is the packetization the
        peer's SDP announced (a=ptime); the jitter buffer starts with it and follows
        what the peer really sends, and pulls still return ``ptime_ms`` each."""
        self.srtp = srtp
        self.codec = codec
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.ptime_ms = ptime_ms
        self.frame_samples = codec.sample_rate * ptime_ms // 1000
        self.frame_ts = codec.timestamp_units(self.frame_samples)  # RTP clock units a frame
        self.ssrc = ssrc if ssrc is not None else secrets.randbits(32)
        self.cname = cname.encode()
        self.jitter = JitterBuffer(codec.clock_rate, remote_ptime_ms or ptime_ms)
        # received audio beyond the frames pulled so far, while the peer's packets
        # are not one frame each (see _pull_reframed); while it holds any, or the
        # jitter buffer's frame is not ours, pulls go through _pull_reframed
        self._carry: Pcm = np.zeros(0, dtype=np.int16)
        # the codec's way to keep concealment history without decoding, if it has one
        self._keep: Callable[[bytes], None] | None = getattr(codec, "keep", None)
        # and to tell a frame is quiet without decoding it, if it has one
        self._is_quiet: Callable[[bytes, float], bool] | None = getattr(codec, "is_quiet", None)
        self.remote: ReceiverStats | None = None
        self.events = TelephoneEventReceiver()
        self.stats = StreamStats()
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._dtmf_queue: list[RtpPacket] = []
        self._rng = random.Random(self.ssrc)
        # when the next RTCP report is due (read every frame: checked before calling
        # rtcp_due); the first call to rtcp_due starts the schedule
        self.next_rtcp_at = float("-inf")
        self._rtcp_started = False
        self._comfort_level: int | None = None  # -dBov of the peer's CN, while it is silent
        self._noise = np.random.default_rng(self.ssrc)
        self._concealing = False  # the last frame pulled was concealed (pull_payload)
        # while set, audio packets go here instead of the jitter buffer: a relay sends
        # them on through another leg's stream (relay_packet), untouched
        self.bypass: Callable[[RtpPacket, float], None] | None = None
        # while relaying from a leg of another codec: its payloads to ours (see
        # packet_convert.py), as this stream sends them
        self.relay_convert: Callable[[bytes], bytes] | None = None
        self._relay_from: int | None = None  # the SSRC the relay offsets were taken for
        self._relay_seq_offset = 0
        self._relay_ts_offset = 0
        # RFC 6464: the RTP header extension ID of the sender's audio level, if agreed
        self.audio_level_id: int | None = None
        # set by a consumer that only needs audio louder than this (a mixer): frames
        # shown to be quieter are not decoded, and pull hands out silence for them
        self.quiet_below_dbov: float | None = None
        self.last_quiet = False  # the last frame pulled was judged quiet
        self._in_quiet = False
        self._quiet_pcm: Pcm = np.zeros(0, dtype=np.int16)

    def renegotiate(self, codec: AudioCodec, payload_type: int, dtmf_payload_type: int | None,
                    remote_ptime_ms: int, srtp: SrtpContext | None) -> None:
        """A re-INVITE changed the codec, payload types, packetization or SRTP keys:
        carry on with the new ones. Our SSRC, sequence numbers and statistics go on;
        what was buffered in the old codec is dropped."""
        self.codec = codec
        self._keep = getattr(codec, "keep", None)
        self._is_quiet = getattr(codec, "is_quiet", None)
        self.payload_type = payload_type
        self.dtmf_payload_type = dtmf_payload_type
        self.frame_samples = codec.sample_rate * self.ptime_ms // 1000
        self.frame_ts = codec.timestamp_units(self.frame_samples)
        self.srtp = srtp
        self.jitter = JitterBuffer(codec.clock_rate, remote_ptime_ms)
        self._carry = np.zeros(0, dtype=np.int16)
        self.remote = None  # the clock rate of its statistics may have changed
        self._dtmf_queue.clear()
        self._relay_from = None
        self.relay_convert = None
        self._concealing = False
        self._in_quiet = False

    def set_pcm_rate(self, rate: int) -> bool:
        """Have the codec work at ``rate`` Hz, when it can (Opus, at any of its rates):
        a leg bridged to a narrowband one then needs no resampling. The RTP clock and
        so the timestamps, the jitter buffer and the packetization stay as they are.
        False when the codec has no such rate."""
        if self.codec.sample_rate == rate:
            return True
        if not try_pcm_rate(self.codec, rate):
            return False
        self.frame_samples = rate * self.ptime_ms // 1000
        self.frame_ts = self.codec.timestamp_units(self.frame_samples)
        self._quiet_pcm = np.zeros(0, dtype=np.int16)
        self._carry = np.zeros(0, dtype=np.int16)  # at the old rate
        return True

    # ------------------------------------------------------------ receive
    def receive(self, data: bytes, now: float) -> Received:
        """What ``data`` carried; callers only read the result (it may be shared).
        ``REFUSED`` when it is not a packet of this stream (nothing else changes but the
        counters): malformed, failing SRTP, or of a payload type not negotiated."""
        out = NOTHING
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect_rtcp(data) if is_rtcp(data) else self.srtp.unprotect(data)
            except SrtpError:
                self.stats.malformed += 1  # forged, replayed or plain: dropped
                return REFUSED
        if len(data) >= 2 and 192 <= data[1] <= 223:  # is_rtcp, inline: every packet asks
            try:
                packets = rtcp.parse_compound(data)
            except rtcp.RtcpError:
                self.stats.malformed += 1
                return REFUSED
            self._on_rtcp(packets, now)
            return Received(rtcp=packets)
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats.malformed += 1
            return REFUSED
        payload_type = packet.payload_type
        if payload_type != self.payload_type and payload_type != self.dtmf_payload_type \
                and payload_type != CN_PAYLOAD:
            self.stats.ignored_payload += 1  # not this stream's: not counted as its own
            return REFUSED
        self.stats.packets_received += 1
        remote = self.remote
        if remote is None or remote.ssrc != packet.ssrc:
            remote = self.remote = ReceiverStats(packet.ssrc, self.codec.clock_rate)
        if payload_type == self.payload_type and payload_type != self.dtmf_payload_type:
            # audio, the usual packet (asked first)
            self._comfort_level = None
            remote.update(packet.sequence, packet.timestamp, now)
            if self.bypass is not None:
                self.bypass(packet, now)
            else:
                self.jitter.put(packet, now)
            return out
        # digits and comfort noise share the source's sequence numbers: counted, or the
        # loss statistics would report them lost (not its jitter: an event's packets
        # all carry the time it started)
        remote.update_seq(packet.sequence)
        if payload_type == self.dtmf_payload_type:
            digit = self.events.receive(packet.timestamp, packet.payload) if packet.payload else None
            return Received(digits=[digit]) if digit else out
        # RFC 3389 comfort noise: the first byte is the noise level in -dBov
        self.stats.comfort_noise += 1
        self._comfort_level = packet.payload[0] & 0x7F if packet.payload else 127
        return out

    def _on_rtcp(self, packets: list[rtcp.RtcpPacket], now: float) -> None:
        for packet in packets:
            if isinstance(packet, rtcp.SenderReport) and self.remote is not None \
                    and packet.ssrc == self.remote.ssrc:
                self.remote.on_sender_report(packet.ntp_timestamp, now)
            blocks = packet.reports if isinstance(packet, rtcp.SenderReport | rtcp.ReceiverReport) else []
            for block in blocks:
                if block.ssrc == self.ssrc:
                    self.stats.rtt = round_trip_time(block, now)
                    self.stats.remote_fraction_lost = block.fraction_lost
                    self.stats.remote_jitter = block.jitter

    def pull(self, now: float) -> Pcm | None:
        """The next 20 ms of received audio (decoded or concealed), None before it starts.

        With ``quiet_below_dbov`` set, a frame shown to be that quiet without decoding
        it (the sender's RFC 6464 audio level, an Opus DTX frame, G.711 codes that
        are all near zero, or a loss in the middle of such a stretch) comes back as
        zeros, and ``last_quiet`` says so."""
        if self._carry.size or self.jitter.frame_ts != self.frame_ts:
            return self._pull_reframed(now)
        frame = self.jitter.get(now)
        if self.quiet_below_dbov is not None:
            self.last_quiet = self._judged_quiet(frame, self.quiet_below_dbov)
            if self.last_quiet:
                self.stats.quiet_frames += 1
                if len(self._quiet_pcm) != self.frame_samples:
                    self._quiet_pcm = np.zeros(self.frame_samples, dtype=np.int16)
                    self._quiet_pcm.flags.writeable = False
                return self._quiet_pcm
        pcm = self._frame_to_pcm(frame)
        if pcm is not None and len(pcm) != self.frame_samples:
            return self._pull_reframed(now, pcm)  # a packet longer or shorter than a frame
        return pcm

    def _pull_reframed(self, now: float, first: Pcm | None = None) -> Pcm | None:
        """One frame when the peer's packets are not: its frames (a 30 ms gateway's,
        say) are decoded as they fall due and cut into ours, what is left over waiting
        for the next pull. Such a stream is not judged quiet without decoding."""
        self.last_quiet = False
        need = self.frame_samples
        parts = [self._carry] if len(self._carry) else []
        if first is not None:
            parts.append(first)
        have = sum(len(part) for part in parts)
        jitter = self.jitter
        for _ in range(MAX_PULLS_PER_FRAME):
            if have >= need:
                break
            frame = jitter.get(now)
            if frame.kind is FrameKind.SILENCE:
                break
            samples = jitter.frame_ts * self.codec.sample_rate // self.codec.clock_rate
            pcm = self._frame_to_pcm(frame, samples)
            if pcm is not None:
                parts.append(pcm)
                have += len(pcm)
        if not have:
            self._carry = np.zeros(0, dtype=np.int16)
            return self._frame_to_pcm(Frame(FrameKind.SILENCE))
        if have < need:  # the stream stopped part way into a frame
            parts.append(np.zeros(need - have, dtype=np.int16))
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._carry = joined[need:]
        return joined[:need]

    def _judged_quiet(self, frame: Frame, below_dbov: float) -> bool:
        """Most of a meeting is silence, and most of a silent frame's cost is decoding
        it to learn so: the cheap signs come first."""
        packet = frame.packet
        if frame.kind is FrameKind.AUDIO and packet is not None:
            quiet = None
            if self.audio_level_id is not None and packet.extensions:
                level = packet.extensions.get(self.audio_level_id)
                if level:
                    quiet = (level[0] & 0x7F) >= below_dbov
            if quiet is None:
                judge = self._is_quiet
                quiet = judge is not None and bool(judge(packet.payload, below_dbov))
            if quiet:
                keep = self._keep
                if keep is not None:  # concealment history stays in step, decoded only if needed
                    keep(packet.payload)
            self._in_quiet = quiet
            return quiet
        if frame.kind is FrameKind.LOST:
            # a gap in a quiet stretch (a DTX pause, or a lost frame of silence) is
            # quiet too; so is one the sender's comfort noise says is quiet
            return self._in_quiet or (self._comfort_level is not None
                                      and self._comfort_level >= below_dbov)
        return False

    def _frame_to_pcm(self, frame: Frame, samples: int = 0) -> Pcm | None:
        """The audio of one jitter-buffer frame, ``samples`` long when it must be
        made up (concealment, noise); 0 means one of our frames."""
        samples = samples or self.frame_samples
        if frame.kind is FrameKind.AUDIO and frame.packet is not None:
            try:
                pcm = self.codec.decode(frame.packet.payload)
            except ValueError:
                return self.codec.conceal(samples)
            return pcm if len(pcm) else self.codec.conceal(samples)
        if frame.kind is FrameKind.LOST:
            if self._comfort_level is not None:
                return self._comfort_noise(samples)
            recover = getattr(self.codec, "recover", None)
            if recover is not None and frame.next_packet is not None:
                try:
                    rebuilt: Pcm | None = recover(frame.next_packet.payload, samples)
                except ValueError:
                    rebuilt = None
                if rebuilt is not None and len(rebuilt):
                    self.stats.fec_recovered += 1
                    return rebuilt
            return self.codec.conceal(samples)
        if self._comfort_level is not None:
            return self._comfort_noise()
        return None

    def pull_payload(self, now: float) -> tuple[bytes | None, Pcm | None]:
        """Like ``pull``, for a caller that relays what it receives in the same codec:
        ``(payload, None)`` when a received frame can go out untouched (no decode, no
        encode), ``(None, pcm)`` when it had to be concealed or decoded (a loss, and the
        first frame after one, which is blended), ``(None, None)`` before audio starts.
        While the peer's packets are not one frame each, every frame is decoded."""
        if self._carry.size or self.jitter.frame_ts != self.frame_ts:
            self._concealing = True  # the first relayed frame after it is blended
            return None, self._pull_reframed(now)
        frame = self.jitter.get(now)
        if frame.kind is FrameKind.AUDIO and frame.packet is not None and not self._concealing:
            payload = frame.packet.payload
            try:
                keep = self._keep
                if keep is not None:
                    keep(payload)
                else:
                    self.codec.decode(payload)  # keeps decoder state for later concealment
            except ValueError:
                self._concealing = True
                return None, self.codec.conceal(self.frame_samples)
            return payload, None
        pcm = self._frame_to_pcm(frame)
        self._concealing = frame.kind is FrameKind.LOST
        if pcm is not None and len(pcm) != self.frame_samples:
            return None, self._pull_reframed(now, pcm)
        return None, pcm

    def pull_received(self, now: float) -> bytes | None:
        """The next frame's payload exactly as received, None when there is none (lost,
        late, not started): for a listener that needs no concealment (an in-band DTMF
        detector). The codec's history is not kept meanwhile. While the peer's packets
        are not one frame each, the frame is cut from decoded audio and encoded again
        (G.711, which such a listener takes, encodes its own decoding exactly)."""
        if self._carry.size or self.jitter.frame_ts != self.frame_ts:
            pcm = self._pull_reframed(now)
            return None if pcm is None else self.codec.encode(pcm)
        frame = self.jitter.get(now)
        if frame.kind is FrameKind.AUDIO and frame.packet is not None:
            return frame.packet.payload
        return None

    def _comfort_noise(self, samples: int = 0) -> Pcm:
        """White noise at the level the peer's last CN packet announced."""
        assert self._comfort_level is not None
        rms = 32767 * 10 ** (-self._comfort_level / 20)
        noise: Pcm = self._noise.normal(0.0, rms, samples or self.frame_samples) \
            .clip(-32768, 32767).astype(np.int16)
        return noise

    # ------------------------------------------------------------ send
    def send_digit(self, digit: str, duration_ms: int = 100) -> None:
        if self.dtmf_payload_type is None:
            raise ValueError("the peer did not negotiate telephone-event")
        # the event starts where the packets already queued end (each takes a frame
        # of the RTP clock): a digit queued behind another is a new event, not a repeat
        start = (self._ts + len(self._dtmf_queue) * self.frame_ts) & 0xFFFFFFFF
        for event in telephone_event_packets(digit, start, duration_ms, self.codec.clock_rate,
                                             self.ptime_ms):
            self._dtmf_queue.append(RtpPacket(self.dtmf_payload_type, 0, event.timestamp,
                                              self.ssrc, event.payload, event.marker))

    def packetize(self, pcm: Pcm | None) -> bytes | None:
        """The RTP packet for the next 20 ms: a queued DTMF event, else ``pcm`` encoded."""
        self._relay_from = None  # our own packet: a relay re-anchors after it
        if self._dtmf_queue:
            return self._next_dtmf()
        step = self.frame_ts
        if pcm is None:
            self._ts = (self._ts + step) & 0xFFFFFFFF
            return None
        payload = self.codec.encode(pcm)
        packet = RtpPacket(self.payload_type, self._seq, self._ts, self.ssrc, payload)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + step) & 0xFFFFFFFF
        return self._count(bytes(packet))

    def _next_dtmf(self) -> bytes:
        self._relay_from = None
        packet = self._dtmf_queue.pop(0)
        packet.sequence = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        # the RTP clock runs on while the event lasts: audio after it is stamped with
        # the time that really passed (the event's packets keep their start timestamp)
        self._ts = (self._ts + max(self.frame_ts, 1)) & 0xFFFFFFFF
        return self._count(bytes(packet))

    def packetize_payload(self, payload: bytes, csrc: tuple[int, ...] = ()) -> bytes:
        """The RTP packet for the next 20 ms carrying an already encoded payload
        (a queued DTMF event goes first, as in ``packetize``). ``csrc``: the
        contributing sources of a mix, the dominant speaker first (as MS-RTP does)."""
        self._relay_from = None
        if self._dtmf_queue:
            return self._next_dtmf()
        if csrc:
            # every listener of a meeting gets one: packed here, not through RtpPacket
            block = _csrc_block(csrc)
            data = b"".join((_PLAIN_HEADER.pack(0x80 | (len(block) >> 2), self.payload_type,
                                                self._seq, self._ts, self.ssrc), block, payload))
        else:
            data = _PLAIN_HEADER.pack(0x80, self.payload_type, self._seq, self._ts,
                                      self.ssrc) + payload
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + self.frame_ts) & 0xFFFFFFFF
        stats = self.stats  # _count, inline: every frame of every listener comes here
        stats.packets_sent += 1
        stats.octets_sent += len(data) - 12
        return self.srtp.protect(data) if self.srtp is not None else data

    @property
    def dtmf_pending(self) -> bool:
        """RFC 4733 packets wait to go out (they replace audio while they last)."""
        return bool(self._dtmf_queue)

    def relay_packet(self, packet: RtpPacket) -> bytes:
        """``packet``, received on another leg in this stream's codec, as this stream
        sends it: the payload untouched (or converted, ``relay_convert``), with our SSRC
        and payload type, and its sequence number and timestamp moved into our
        numbering by offsets fixed at the first packet from that source (and again
        after we sent a packet of our own), so the source's gaps, order and timing
        reach the far end as they were."""
        return self._relayed(packet.ssrc, packet.sequence, packet.timestamp, packet.marker,
                             packet.payload)

    def relay_datagram(self, data: bytes, now: float, out: AudioStream,
                       forward: bool) -> bytes | None:
        """The usual packet of a relayed pair in one step: ``data``, received on this
        stream, counted as ``receive`` counts it and returned as ``out`` sends it
        (``relay_packet``), without building an RtpPacket. Returns b"" when it was
        counted but must not go out (``forward`` False: the other side is on hold or
        sending a digit of its own, or ``out`` is), and None when it is not that usual
        packet (SRTP on either side, RTCP, CSRCs, an extension or padding, another
        payload type, a new source): the caller then takes the general path."""
        if self.srtp is not None or out.srtp is not None or len(data) < 12 or data[0] != 0x80:
            return None
        b1 = data[1]
        payload_type = b1 & 0x7F
        if 192 <= b1 <= 223 or payload_type != self.payload_type or payload_type == self.dtmf_payload_type:
            return None
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        remote = self.remote
        if remote is None or remote.ssrc != ssrc:
            return None
        self.stats.packets_received += 1
        self._comfort_level = None
        remote.update(seq, ts, now)
        if not forward or out._dtmf_queue:
            return b""
        return out._relayed(ssrc, seq, ts, b1 > 0x7F, data[12:])

    def _relayed(self, source: int, sequence: int, timestamp: int, marker: bool,
                 payload: bytes) -> bytes:
        if self._relay_from != source:
            self._relay_from = source
            self._relay_seq_offset = (self._seq - sequence) & 0xFFFF
            self._relay_ts_offset = (self._ts - timestamp) & 0xFFFFFFFF
        seq = (sequence + self._relay_seq_offset) & 0xFFFF
        ts = (timestamp + self._relay_ts_offset) & 0xFFFFFFFF
        if (seq - self._seq) & 0xFFFF < 0x8000:  # not older than the last one sent
            self._seq = (seq + 1) & 0xFFFF
        if (ts - self._ts) & 0xFFFFFFFF < 0x80000000:
            self._ts = (ts + self.frame_ts) & 0xFFFFFFFF
        convert = self.relay_convert
        if convert is not None:
            payload = convert(payload)
        data = _PLAIN_HEADER.pack(0x80, (0x80 if marker else 0) | self.payload_type, seq, ts,
                                  self.ssrc) + payload
        stats = self.stats
        stats.packets_sent += 1
        stats.octets_sent += len(payload)
        return self.srtp.protect(data) if self.srtp is not None else data

    # ------------------------------------------------------------ relay offload
    def offload_fields(self) -> OffloadFields:
        """What a relay that moves this stream's packets outside Python must carry on
        (confserver/adapters/media/relay_offload.py): the receive statistics and the send
        numbering that ``relay_datagram`` updates, in the order fastrelay.c reads.
        The stream must have a known, initialized remote source."""
        remote = self.remote
        assert remote is not None and remote.initialized
        stats = self.stats
        return (self.payload_type, remote.ssrc, remote.clock_rate, stats.packets_received,
                remote.max_seq, remote.cycles, remote.base_seq, remote.bad_seq,
                remote.probation, remote.received, remote.expected_prior,
                remote.received_prior, remote.jitter, remote.transit,
                self.payload_type, self.ssrc, self._seq, self._ts, self.frame_ts,
                self._relay_from, self._relay_seq_offset, self._relay_ts_offset,
                stats.packets_sent, stats.octets_sent)

    def restore_offload_fields(self, fields: OffloadFields) -> None:
        """Take back what ``offload_fields`` gave out, as the relay left it."""
        remote = self.remote
        assert remote is not None
        stats = self.stats
        if fields[3] != stats.packets_received:
            self._comfort_level = None  # audio came: the peer is not silent
        (_, _, _, stats.packets_received, remote.max_seq, remote.cycles, remote.base_seq,
         remote.bad_seq, remote.probation, remote.received, remote.expected_prior,
         remote.received_prior, remote.jitter, remote.transit, _, _, self._seq, self._ts, _,
         self._relay_from, self._relay_seq_offset, self._relay_ts_offset,
         stats.packets_sent, stats.octets_sent) = fields

    def _count(self, data: bytes) -> bytes:
        self.stats.packets_sent += 1
        self.stats.octets_sent += len(data) - 12
        return self.srtp.protect(data) if self.srtp is not None else data

    # ------------------------------------------------------------ RTCP
    def rtcp_due(self, now: float) -> bytes | None:
        """A compound SR/RR + SDES when the RTCP interval has passed."""
        if now < self.next_rtcp_at:
            return None
        if not self._rtcp_started:
            self._rtcp_started = True
            self.next_rtcp_at = now + rtcp_interval(2, 2, 3200, True, 100, True, self._rng)
            return None
        self.next_rtcp_at = now + rtcp_interval(2, 2, 3200, True, 100, False, self._rng)
        return self.report(now)

    def report(self, now: float, bye: bool = False) -> bytes:
        blocks = [self.remote.report_block(now)] if self.remote is not None else []
        packets: list[rtcp.RtcpPacket]
        if self.stats.packets_sent:
            ntp = ntp_from_unix(now)
            packets = [rtcp.SenderReport(self.ssrc, ntp, self._ts, self.stats.packets_sent,
                                         self.stats.octets_sent, blocks)]
        else:
            packets = [rtcp.ReceiverReport(self.ssrc, blocks)]
        packets.append(rtcp.SourceDescription([(self.ssrc, [(rtcp.SDES_CNAME, self.cname)])]))
        if bye:
            packets.append(rtcp.Goodbye([self.ssrc]))
        data = rtcp.serialize_compound(packets)
        return self.srtp.protect_rtcp(data) if self.srtp is not None else data
