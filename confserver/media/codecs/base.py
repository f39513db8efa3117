"""The one interface every audio codec implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]


class CodecError(ValueError):
    """A payload that cannot be decoded, or PCM of the wrong shape."""


class AudioCodec(Protocol):
    """One direction-agnostic codec instance; stateful codecs keep state per stream."""

    name: str          # SDP encoding name
    clock_rate: int    # RTP timestamp rate (8000 for G.722!)
    sample_rate: int   # PCM rate the codec works at
    static_pt: int | None

    def encode(self, pcm: Pcm) -> bytes:
        """PCM (int16, mono, sample_rate) for one frame -> payload."""
        ...

    def decode(self, payload: bytes) -> Pcm:
        """Payload -> PCM (int16, mono, sample_rate)."""
        ...

    def conceal(self, samples: int) -> Pcm:
        """PCM to play for a lost frame of ``samples`` samples."""
        ...

    def timestamp_units(self, samples: int) -> int:
        """RTP timestamp increment for ``samples`` PCM samples."""
        ...


def try_pcm_rate(codec: AudioCodec, rate: int) -> bool:
    """Have ``codec`` work at ``rate`` Hz if it is at that rate already or can be
    set to it (a codec with ``pcm_rates`` and ``set_pcm_rate``: Opus, G.722 on
    spandsp); False when it cannot. The RTP clock rate never changes."""
    if codec.sample_rate == rate:
        return True
    change = getattr(codec, "set_pcm_rate", None)
    if change is None or rate not in getattr(codec, "pcm_rates", ()):
        return False
    change(rate)
    return True

