"""libopus's decoder through ctypes, for what FFmpeg does not expose: the codec's
own packet loss concealment and in-band FEC recovery (RFC 6716 §4.4, §2.1.7).

The library comes with the PyAV wheel (``av.libs``); a system libopus.so.0 is
used when that is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

import av
import numpy as np

from .base import CodecError, Pcm

OPUS_OK = 0


def _load() -> ctypes.CDLL | None:
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    candidates = sorted(glob.glob(os.path.join(libs_dir, "libopus*.so*")))
    system = ctypes.util.find_library("opus")
    if system:
        candidates.append(system)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        lib.opus_decoder_destroy.restype = None
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    return None


_LIB = _load()


def available() -> bool:
    return _LIB is not None


class OpusDecoder:
    """Mono libopus decoder at ``rate`` Hz with PLC and FEC."""

    def __init__(self, rate: int = 48000) -> None:
        if _LIB is None:
            raise CodecError("libopus is not available")
        error = ctypes.c_int(0)
        self._state = _LIB.opus_decoder_create(rate, 1, ctypes.byref(error))
        if error.value != OPUS_OK or not self._state:
            raise CodecError(f"opus_decoder_create failed ({error.value})")
        self.rate = rate
        self._max = rate * 120 // 1000  # the longest Opus packet

    def _run(self, data: bytes | None, samples: int, fec: bool) -> Pcm:
        assert _LIB is not None
        out = (ctypes.c_int16 * self._max)()
        length = len(data) if data else 0
        count = _LIB.opus_decode(self._state, data, length, out, samples if data is None or fec
                                 else self._max, 1 if fec else 0)
        if count < 0:
            raise CodecError(f"opus_decode failed ({count})")
        pcm: Pcm = np.ctypeslib.as_array(out)[:count].astype(np.int16)
        return pcm

    def decode(self, payload: bytes) -> Pcm:
        return self._run(payload, self._max, fec=False)

    def conceal(self, samples: int) -> Pcm:
        """The codec's own concealment for a lost frame."""
        return self._run(None, samples, fec=False)

    def recover(self, next_payload: bytes, samples: int) -> Pcm:
        """Rebuild a lost frame from the FEC data carried in the next packet."""
        return self._run(next_payload, samples, fec=True)

    def __del__(self) -> None:
        if _LIB is not None and getattr(self, "_state", None):
            _LIB.opus_decoder_destroy(self._state)
            self._state = None
