"""DTMF in its three forms: RFC 4733 telephone-events, SIP INFO bodies, in-band tones.

The in-band detector works in two stages:

1. Coarse: a DFT at the eight DTMF frequencies over short sliding windows
   (102 samples, hop 34 at 8 kHz), computed for a whole frame in one matrix
   product. A window is a candidate when one row tone and one column tone
   stand well above the rest of their group and carry most of its energy.
2. Verify: a burst of windows agreeing on one digit counts only when its
   length (windows at least half-filled with the tone, times the hop) reaches
   30 ms - between the 20 ms that must be ignored and the 40 ms that must be
   detected - and when a fine FFT of the burst puts both tones within 2.5% of
   nominal (±1.5% must pass, ±3.5% must not) with acceptable twist. Speech
   rarely survives all of these, which is what keeps talk-off low.

A digit is reported once per burst: when the burst ends, or after 60 ms of
tone so that callers can barge in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .codecs.base import Pcm

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
EVENT_CODES = "0123456789*#ABCD"


class DtmfError(ValueError):
    """A malformed telephone-event payload or INFO body, or an unknown digit."""


def digit_to_event(digit: str) -> int:
    index = EVENT_CODES.find(digit.upper())
    if index < 0 or len(digit) != 1:
        raise DtmfError(f"{digit!r} is not a DTMF digit")
    return index


def event_to_digit(event: int) -> str | None:
    return EVENT_CODES[event] if 0 <= event < 16 else None


# ------------------------------------------------------------------ RFC 4733

@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int      # 0..63, -dBm0
    duration: int    # timestamp units

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise DtmfError("telephone-event payload shorter than 4 bytes")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def __bytes__(self) -> bytes:
        return struct.pack("!BBH", self.event, (0x80 if self.end else 0) | (self.volume & 0x3F),
                           self.duration & 0xFFFF)


class TelephoneEventReceiver:
    """Reports each event once, whatever the retransmissions and end redundancy."""

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._order: list[int] = []

    def receive(self, timestamp: int, payload: bytes) -> str | None:
        event = TelephoneEvent.parse(payload)
        if timestamp in self._seen:
            return None
        self._seen.add(timestamp)
        self._order.append(timestamp)
        if len(self._order) > 64:
            self._seen.discard(self._order.pop(0))
        return event_to_digit(event.event)


@dataclass(frozen=True, slots=True)
class EventPacket:
    payload: bytes
    marker: bool
    timestamp: int   # the event's start timestamp (constant through the event)


def telephone_event_packets(digit: str, start_timestamp: int, duration_ms: int = 100,
                            clock_rate: int = 8000, ptime_ms: int = 20, volume: int = 10,
                            end_repeats: int = 3) -> list[EventPacket]:
    """The packets, one per ptime, that send one digit (RFC 4733 §2.5)."""
    event = digit_to_event(digit)
    step = clock_rate * ptime_ms // 1000
    total = clock_rate * duration_ms // 1000
    packets = []
    elapsed = step
    first = True
    while elapsed < total:
        packets.append(EventPacket(bytes(TelephoneEvent(event, False, volume, elapsed)), first,
                                   start_timestamp))
        first = False
        elapsed += step
    end = bytes(TelephoneEvent(event, True, volume, total))
    packets += [EventPacket(end, first and i == 0, start_timestamp) for i in range(end_repeats)]
    return packets


# ------------------------------------------------------------------ SIP INFO

def parse_info_body(content_type: str, body: bytes) -> tuple[str, int | None]:
    """(digit, duration ms) from an application/dtmf-relay or application/dtmf body."""
    ctype = content_type.split(";")[0].strip().lower()
    text = body.decode("ascii", "replace").strip()
    if ctype == "application/dtmf":
        digit = text[:1]
        digit_to_event(digit)
        return digit.upper(), None
    if ctype == "application/dtmf-relay":
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, _, value = line.partition("=")
            fields[key.strip().lower()] = value.strip()
        signal = fields.get("signal", "")
        if signal.isdigit() and len(signal) == 2 and int(signal) < 16:  # 10, 11 = *, #
            signal = EVENT_CODES[int(signal)]
        digit_to_event(signal)
        duration = fields.get("duration")
        return signal.upper(), int(duration) if duration and duration.isdigit() else None
    raise DtmfError(f"{content_type!r} is not a DTMF body type")


def info_body(digit: str, duration_ms: int = 160) -> tuple[str, bytes]:
    digit_to_event(digit)
    return "application/dtmf-relay", f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()


# ------------------------------------------------------------------ tones

def tone_for(digit: str, duration_ms: int, sample_rate: int = 8000, level_dbm0: float = -10.0,
             twist_db: float = 0.0, deviation: float = 0.0) -> Pcm:
    """A DTMF tone pair; ``twist_db`` > 0 makes the high tone weaker."""
    index = digit_to_event(digit)
    char = EVENT_CODES[index]
    row = next(r for r, keys in enumerate(KEYPAD) if char in keys)
    col = KEYPAD[row].index(char)
    n = sample_rate * duration_ms // 1000
    t = np.arange(n) / sample_rate
    # 0 dBm0 is 3.17 dB below a full-scale sine (G.711 convention)
    amp = 32767 * 10 ** ((level_dbm0 - 3.17) / 20)
    low = amp * np.sin(2 * np.pi * ROWS[row] * (1 + deviation) * t)
    high = amp * 10 ** (-twist_db / 20) * np.sin(2 * np.pi * COLS[col] * (1 + deviation) * t)
    return np.clip(low + high, -32768, 32767).astype(np.int16)


@dataclass(frozen=True, slots=True)
class DetectedDigit:
    digit: str
    start: int        # sample index where the burst started
    duration_ms: float


def dtmf_basis(rate: int, window: int) -> npt.NDArray[np.complex128]:
    """The DFT rows of the eight DTMF frequencies over one window: (window, 8)."""
    freqs = np.array(ROWS + COLS)
    n = np.arange(window)
    basis: npt.NDArray[np.complex128] = np.exp(-2j * np.pi * np.outer(n, freqs) / rate)
    return basis


def block_windows(blocks: npt.NDArray[np.float64], window: int, offsets: tuple[int, ...]
                  ) -> npt.NDArray[np.float64]:
    """The analysis windows of each block: (streams, len(offsets), window)."""
    view = np.lib.stride_tricks.sliding_window_view(blocks, window, axis=1)
    out: npt.NDArray[np.float64] = view[:, offsets[0]:offsets[-1] + 1:offsets[1] - offsets[0]]
    return out


class DtmfDetector:
    """Streaming in-band DTMF detector for 8 kHz audio."""

    WINDOW = 102
    HOP = 32
    BLOCK = 160                  # 20 ms: the detector works block by block
    TAIL = WINDOW - HOP          # samples of the previous block the next one's windows reach
    OFFSETS = tuple(range(0, BLOCK, HOP))  # window starts within a block (tail included)

    def __init__(self, sample_rate: int = 8000, min_duration_ms: float = 30.0,
                 max_deviation: float = 0.025, normal_twist_db: float = 10.0,
                 reverse_twist_db: float = 6.0, min_level_dbm0: float = -33.0,
                 min_purity: float = 0.75) -> None:
        if sample_rate != 8000:
            raise ValueError("the DTMF detector works on 8 kHz audio")
        self.rate = sample_rate
        self.min_duration = min_duration_ms / 1000
        self.max_deviation = max_deviation
        self.normal_twist = normal_twist_db
        self.reverse_twist = reverse_twist_db
        self.min_purity = min_purity
        self._basis = dtmf_basis(sample_rate, self.WINDOW)
        amp = 32767 * 10 ** ((min_level_dbm0 - 3.17) / 20)
        self.min_power = (amp * self.WINDOW / 2) ** 2 * 0.5
        self._pending = np.zeros(0, dtype=np.float64)  # input short of a whole block
        self._tail = np.zeros(self.TAIL, dtype=np.float64)
        self._position = 0          # absolute index of the next block's first new sample
        self._burst: tuple[int, int] | None = None  # (row, col)
        self._burst_start = 0
        self._burst_windows: list[tuple[int, float]] = []  # (window start, tone power)
        self._misses = 0
        # windows touched by a 10 ms break: (gap + window) / hop
        self._max_misses = (sample_rate // 100 + self.WINDOW) // self.HOP + 1
        self._reported = False
        self._history = np.zeros(0, dtype=np.float64)  # samples kept for verification
        self._history_start = 0

    @property
    def in_burst(self) -> bool:
        return self._burst is not None

    def feed(self, pcm: Pcm) -> list[DetectedDigit]:
        """Detect digits in the next samples of the stream (any length)."""
        samples = pcm.astype(np.float64)
        pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        out: list[DetectedDigit] = []
        n = self.BLOCK
        while len(pending) >= n:
            block = np.concatenate([self._tail, pending[:n]])
            windows = block_windows(block[np.newaxis, :], self.WINDOW, self.OFFSETS)[0]
            out += self.block(block, windows, np.abs(windows @ self._basis) ** 2)
            pending = pending[n:]
        self._pending = pending
        return out

    def tail(self) -> npt.NDArray[np.float64]:
        return self._tail

    def block(self, block: npt.NDArray[np.float64], windows: npt.NDArray[np.float64],
              powers: npt.NDArray[np.float64], loud: bool | None = None) -> list[DetectedDigit]:
        """One block: the previous block's tail and BLOCK new samples, its windows and
        their power at the eight DTMF frequencies (a bank computes these for many
        streams at once). ``loud``: some window has a tone pair above the floor."""
        block_start = self._position - self.TAIL
        self._position += self.BLOCK
        self._tail = block[self.BLOCK:]
        if loud is None:
            energies = np.einsum("ij,ij->i", windows, windows)
            loud = bool(self.candidates(powers, energies).any())
        if not loud and self._burst is None:
            # nothing can start or go on: keep just enough for a burst starting next block
            self._history = block
            self._history_start = block_start
            return []
        if len(self._history) and \
                self._history_start + len(self._history) == block_start + self.TAIL:
            self._history = np.concatenate([self._history, block[self.TAIL:]])
        else:
            self._history, self._history_start = block, block_start
        out: list[DetectedDigit] = []
        energies = np.einsum("ij,ij->i", windows, windows)
        for offset, power, energy in zip(self.OFFSETS, powers, energies, strict=True):
            detected = self._step(block_start + offset, power, float(energy))
            if detected:
                out.append(detected)
        self._trim_history()
        return out

    def _trim_history(self) -> None:
        keep_from = self._burst_start if self._burst is not None else self._position - self.TAIL
        keep_from = min(keep_from, self._position - self.TAIL) - self.WINDOW
        drop = keep_from - self._history_start
        if drop > 0:
            self._history = self._history[drop:]
            self._history_start += drop

    def candidates(self, powers: npt.NDArray[np.float64], energies: npt.NDArray[np.float64]
                   ) -> npt.NDArray[np.bool_]:
        """Which windows hold a tone pair ``_classify`` would accept (any shape of
        windows, the eight powers last): the same tests, for all windows at once."""
        rows, cols = powers[..., :4], powers[..., 4:]
        pr, pc = rows.max(axis=-1), cols.max(axis=-1)
        second_r = np.partition(rows, -2, axis=-1)[..., -2]
        second_c = np.partition(cols, -2, axis=-1)[..., -2]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = 2 * (pr + pc) / (self.WINDOW * np.maximum(energies, 1e-9))
            ratio_db = 10 * np.log10(np.maximum(pr, 1e-30) / np.maximum(pc, 1e-30))
        ok: npt.NDArray[np.bool_] = np.asarray((pr >= self.min_power) & (pc >= self.min_power)
                                     & (second_r * 4 <= pr) & (second_c * 4 <= pc)
                                     & (share >= 0.5) & (ratio_db <= self.normal_twist + 3)
                                     & (-ratio_db <= self.reverse_twist + 3))
        return ok

    def _classify(self, power: npt.NDArray[np.float64], energy: float) -> tuple[int, int, float] | None:
        rows, cols = power[:4], power[4:]
        r, c = int(np.argmax(rows)), int(np.argmax(cols))
        pr, pc = float(rows[r]), float(cols[c])
        if pr < self.min_power or pc < self.min_power:
            return None
        # each tone well above the others of its group (6 dB)
        if np.sort(rows)[-2] * 4 > pr or np.sort(cols)[-2] * 4 > pc:
            return None
        # the pair carries most of the window's energy: per-tone power is N/2 * energy share
        share = 2 * (pr + pc) / (self.WINDOW * max(energy, 1e-9))
        if share < 0.5:
            return None
        ratio_db = 10 * np.log10(pr / pc)
        if ratio_db > self.normal_twist + 3 or -ratio_db > self.reverse_twist + 3:
            return None
        return r, c, pr + pc

    def _step(self, start: int, power: npt.NDArray[np.float64], energy: float) -> DetectedDigit | None:
        found = self._classify(power, energy)
        key = (found[0], found[1]) if found else None
        if self._burst is not None and key == self._burst:
            assert found is not None
            self._burst_windows.append((start, found[2]))
            self._misses = 0
            if not self._reported and self._duration() >= 0.06:
                return self._verify()
            return None
        if self._burst is not None:
            self._misses += 1
            if self._misses <= self._max_misses and key is None:
                return None  # a break of up to 10 ms does not end the burst (Q.24)
            result = None if self._reported else self._verify()
            self._burst = None
            self._reported = False
            self._burst_windows = []
            if result is not None:
                return result
        if key is not None:
            assert found is not None
            self._burst = key
            self._burst_start = start
            self._burst_windows = [(start, found[2])]
            self._misses = 0
        return None

    def _full_windows(self) -> list[int]:
        peak = max(p for _, p in self._burst_windows)
        return [s for s, p in self._burst_windows if p >= 0.25 * peak]  # at least half-filled

    def _duration(self) -> float:
        return len(self._full_windows()) * self.HOP / self.rate

    def _verify(self) -> DetectedDigit | None:
        assert self._burst is not None
        duration = self._duration()
        if duration < self.min_duration:
            return None
        full = self._full_windows()
        first, last = full[0], full[-1] + self.WINDOW
        segment = self._history[first - self._history_start:last - self._history_start]
        if len(segment) < self.WINDOW:
            return None
        row, col = self._burst
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), 8192))
        f_row, a_row = self._peak(spectrum, ROWS[row])
        f_col, a_col = self._peak(spectrum, COLS[col])
        if abs(f_row / ROWS[row] - 1) > self.max_deviation or \
                abs(f_col / COLS[col] - 1) > self.max_deviation:
            return None
        twist = 20 * np.log10(max(a_row, 1e-9) / max(a_col, 1e-9))
        if twist > self.normal_twist or -twist > self.reverse_twist:
            return None
        # purity: the two tones carry most of the burst (chords and speech do not)
        power = spectrum ** 2
        lobe = 2 * self.rate / len(segment)  # Hann main-lobe half-width in Hz
        bin_hz = self.rate / 8192
        in_tones = sum(float(np.sum(power[int((f - lobe) / bin_hz):int((f + lobe) / bin_hz) + 1]))
                       for f in (f_row, f_col))
        if in_tones < self.min_purity * float(np.sum(power)):
            return None
        self._reported = True
        return DetectedDigit(KEYPAD[row][col], self._burst_start, duration * 1000)

    def _peak(self, spectrum: npt.NDArray[np.float64], nominal: float) -> tuple[float, float]:
        """Frequency and amplitude of the strongest component within ±5% of nominal."""
        bin_hz = self.rate / 8192
        lo, hi = int(nominal * 0.95 / bin_hz), int(nominal * 1.05 / bin_hz) + 1
        k = lo + int(np.argmax(spectrum[lo:hi]))
        a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom else 0.0
        return (k + shift) * bin_hz, float(b)


class DetectorBank:
    """Runs the in-band detectors of many streams together, once per media tick.

    Each stream puts its 20 ms; ``run`` stacks them and finds every window's
    power at the eight DTMF frequencies with one matrix product, so a stream
    with nothing tone-like costs a row of that product and a few assignments
    instead of a dozen small array operations of its own."""

    def __init__(self) -> None:
        self._basis = dtmf_basis(8000, DtmfDetector.WINDOW)
        self._queued: list[tuple[DtmfDetector, Pcm, object]] = []
        # G.711 payloads not decoded by their stream, by decoding table
        self._encoded: dict[int, tuple[npt.NDArray[np.int16],
                                       list[tuple[DtmfDetector, bytes, object]]]] = {}

    def put(self, detector: DtmfDetector, pcm: Pcm, owner: object) -> None:
        """Queue 20 ms at 8 kHz (other lengths go through the detector on its own)."""
        self._queued.append((detector, pcm, owner))

    def put_encoded(self, detector: DtmfDetector, payload: bytes,
                    table: npt.NDArray[np.int16], owner: object) -> None:
        """Queue 20 ms of G.711 (``table`` decodes it): every such payload of the tick
        is decoded in one lookup."""
        entry = self._encoded.get(id(table))
        if entry is None:
            entry = self._encoded[id(table)] = (table, [])
        entry[1].append((detector, payload, owner))

    def _decode_encoded(self) -> None:
        for table, items in self._encoded.values():
            block = DtmfDetector.BLOCK
            whole = [(d, p, o) for d, p, o in items if len(p) == block]
            if whole:
                samples = table[np.frombuffer(b"".join(p for _d, p, _o in whole),
                                              dtype=np.uint8)].reshape(len(whole), block)
                self._queued += [(d, samples[i], o) for i, (d, _p, o) in enumerate(whole)]
            self._queued += [(d, table[np.frombuffer(p, dtype=np.uint8)], o)
                             for d, p, o in items if len(p) != block]
        self._encoded = {}

    def run(self) -> list[tuple[object, DetectedDigit]]:
        if self._encoded:
            self._decode_encoded()
        queued, self._queued = self._queued, []
        found: list[tuple[object, DetectedDigit]] = []
        whole = [(d, p, o) for d, p, o in queued if len(p) == DtmfDetector.BLOCK
                 and not len(d._pending)]
        for detector, pcm, owner in queued:
            if len(pcm) != DtmfDetector.BLOCK or len(detector._pending):
                found += [(owner, digit) for digit in detector.feed(pcm)]
        if not whole:
            return found
        tail = DtmfDetector.TAIL
        blocks = np.empty((len(whole), tail + DtmfDetector.BLOCK), dtype=np.float64)
        for i, (detector, pcm, _owner) in enumerate(whole):
            blocks[i, :tail] = detector.tail()
            blocks[i, tail:] = pcm
        windows = block_windows(blocks, DtmfDetector.WINDOW, DtmfDetector.OFFSETS)
        powers = np.abs(windows @ self._basis) ** 2
        energies = np.einsum("ijk,ijk->ij", windows, windows)
        loud: npt.NDArray[np.bool_] = np.asarray(
            whole[0][0].candidates(powers, energies).any(axis=1))
        for i, (detector, _pcm, owner) in enumerate(whole):
            digits = detector.block(blocks[i], windows[i], powers[i], bool(loud[i]))
            found += [(owner, digit) for digit in digits]
        return found
