"""Per-stream RTP statistics (RFC 3550 appendix A.1, A.3, A.8) and RTCP timing (A.7)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .rtcp import ReportBlock

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
SEQ_MOD = 1 << 16


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp for a Unix time."""
    return int((seconds + 2208988800) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(slots=True)
class ReceiverStats:
    """What we know of one remote source; feeds our report blocks."""

    ssrc: int
    clock_rate: int
    max_seq: int = 0
    cycles: int = 0
    base_seq: int = 0
    bad_seq: int = SEQ_MOD + 1
    probation: int = MIN_SEQUENTIAL
    received: int = 0
    expected_prior: int = 0
    received_prior: int = 0
    jitter: float = 0.0
    transit: int | None = None  # the last packet's relative transit time (A.8)
    last_sr_middle: int = 0
    last_sr_arrival: float | None = None
    initialized: bool = False

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.initialized = True

    def update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1: False when the packet should be discarded (probation, jump)."""
        if not self.initialized:
            self._init_seq(seq)
            self.max_seq = seq - 1
            self.probation = MIN_SEQUENTIAL
        udelta = (seq - self.max_seq) % SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)  # the source restarted: resync
            else:
                self.bad_seq = (seq + 1) % SEQ_MOD
                return False
        self.received += 1
        return True

    def update(self, seq: int, rtp_timestamp: int, arrival: float) -> None:
        """One received packet: ``update_seq`` and ``update_jitter`` together, with
        the usual in-order packet counted without the general path (every packet of
        every call comes through here)."""
        if seq == (self.max_seq + 1) & 0xFFFF and not self.probation:
            if seq == 0:
                self.cycles += SEQ_MOD
            self.max_seq = seq
            self.received += 1
        else:
            self.update_seq(seq)
        transit = int(arrival * self.clock_rate) - rtp_timestamp
        previous = self.transit
        if previous is not None:
            self.jitter += (abs(transit - previous) - self.jitter) / 16
        self.transit = transit

    def update_jitter(self, rtp_timestamp: int, arrival: float) -> None:
        """A.8: interarrival jitter in timestamp units."""
        arrival_ts = int(arrival * self.clock_rate)
        transit = arrival_ts - rtp_timestamp
        if self.transit is not None:
            d = abs(transit - self.transit)
            self.jitter += (d - self.jitter) / 16
        self.transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def on_sender_report(self, ntp: int, now: float) -> None:
        self.last_sr_middle = ntp_middle(ntp)
        self.last_sr_arrival = now

    def report_block(self, now: float) -> ReportBlock:
        """A.3: a report block, and advance the interval counters."""
        expected_interval = self.expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = self.expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else \
            (lost_interval << 8) // expected_interval
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = int((now - self.last_sr_arrival) * 65536)
        return ReportBlock(self.ssrc, min(fraction, 255), self.lost, self.extended_max,
                           int(self.jitter), self.last_sr_middle, dlsr)


def round_trip_time(block: ReportBlock, arrival: float) -> float | None:
    """RTT in seconds from a report block about our stream (RFC 3550 §6.4.1)."""
    if block.last_sr == 0:
        return None
    now_middle = ntp_middle(ntp_from_unix(arrival))
    rtt = (now_middle - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
    return rtt / 65536


def rtcp_interval(members: int, senders: int, rtcp_bandwidth: float, we_sent: bool,
                  avg_rtcp_size: float, initial: bool, rng: random.Random) -> float:
    """A.7: randomized RTCP transmission interval in seconds."""
    rtcp_min_time = 2.5 if initial else 5.0
    n = members
    if senders <= members * 0.25:
        if we_sent:
            rtcp_bandwidth *= 0.25
            n = senders
        else:
            rtcp_bandwidth *= 0.75
            n = members - senders
    t = avg_rtcp_size * n / rtcp_bandwidth if rtcp_bandwidth > 0 else rtcp_min_time
    t = max(t, rtcp_min_time)
    t *= rng.random() + 0.5
    return t / (2.71828 - 1.5)  # compensation for timer reconsideration
