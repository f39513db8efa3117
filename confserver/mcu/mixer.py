"""Conference audio mixing, sans-I/O (numpy).

Only participants who are talking enter the mix. The total of the talkers is
summed in int32; a talker hears the total minus its own contribution, and
every non-talker hears the same total. So a conference has at most
``talkers + 1`` distinct mixes, whatever its size, and each distinct
(mix, codec) pair needs encoding only once: the caller encodes per
:attr:`MixResult.mixes` key and sends the bytes to every listener that
shares it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
EVERYONE = "all"  # the mix key of the shared mix heard by non-talkers


def soft_clip(mix: npt.NDArray[np.int32], knee: float = 0.8) -> Pcm:
    """int32 sum -> int16 with a smooth (tanh) knee instead of hard clipping."""
    x = mix.astype(np.float64)
    limit = 32767.0
    threshold = knee * limit
    magnitude = np.abs(x)
    over = magnitude > threshold
    if over.any():
        headroom = limit - threshold
        magnitude[over] = threshold + headroom * np.tanh((magnitude[over] - threshold) / headroom)
        x = np.sign(x) * magnitude
    out: Pcm = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return out


@dataclass(slots=True)
class MixResult:
    mixes: dict[Hashable, Pcm] = field(default_factory=dict)          # mix key -> audio
    listener_mix: dict[Hashable, Hashable | None] = field(default_factory=dict)  # who hears which

    def encode_groups(self, codec_of: dict[Hashable, str]) -> dict[tuple[Hashable, str], list[Hashable]]:
        """(mix key, codec) -> listeners: each key is encoded once, sent to all of them."""
        groups: dict[tuple[Hashable, str], list[Hashable]] = {}
        for listener, key in self.listener_mix.items():
            if key is not None:
                groups.setdefault((key, codec_of[listener]), []).append(listener)
        return groups


class AudioMixer:
    def __init__(self, frame_samples: int, max_talkers: int = 3) -> None:
        self.frame_samples = frame_samples
        self.max_talkers = max_talkers

    def mix(self, frames: dict[Hashable, Pcm | None], talking: set[Hashable],
            listeners: set[Hashable], deaf: set[Hashable] | None = None,
            loudness: dict[Hashable, float] | None = None) -> MixResult:
        """One tick. ``frames``: each participant's decoded frame (None: nothing
        this tick). ``talking``: who the VAD says is speaking (muted ones are
        left out by the caller). ``deaf``: listeners who hear nothing (e.g. in
        the lobby). With more talkers than ``max_talkers``, the loudest win."""
        result = MixResult()
        talkers = [p for p in talking if frames.get(p) is not None]
        if len(talkers) > self.max_talkers:
            level = loudness or {}
            talkers = sorted(talkers, key=lambda p: level.get(p, 0.0), reverse=True)[: self.max_talkers]
        if not talkers:
            for listener in listeners:
                result.listener_mix[listener] = None  # silence: nothing to encode
            return result
        total = np.zeros(self.frame_samples, dtype=np.int32)
        own: dict[Hashable, npt.NDArray[np.int32]] = {}
        for p in talkers:
            frame = frames[p]
            assert frame is not None
            if len(frame) != self.frame_samples:
                raise ValueError(f"frame of {len(frame)} samples for a {self.frame_samples}-sample mixer")
            own[p] = frame.astype(np.int32)
            total += own[p]
        deaf = deaf or set()
        shared_needed = any(lst not in own and lst not in deaf for lst in listeners)
        if shared_needed:
            result.mixes[EVERYONE] = soft_clip(total)
        for listener in listeners:
            if listener in deaf:
                result.listener_mix[listener] = None
            elif listener in own:
                if len(talkers) == 1:
                    result.listener_mix[listener] = None  # alone: hears nothing but itself
                    continue
                key = ("minus", listener)
                result.mixes[key] = soft_clip(total - own[listener])
                result.listener_mix[listener] = key
            else:
                result.listener_mix[listener] = EVERYONE
        return result
