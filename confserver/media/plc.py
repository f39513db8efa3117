"""Packet loss concealment by pitch waveform repetition (after ITU-T G.711 Appendix I).

Output runs 3.75 ms behind input, so that when a loss begins the last quarter
pitch period of real signal can be overlap-added into the synthetic one
instead of jumping. On a loss the last pitch period of the history is
repeated (its end faded into what precedes its start, so each wrap is
seamless) and attenuated 20% per 10 ms after the first 10 ms; after 60 ms of
loss the output is silence. The first good frame after a loss is
overlap-added with the continued synthetic signal (1/4 pitch, plus 4 ms per
further 10 ms of loss).

Good frames are the common case and cost one concatenation: they stay int16
and the history is only assembled (from the last few frames) when a loss
begins.

When good frames are relayed untouched rather than played from here
(``keep``), nothing can be held back, so the concealment runs without the
delay: the repeated period starts one pitch period back, which is where a
periodic signal continues, and only the end of the loss is overlap-added.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

Pcm = npt.NDArray[np.int16]
Float = npt.NDArray[np.float32]


SILENT_PEAK = 33.0  # about -60 dBov: below this a frame counts as silence


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
        # the most recent frames (good or synthetic), newest last; enough to cover history_len
        self._recent: deque[npt.NDArray[np.int16] | Float] = deque()
        self._recent_len = 0
        self._held: Pcm | Float = np.zeros(self.delay, dtype=np.int16)  # output not yet released
        self.lost_samples = 0
        self._period: Float | None = None
        self._pos = 0
        self._pitch_len = self.max_pitch
        self._tail = np.zeros(0, dtype=np.float32)
        self._delayed = True  # False once frames are relayed past us (keep)

    # ------------------------------------------------------------ good frames
    def good_frame(self, pcm: Pcm) -> Pcm:
        """Record a decoded frame; returns the (3.75 ms delayed) audio to play."""
        self._push(pcm)
        if not self.lost_samples and not self._delayed:
            return pcm
        if not self.lost_samples and len(pcm) >= self.delay:
            held = self._held
            if held.dtype != np.int16:
                held = np.clip(held, -32768, 32767).astype(np.int16)
            d = len(held)
            self._held = pcm[len(pcm) - d:]
            out: Pcm = np.concatenate((held, pcm[:len(pcm) - d]))
            return out
        frame = pcm.astype(np.float32)
        if len(self._tail):
            n = min(len(self._tail), len(frame))
            ramp = np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1]
            frame = frame.copy()
            frame[:n] = frame[:n] * ramp + self._tail[:n] * (1.0 - ramp)
        self.lost_samples = 0
        self._period = None
        self._tail = np.zeros(0, dtype=np.float32)
        return self._release(frame)

    def keep(self, pcm: Pcm) -> None:
        """A good frame that was relayed as received rather than played from here:
        only remember it, so a loss right after it is concealed from real signal."""
        if len(pcm) < self.delay:
            self.good_frame(pcm)
            return
        self._push(pcm)
        self._delayed = False
        self.lost_samples = 0
        self._period = None
        self._tail = np.zeros(0, dtype=np.float32)

    def _release(self, frame: Float) -> Pcm:
        if not self._delayed:
            played: Pcm = np.clip(frame, -32768, 32767).astype(np.int16)
            return played
        n, d = len(frame), len(self._held)
        out = np.empty(n, dtype=np.float32)
        out[:d] = self._held
        out[d:] = frame[: n - d]
        self._held = frame[n - d:].copy()
        released: Pcm = np.clip(out, -32768, 32767).astype(np.int16)
        return released

    def _push(self, frame: Pcm | Float) -> None:
        self._recent.append(frame)
        self._recent_len += len(frame)
        while self._recent_len - len(self._recent[0]) >= self.history_len:
            self._recent_len -= len(self._recent.popleft())

    def _history_is_silent(self) -> bool:
        """The last 20 ms (and what is held back) are below -60 dBov."""
        recent = self._recent[-1] if self._recent else None
        if recent is None:
            return True
        level = float(np.abs(recent).max()) if len(recent) else 0.0
        held = float(np.abs(self._held).max()) if len(self._held) else 0.0
        return max(level, held) < SILENT_PEAK

    @property
    def history(self) -> Float:
        """The last ``history_len`` samples played or synthesized (zeros before the start)."""
        joined = np.concatenate([f.astype(np.float32) for f in self._recent]) if self._recent \
            else np.zeros(0, dtype=np.float32)
        if len(joined) >= self.history_len:
            return joined[-self.history_len:]
        return np.concatenate((np.zeros(self.history_len - len(joined), dtype=np.float32), joined))

    def _pitch(self, history: Float) -> int:
        """Pitch period by normalized autocorrelation over the last 20 ms (all lags at once)."""
        window = 20 * self.rate // 1000
        target = history[-window:]
        # candidates[k] is the window ending max_pitch - k samples before the target's end
        span = history[-window - self.max_pitch:-self.min_pitch]
        candidates = sliding_window_view(span, window)
        cross = candidates @ target
        energy = np.einsum("ij,ij->i", candidates, candidates)
        energy_t = float(np.dot(target, target)) + 1e-9
        score = cross / np.sqrt(energy_t * (energy + 1e-9))
        lags = np.arange(self.max_pitch, self.min_pitch - 1, -1)
        # the shortest lag wins a tie, as a scan from short to long lags would pick it
        return int(lags[::-1][np.argmax(score[::-1])])

    # ------------------------------------------------------------ losses
    def _start_loss(self) -> None:
        history = self.history
        pitch = self._pitch(history)
        self._pitch_len = pitch
        overlap = pitch // 4
        period = history[-pitch:].copy()
        before = history[-pitch - overlap:-pitch]
        self._held = self._held.astype(np.float32)
        if overlap:
            ramp = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]
            if self._delayed:
                # the real signal still held back fades into the synthetic one ...
                self._held[-overlap:] = self._held[-overlap:] * (1.0 - ramp) + before * ramp
            # ... and the period's own end fades the same way, so every wrap is seamless
            period[-overlap:] = period[-overlap:] * (1.0 - ramp) + before * ramp
        self._period = period
        self._pos = 0

    def conceal(self, samples: int) -> Pcm:
        ten_ms = self.rate // 100
        silent_from = self.rate * self.fade_start_ms // 1000 + int(ten_ms / self.fade_per_10ms)
        if self._period is not None and self.lost_samples >= silent_from:
            # faded out completely: a long gap (or a peer gone quiet) costs next to nothing
            self.lost_samples += samples
            tail_len = self._pitch_len // 4 + (self.lost_samples // ten_ms - 1) * self.rate // 250
            self._tail = np.zeros(tail_len, dtype=np.float32)
            silence = np.zeros(samples, dtype=np.float32)
            self._push(silence)
            return self._release(silence)
        if self._period is None:
            if self._history_is_silent():
                # nothing to repeat: concealing silence is silence, without a pitch search
                self._period = np.zeros(self._pitch_len, dtype=np.float32)
                self._pos = 0
                self.lost_samples = silent_from  # straight to the cheap path above
                return self.conceal(samples)
            self._start_loss()
        assert self._period is not None
        period = self._period
        idx = (self._pos + np.arange(samples)) % len(period)
        out = period[idx].copy()
        self._pos = int((self._pos + samples) % len(period))
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
