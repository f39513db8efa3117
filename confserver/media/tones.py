"""Every tone the server makes: call-progress tones with a cadence (ring-back) and
steady tones, frame by frame; short tone sequences (beeps, entry and exit chimes);
the lobby's music.

Pure code: a ``CadencedTone`` is asked for the next ``samples`` at a sample rate
and keeps its own position in the cadence and the phase of each frequency, so
consecutive frames join without clicks whatever the frame size or rate.

The plans follow the national entries of ITU-T E.180's supplement; each country
listed under a plan uses (close to) that tone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .codecs.base import Pcm


@dataclass(frozen=True, slots=True)
class TonePlan:
    """Frequencies summed while on (optionally amplitude-modulated), and the on/off
    cadence in seconds, starting with "on" and repeating."""

    frequencies: tuple[float, ...]
    cadence: tuple[float, ...]
    level_dbm0: float = -19.0  # per frequency
    modulation_hz: float = 0.0

    @property
    def period(self) -> float:
        return sum(self.cadence)


RINGBACK_PLANS: dict[str, TonePlan] = {
    # North America (ANSI T1.401): 440 + 480 Hz, 2 s on, 4 s off
    "us": TonePlan((440.0, 480.0), (2.0, 4.0)),
    # United Kingdom and Ireland: 400 + 450 Hz, 0.4 on 0.2 off 0.4 on 2.0 off
    "uk": TonePlan((400.0, 450.0), (0.4, 0.2, 0.4, 2.0)),
    # CEPT countries (Germany, Spain, Italy, ...): 425 Hz, 1 s on, 4 s off
    "eu": TonePlan((425.0,), (1.0, 4.0)),
    # France: 440 Hz, 1.5 s on, 3.5 s off
    "fr": TonePlan((440.0,), (1.5, 3.5)),
    # Australia: 400 + 425 Hz modulated at 25 Hz, UK-style double ring
    "au": TonePlan((400.0, 425.0), (0.4, 0.2, 0.4, 2.0), modulation_hz=25.0),
    # Japan: 400 Hz modulated at 16 Hz, 1 s on, 2 s off
    "jp": TonePlan((400.0,), (1.0, 2.0), modulation_hz=16.0),
    # China and Hong Kong/Taiwan-style single ring: 450 Hz, 1 s on, 4 s off
    "cn": TonePlan((450.0,), (1.0, 4.0)),
}


def dbm0_amplitude(level_dbm0: float) -> float:
    """The peak of a sine at ``level_dbm0`` (G.711's 0 dBm0 is 3.17 dB below full scale)."""
    return float(32767 * 10 ** ((level_dbm0 - 3.17) / 20))


class CadencedTone:
    """The next frames of one tone plan, from the start of its cadence."""

    def __init__(self, plan: TonePlan) -> None:
        self.plan = plan
        self.elapsed = 0.0  # seconds generated so far
        self._amplitude = dbm0_amplitude(plan.level_dbm0)
        # cumulative ends of the cadence's segments, "on" at even indexes
        self._edges = np.cumsum(plan.cadence)

    def frame(self, samples: int, rate: int) -> Pcm:
        times = self.elapsed + np.arange(samples) / rate
        self.elapsed += samples / rate
        position = np.mod(times, self.plan.period)
        segment = np.searchsorted(self._edges, position, side="right")
        on = (segment % 2) == 0
        if not on.any():
            return np.zeros(samples, dtype=np.int16)
        wave = np.zeros(samples)
        for frequency in self.plan.frequencies:
            wave += np.sin(2 * np.pi * frequency * times)
        if self.plan.modulation_hz:
            wave *= 0.5 * (1 + np.sin(2 * np.pi * self.plan.modulation_hz * times))
        out: Pcm = np.where(on, self._amplitude * wave, 0.0).astype(np.int16)
        return out


def steady_tone(frequency: float, level_dbm0: float) -> CadencedTone:
    """One frequency, never off (a cadence of one "on" segment)."""
    return CadencedTone(TonePlan((frequency,), (1.0,), level_dbm0))


def tone_sequence(rate: int, parts: tuple[tuple[float, float], ...], amplitude: float,
                  ramp_seconds: float) -> Pcm:
    """Concatenated (frequency Hz, seconds) tones, each ramped up and down over
    ``ramp_seconds`` so it does not click; 0 Hz is a gap."""
    chunks = []
    for frequency, seconds in parts:
        n = int(rate * seconds)
        t = np.arange(n) / rate
        tone = amplitude * np.sin(2 * np.pi * frequency * t) if frequency else np.zeros(n)
        ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (rate * ramp_seconds))
        chunks.append((tone * ramp).astype(np.int16))
    out: Pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return out


class LobbyMusic:
    """A quiet, slowly changing chord loop for callers waiting in the lobby."""

    CHORDS = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6),
              (196.0, 246.9, 293.7))
    CHORD_SECONDS = 2.0
    AMPLITUDE = 900.0  # about -31 dBov per voice

    def __init__(self) -> None:
        self._sample = 0

    def frame(self, rate: int, samples: int) -> Pcm:
        t = (self._sample + np.arange(samples)) / rate
        chord = self.CHORDS[int(self._sample / rate / self.CHORD_SECONDS) % len(self.CHORDS)]
        self._sample += samples
        # each chord swells and fades so the changes are soft
        phase = (t % self.CHORD_SECONDS) / self.CHORD_SECONDS
        envelope = np.sin(np.pi * phase) ** 2
        tone = sum(np.sin(2 * np.pi * f * t) for f in chord)
        out: Pcm = (self.AMPLITUDE * envelope * tone).astype(np.int16)
        return out


__all__ = ["RINGBACK_PLANS", "CadencedTone", "LobbyMusic", "TonePlan", "dbm0_amplitude",
           "steady_tone", "tone_sequence"]
