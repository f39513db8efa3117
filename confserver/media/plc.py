"""Packet loss concealment by pitch waveform repetition (after ITU-T G.711 Appendix I).

Output runs 3.75 ms behind input, so that when a loss begins the last quarter
pitch period of real signal can be overlap-added into the synthetic one
instead of jumping. On a loss the last pitch period of the history is
repeated (its end faded into what precedes its start, so each wrap is
seamless) and attenuated 20% per 10 ms after the first 10 ms; after 60 ms of
loss the output is silence. The first good frame after a loss is
overlap-added with the continued synthetic signal (1/4 pitch, plus 4 ms per
further 10 ms of loss).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
Float = npt.NDArray[np.float32]


class WaveformRepetitionPlc:
    fade_start_ms = 10
    fade_per_10ms = 0.2

    def __init__(self, sample_rate: int = 8000) -> None:
        self.rate = sample_rate
        ms = sample_rate // 1000
        self.min_pitch = 5 * ms           # 200 Hz
        self.max_pitch = 15 * ms          # ~66 Hz
        self.delay = self.max_pitch // 4  # 3.75 ms
        self.history_len = 3 * self.max_pitch + self.max_pitch // 4
        self.history = np.zeros(self.history_len, dtype=np.float32)
        self._held = np.zeros(self.delay, dtype=np.float32)  # output not yet released
        self.lost_samples = 0
        self._period: Float | None = None
        self._pos = 0
        self._pitch_len = self.max_pitch
        self._tail = np.zeros(0, dtype=np.float32)

    # ------------------------------------------------------------ good frames
    def good_frame(self, pcm: Pcm) -> Pcm:
        """Record a decoded frame; returns the (3.75 ms delayed) audio to play."""
        frame = pcm.astype(np.float32)
        self._push(frame)
        if self.lost_samples and len(self._tail):
            n = min(len(self._tail), len(frame))
            ramp = np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1]
            frame = frame.copy()
            frame[:n] = frame[:n] * ramp + self._tail[:n] * (1.0 - ramp)
        self.lost_samples = 0
        self._period = None
        self._tail = np.zeros(0, dtype=np.float32)
        return self._release(frame)

    def _release(self, frame: Float) -> Pcm:
        n, d = len(frame), len(self._held)
        out = np.empty(n, dtype=np.float32)
        out[:d] = self._held
        out[d:] = frame[: n - d]
        self._held = frame[n - d:].copy()
        released: Pcm = np.clip(out, -32768, 32767).astype(np.int16)
        return released

    def _push(self, frame: Float) -> None:
        n = len(frame)
        if n >= self.history_len:
            self.history = frame[-self.history_len:].copy()
        else:
            self.history[:-n] = self.history[n:]
            self.history[-n:] = frame

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

    # ------------------------------------------------------------ losses
    def _start_loss(self) -> None:
        pitch = self._pitch()
        self._pitch_len = pitch
        overlap = pitch // 4
        period = self.history[-pitch:].copy()
        before = self.history[-pitch - overlap:-pitch]
        if overlap:
            ramp = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]
            # the real signal still held back fades into the synthetic one ...
            self._held[-overlap:] = self._held[-overlap:] * (1.0 - ramp) + before * ramp
            # ... and the period's own end fades the same way, so every wrap is seamless
            period[-overlap:] = period[-overlap:] * (1.0 - ramp) + before * ramp
        self._period = period
        self._pos = 0

    def conceal(self, samples: int) -> Pcm:
        if self._period is None:
            self._start_loss()
        assert self._period is not None
        period = self._period
        idx = (self._pos + np.arange(samples)) % len(period)
        out = period[idx].copy()
        self._pos = int((self._pos + samples) % len(period))
        ten_ms = self.rate // 100
        t = np.arange(self.lost_samples, self.lost_samples + samples, dtype=np.float32)
        start = self.rate * self.fade_start_ms // 1000
        gain = np.clip(1.0 - self.fade_per_10ms * np.maximum(t - start, 0) / ten_ms, 0.0, 1.0)
        out *= gain
        self.lost_samples += samples
        # what would come next, blended into the next good frame
        tail_len = self._pitch_len // 4 + max(0, self.lost_samples // ten_ms - 1) * self.rate // 250
        tail_idx = (self._pos + np.arange(max(tail_len, 1))) % len(period)
        self._tail = period[tail_idx] * float(gain[-1])
        self._push(out)
        return self._release(out)
