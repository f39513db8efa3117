"""Adaptive jitter buffer, sans-I/O.

Packets go in with their arrival time (``put``); one playout clock pulls a
frame every packetization interval (``get``). The target delay follows the
measured delay spread: it grows at once when packets arrive later than the
buffer can cover (a frame of concealment is inserted), and shrinks only after
the spread has stayed low for a while (one frame is dropped, preferably in
silence). The same two moves absorb sender clock drift. A new SSRC or a
timestamp jump resets the buffer.
"""

from __future__ import annotations

import enum
import math
from array import array
from dataclasses import dataclass

from .rtp import RtpPacket

REBASE_AFTER = 1.0  # s: a transit-time change this large is a timestamp leap, not jitter
MAX_PACKET_S = 0.2  # s: the longest packet a sender's packetization is taken to be (RFC 3551)
HIGH_HOLD = 0.4     # s over target before the first frame is dropped
HIGH_SKIP_EVERY = 0.1  # s between further drops while still over target


class FrameKind(enum.Enum):
    AUDIO = "audio"      # a packet to decode
    LOST = "lost"        # conceal one frame
    SILENCE = "silence"  # nothing has started yet (or the stream ended): play nothing


@dataclass(slots=True)  # not frozen: one is made per frame, and frozen init is slow
class Frame:
    kind: FrameKind
    packet: RtpPacket | None = None
    next_packet: RtpPacket | None = None  # for a LOST frame: the packet after it, if here (FEC)


@dataclass(slots=True)
class JitterStats:
    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    inserted: int = 0
    dropped: int = 0
    resets: int = 0
    underruns: int = 0
    repacketized: int = 0  # times the frame followed the sender's real packet length


def _ts_diff(a: int, b: int) -> int:
    """a - b in 32-bit RTP timestamp space, signed."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d & 0x80000000 else d


class JitterBuffer:
    def __init__(self, clock_rate: int, frame_ms: int = 20, initial_ms: int = 40,
                 min_ms: int = 20, max_ms: int = 300, window: int = 150,
                 shrink_after_s: float = 2.0) -> None:
        self.clock_rate = clock_rate
        # one frame is one of the sender's packets: ``frame_ms`` is what the SDP said
        # (a=ptime, 20 ms when silent), and it follows what the sender really sends
        self.frame_ts = clock_rate * frame_ms // 1000
        self.frame_s = frame_ms / 1000
        self.min_delay = min_ms / 1000
        self.max_delay = max_ms / 1000
        self.target = initial_ms / 1000
        # transit times (arrival - timestamp/clock) of the last ``window`` packets:
        # their spread is the jitter to cover. A ring of plain doubles, with its
        # minimum kept up to date; sorted only when the spread is read (see
        # _needed_delay). A sorted list of float objects kept per packet cost more:
        # with a thousand calls, each bisection probe missed the cache.
        self._transits = array("d")
        self._slot = 0  # where the next transit goes once the ring is full
        self._lowest = math.inf  # min(self._transits)
        self._lowest_count = 0  # how many transits equal it (evicting one need not rescan)
        self._window_len = window
        self._shrink_after = shrink_after_s
        self._low_since: float | None = None
        self._high_since: float | None = None
        # more packets than the deepest buffer holds: a backlog, or stale ones
        self._max_packets = int(max_ms / frame_ms) + 1
        # a step between consecutive packets other than frame_ts: (step, sequence number)
        self._odd_step: tuple[int, int] | None = None
        self._needed: float | None = None  # cached _needed_delay(); None when stale
        self._gets_since_needed = 0
        self._shrink_needed: float | None = None
        self.stats = JitterStats()
        self._reset_state()

    def _reset_state(self) -> None:
        self._packets: dict[int, RtpPacket] = {}
        self._ssrc: int | None = None
        self._playout_ts: int | None = None
        self._base: tuple[float, int] | None = None  # (arrival, timestamp) reference
        self._start_at: float | None = None
        self._newest_ts: int | None = None
        self._underrun = False
        self._clear_transits()
        self._low_since = None
        self._high_since = None
        self._needed = None

    # ------------------------------------------------------------ input
    def put(self, packet: RtpPacket, now: float) -> None:
        ts = packet.timestamp
        newest = self._newest_ts
        if newest is not None and ts == (newest + self.frame_ts) & 0xFFFFFFFF \
                and packet.ssrc == self._ssrc and not self._underrun:
            # the usual packet, the one after the newest from the same source: it
            # cannot be late (playout never passes the newest packet without running
            # dry), a duplicate or a leap, so none of that is looked for
            self.stats.received += 1
            self._packets[ts] = packet
            self._newest_ts = ts
            self._observe(packet, now)
            return
        self._put_unusual(packet, now)

    def _put_unusual(self, packet: RtpPacket, now: float) -> None:
        if self._ssrc is not None and (packet.ssrc != self._ssrc or self._jumped(packet)):
            self.stats.resets += 1
            self._reset_state()
        elif self._newest_ts is not None:
            self._check_packetization(packet)
        if self._ssrc is None:
            self._ssrc = packet.ssrc
            self._playout_ts = packet.timestamp
            # the first packet plays at the first playout tick at least the target
            # less half a frame after it came: the wait for that tick adds 0 to a
            # whole frame, so on average it waits the target rather than target
            # plus half a frame (10 ms of latency on every call, for nothing)
            self._start_at = now + max(self.min_delay, self.target - self.frame_s / 2)
            self._base = (now, packet.timestamp)
        assert self._playout_ts is not None and self._base is not None
        self.stats.received += 1
        if self._underrun and _ts_diff(packet.timestamp, self._playout_ts) >= 0:
            # the buffer ran dry (slow sender, or a pause): resume from this packet
            self._underrun = False
            self._playout_ts = packet.timestamp
        if _ts_diff(packet.timestamp, self._playout_ts) < 0:
            self.stats.late += 1
            self._observe(packet, now)
            return
        if packet.timestamp in self._packets:
            self.stats.duplicates += 1
            return
        self._packets[packet.timestamp] = packet
        if self._newest_ts is None or _ts_diff(packet.timestamp, self._newest_ts) > 0:
            self._newest_ts = packet.timestamp
        self._observe(packet, now)

    def _check_packetization(self, packet: RtpPacket) -> None:
        """A sender may put more or less audio in a packet than the SDP said (a=ptime
        is only a hint, RFC 4566; a gateway set to 30 ms may not say so). Two packets
        in a row, each the next sequence number and the same other step after the one
        before, show the sender's real packetization: the frame follows it. (One odd
        step is a loss or the end of a silence, and is left to the usual handling.)"""
        assert self._newest_ts is not None
        previous = self._packets.get(self._newest_ts)
        if previous is None or packet.sequence != (previous.sequence + 1) & 0xFFFF:
            return
        step = _ts_diff(packet.timestamp, self._newest_ts)
        if step <= 0 or step == self.frame_ts or step > MAX_PACKET_S * self.clock_rate:
            return
        odd = self._odd_step
        self._odd_step = (step, packet.sequence)
        if odd is None or odd[0] != step or packet.sequence != (odd[1] + 1) & 0xFFFF:
            return
        self.frame_ts = step
        self.frame_s = step / self.clock_rate
        self._max_packets = int(self.max_delay / self.frame_s) + 1
        self._needed = self._shrink_needed = None
        self.stats.repacketized += 1
        # play on from the oldest packet still held, this one included: what was
        # played on the old grid is behind it, and the new grid runs through the
        # packets themselves. When the old grid has already passed this packet (each
        # packet played before the next came, so none is held), play on from it: a
        # playout point off the sender's grid would take every later packet for late.
        assert self._playout_ts is not None
        playout = self._playout_ts
        if playout in self._packets:
            return
        held = [ts for ts in self._packets if _ts_diff(ts, playout) >= 0]
        if _ts_diff(packet.timestamp, playout) >= 0:
            held.append(packet.timestamp)
        self._playout_ts = min(held, key=lambda ts: _ts_diff(ts, playout)) if held \
            else packet.timestamp
        self._underrun = False

    def _jumped(self, packet: RtpPacket) -> bool:
        if self._newest_ts is None:
            return False
        return abs(_ts_diff(packet.timestamp, self._newest_ts)) > 10 * self.clock_rate

    def _observe(self, packet: RtpPacket, now: float) -> None:
        """Record this packet's transit time; grow the target at once if needed."""
        assert self._base is not None
        elapsed = (packet.timestamp - self._base[1]) & 0xFFFFFFFF  # _ts_diff, inline: every packet
        if elapsed & 0x80000000:
            elapsed -= 1 << 32
        transit = now - elapsed / self.clock_rate
        ring = self._transits
        lowest = self._lowest
        if ring and abs(transit - lowest) > REBASE_AFTER:
            # no network jitters by seconds: the sender's timestamps leapt. Measure
            # afresh from here rather than let one leap inflate the target.
            self._clear_transits()
            lowest = math.inf
            self._base = (now, packet.timestamp)
            transit = now
        # the usual packet lands within the spread the target already covers: then
        # (dropping old entries only narrows the spread) the target cannot need to grow
        covered = bool(ring) and lowest <= transit <= lowest + self.target - self.frame_s / 2
        if len(ring) < self._window_len:
            ring.append(transit)
            oldest = math.inf
        else:  # the oldest makes way
            slot = self._slot
            oldest = ring[slot]
            ring[slot] = transit
            self._slot = slot + 1 if slot + 1 < self._window_len else 0
        if transit < lowest:
            self._lowest = transit
            self._lowest_count = 1
        else:
            if transit == lowest:
                self._lowest_count += 1
            if oldest == lowest:
                self._lowest_count -= 1
                if not self._lowest_count:  # the minimum left the window
                    self._lowest = min(ring)
                    self._lowest_count = ring.count(self._lowest)
        self._needed = None
        if covered:
            return
        needed = self._needed_delay()
        if needed > self.target:
            self.target = min(needed, self.max_delay)  # grow fast
            self._low_since = None

    def _clear_transits(self) -> None:
        del self._transits[:]
        self._slot = 0
        self._lowest = math.inf
        self._lowest_count = 0

    def _needed_delay(self) -> float:
        if self._needed is not None:
            return self._needed
        if not self._transits:
            return self.target
        ordered = sorted(self._transits)
        spread = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] - ordered[0]
        self._needed = max(self.min_delay, spread + self.frame_s / 2)
        return self._needed

    # ------------------------------------------------------------ output
    @property
    def buffered(self) -> float:
        """Seconds of audio waiting between the playout point and the newest packet."""
        if self._playout_ts is None or self._newest_ts is None:
            return 0.0
        return max(0, _ts_diff(self._newest_ts, self._playout_ts) + self.frame_ts) / self.clock_rate

    def get(self, now: float) -> Frame:
        """The frame to play now; call once per packetization interval."""
        playout = self._playout_ts
        if playout is None or self._start_at is None or now < self._start_at:
            return Frame(FrameKind.SILENCE)
        packets = self._packets
        if playout in packets and len(packets) <= self._max_packets:
            # the usual frame: its packet is here, nothing is stale (see _discard_late),
            # and the buffer cannot be short of the target (the packet due is here)
            newest = self._newest_ts
            assert newest is not None
            self._adapt_down(now, (((newest - playout) & 0xFFFFFFFF) + self.frame_ts)
                             / self.clock_rate)
            return self._take_due(now)
        return self._get_unusual(now)

    def _get_unusual(self, now: float) -> Frame:
        assert self._playout_ts is not None
        self._discard_late()
        level = self.buffered
        if len(self._packets) > self._max_packets:
            # our own playout stalled (an overloaded or paused process) while packets
            # kept coming: more is waiting than the buffer may ever hold. Jump to the
            # target depth at once rather than play out seconds of backlog. (Counted
            # in packets: a sender's timestamp leap spans much but holds little.)
            self._jump_to_target()
            level = self.buffered
        # grow: the buffer holds less than the target, so wait a frame (conceal)
        if level < self.target - self.frame_s and self._packets and \
                self._playout_ts not in self._packets:
            self.stats.inserted += 1
            return Frame(FrameKind.LOST)
        self._adapt_down(now, level)
        return self._take_due(now)

    def _take_due(self, now: float) -> Frame:
        """The packet at the playout point (or what stands in for it), and move on."""
        assert self._playout_ts is not None
        packet = self._packets.pop(self._playout_ts, None)
        if packet is None:
            if not self._packets:
                # nothing in flight (slow sender, pause, end of stream): hold the
                # playout point instead of running ahead of packets still coming
                self._underrun = True
                self.stats.underruns += 1
                return Frame(FrameKind.LOST)
            ahead = min(_ts_diff(ts, self._playout_ts) for ts in self._packets)
            if ahead > self.max_delay * self.clock_rate:
                # the sender's timestamps leapt forward (less than a reset's worth):
                # resume at its next packet instead of concealing the whole gap
                self.stats.resets += 1
                self._playout_ts = (self._playout_ts + ahead) & 0xFFFFFFFF
                return self.get(now)
            self._playout_ts = (self._playout_ts + self.frame_ts) & 0xFFFFFFFF
            self.stats.lost += 1
            return Frame(FrameKind.LOST, next_packet=self._packets.get(self._playout_ts))
        samples = self._frame_len(packet)
        self._playout_ts = (packet.timestamp + samples) & 0xFFFFFFFF
        self.stats.played += 1
        return Frame(FrameKind.AUDIO, packet)

    def _frame_len(self, packet: RtpPacket) -> int:
        if not self._packets or (packet.timestamp + self.frame_ts) & 0xFFFFFFFF in self._packets:
            return self.frame_ts  # the usual case: the negotiated packetization
        later = [ts for ts in self._packets if _ts_diff(ts, packet.timestamp) > 0]
        if later:
            nearest = min(_ts_diff(ts, packet.timestamp) for ts in later)
            if 0 < nearest <= 4 * self.frame_ts:
                return min(nearest, self.frame_ts) if nearest % self.frame_ts else self.frame_ts
        return self.frame_ts

    def _adapt_down(self, now: float, level: float) -> None:
        """Shrink slowly: lower the target once the spread has stayed low for a
        while. Drop frames sooner when more is waiting than the target needs."""
        # shrinking works on a 2 s horizon: the spread need not be re-read every frame
        self._gets_since_needed += 1
        if self._shrink_needed is None or self._gets_since_needed >= 10:
            self._shrink_needed = self._needed_delay()
            self._gets_since_needed = 0
        if self._shrink_needed < self.target - self.frame_s / 2:
            if self._low_since is None:
                self._low_since = now
            elif now - self._low_since >= self._shrink_after:
                self._low_since = now
                self.target = max(self._needed_delay(), self.target - self.frame_s / 2,
                                  self.min_delay)
                self._shrink_needed = None
        else:
            self._low_since = None
        # a fast sender clock, a lowered target, or our own playout having paused
        # leaves audio waiting beyond the target: that is added latency for every
        # later frame, so once it has lasted a moment, drop a frame every 100 ms
        if level > self.target + 2 * self.frame_s:
            if self._high_since is None:
                self._high_since = now
            elif now - self._high_since >= HIGH_HOLD:
                self._skip_one()
                self._high_since = now - HIGH_HOLD + HIGH_SKIP_EVERY
        else:
            self._high_since = None

    def _skip_one(self) -> None:
        assert self._playout_ts is not None
        self._packets.pop(self._playout_ts, None)
        self._playout_ts = (self._playout_ts + self.frame_ts) & 0xFFFFFFFF
        self.stats.dropped += 1

    def _jump_to_target(self) -> None:
        assert self._playout_ts is not None and self._newest_ts is not None
        keep = max(1, round(self.target / self.frame_s))
        depth = (self._newest_ts - (keep - 1) * self.frame_ts) & 0xFFFFFFFF
        for ts in [t for t in self._packets if _ts_diff(t, depth) < 0]:
            del self._packets[ts]
            self.stats.dropped += 1
        # resume at the oldest packet kept (the newest is always kept), not at a gap
        self._playout_ts = min(self._packets, key=lambda t: _ts_diff(t, depth))
        self._high_since = None

    def _discard_late(self) -> None:
        """Drop packets the playout point has passed. Only a packet off the frame
        grid (a sender changing packetization) can be passed over without being
        played, so while the packet due now is here and the buffer is no deeper
        than it can be, there is nothing to look for: this runs every frame of
        every call and must not scan."""
        assert self._playout_ts is not None
        if not self._packets or (self._playout_ts in self._packets
                                 and len(self._packets) <= self._max_packets):
            return
        for ts in [t for t in self._packets if _ts_diff(t, self._playout_ts) < 0]:
            del self._packets[ts]
            self.stats.late += 1

    @property
    def delay(self) -> float:
        return self.target
