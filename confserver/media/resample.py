"""Stateful resampling between 8, 16 and 48 kHz (libswresample through PyAV)."""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from .codecs.base import Pcm


class Resampler:
    """Converts a continuous stream frame by frame; keeps filter state between calls."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._pts = 0
        self._impl: Any = None
        if from_rate != to_rate:
            factory: Any = av.AudioResampler
            self._impl = factory(format="s16", layout="mono", rate=to_rate)

    def process(self, pcm: Pcm) -> Pcm:
        if self._impl is None:
            return pcm
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.from_rate
        frame.pts = self._pts
        self._pts += len(pcm)
        out = [f.to_ndarray().reshape(-1) for f in self._impl.resample(frame)]
        return np.concatenate(out).astype(np.int16) if out else np.zeros(0, dtype=np.int16)


def resample_whole(pcm: Pcm, from_rate: int, to_rate: int) -> Pcm:
    """Resample a complete signal (a prompt, a file), tail included."""
    if from_rate == to_rate:
        return pcm
    resampler = Resampler(from_rate, to_rate)
    head = resampler.process(pcm)
    tail = [f.to_ndarray().reshape(-1) for f in resampler._impl.resample(None)]
    return np.concatenate([head, *tail]).astype(np.int16) if tail else head
