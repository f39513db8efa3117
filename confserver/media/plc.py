"""Packet loss concealment by pitch waveform repetition (after ITU-T G.711 Appendix I).

On a loss the last pitch period of the history is repeated, cross-faded into
itself, and attenuated 20% per 10 ms after the first 10 ms; after 60 ms of
loss the output is silence. The first good frame after a loss is blended
with the continued synthetic signal so the join does not click.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .codecs.base import Pcm


class WaveformRepetitionPlc:
    def __init__(self, sample_rate: int = 8000) -> None:
        self.rate = sample_rate
        ms = sample_rate // 1000
        self.min_pitch = 5 * ms           # 200 Hz
        self.max_pitch = 15 * ms          # ~66 Hz
        self.history_len = 3 * self.max_pitch + self.max_pitch // 4
        self.history = np.zeros(self.history_len, dtype=np.float32)
        self.lost_samples = 0
        self._period: npt.NDArray[np.float32] | None = None
        self._pos = 0
        self._tail = np.zeros(0, dtype=np.float32)  # synthetic continuation for the join

    def good_frame(self, pcm: Pcm) -> Pcm:
        """Record a decoded frame; returns it, blended if it ends a loss."""
        frame = pcm.astype(np.float32)
        if self.lost_samples and len(self._tail):
            n = min(len(self._tail), len(frame))
            ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
            frame[:n] = frame[:n] * ramp + self._tail[:n] * (1.0 - ramp)
            pcm = np.clip(frame, -32768, 32767).astype(np.int16)
        self.lost_samples = 0
        self._period = None
        self._tail = np.zeros(0, dtype=np.float32)
        self._push(frame)
        return pcm

    def _push(self, frame: npt.NDArray[np.float32]) -> None:
        if len(frame) >= self.history_len:
            self.history = frame[-self.history_len:].copy()
        else:
            self.history = np.concatenate([self.history[len(frame):], frame])

    def _pitch(self) -> int:
        """Pitch period by normalized autocorrelation over the last 20 ms."""
        window = 20 * self.rate // 1000
        target = self.history[-window:]
        best, best_score = self.max_pitch, -1.0
        energy_t = float(np.dot(target, target)) + 1e-9
        for lag in range(self.min_pitch, self.max_pitch + 1):
            cand = self.history[-window - lag:-lag]
            score = float(np.dot(target, cand)) / np.sqrt(energy_t * (float(np.dot(cand, cand)) + 1e-9))
            if score > best_score:
                best, best_score = lag, score
        return best

    def conceal(self, samples: int) -> Pcm:
        if self._period is None:
            pitch = self._pitch()
            period = self.history[-pitch:].copy()
            overlap = pitch // 4
            if overlap:
                # cross-fade the period's end into its start so repetition is smooth
                ramp = np.linspace(0.0, 1.0, overlap, dtype=np.float32)
                before = self.history[-pitch - overlap:-pitch]
                period[:overlap] = period[:overlap] * ramp + before * (1.0 - ramp)
            self._period = period
            self._pos = 0
        out = np.empty(samples, dtype=np.float32)
        period = self._period
        for i in range(samples):
            out[i] = period[self._pos]
            self._pos = (self._pos + 1) % len(period)
        # attenuation: none for the first 10 ms, then -20% per 10 ms, silent after 60 ms
        ten_ms = self.rate // 100
        t = np.arange(self.lost_samples, self.lost_samples + samples, dtype=np.float32)
        gain = np.clip(1.0 - 0.2 * np.maximum(t - ten_ms, 0) / ten_ms, 0.0, 1.0)
        out *= gain
        self.lost_samples += samples
        # what would have come next, for blending into the next good frame
        nxt = np.array([period[(self._pos + k) % len(period)] for k in range(ten_ms // 2)],
                       dtype=np.float32) * float(gain[-1])
        self._tail = nxt
        result = np.clip(out, -32768, 32767).astype(np.int16)
        self._push(out)
        return result
