"""Call-progress tones with a cadence (ring-back), generated frame by frame.

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


class CadencedTone:
    """The next frames of one tone plan, from the start of its cadence."""

    def __init__(self, plan: TonePlan) -> None:
        self.plan = plan
        self.elapsed = 0.0  # seconds generated so far
        self._amplitude = 32767 * 10 ** ((plan.level_dbm0 - 3.17) / 20)
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


__all__ = ["RINGBACK_PLANS", "CadencedTone", "TonePlan"]
