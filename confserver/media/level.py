"""Audio levels in -dBov (RFC 6464's scale: 0 is full scale, 127 silence)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def level_dbov(pcm_rms: float) -> float:
    """RMS of int16 samples -> level in -dBov, 0..127."""
    if pcm_rms <= 0:
        return 127.0
    return max(0.0, min(127.0, -20 * math.log10(pcm_rms / 32767)))


def pcm_level_dbov(pcm: npt.NDArray[np.int16]) -> float:
    """The level of a frame of int16 PCM in -dBov (127 for an empty frame)."""
    if not len(pcm):
        return 127.0
    samples = pcm.astype(np.float64)
    return level_dbov(math.sqrt(float(np.dot(samples, samples)) / len(pcm)))
