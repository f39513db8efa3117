"""G.722 on spandsp's C codec (``libspandsp.so.2``) through ctypes.

FFmpeg's G.722 through PyAV costs tens of microseconds a frame in frame objects
and copies around a few microseconds of codec work. spandsp's is called on the
samples directly, and it can also work at 8 kHz (``G722_SAMPLE_RATE_8000``):
the encoder codes 8 kHz audio as the lower sub-band only, the decoder returns
the lower sub-band only. The bitstream is ordinary 64 kbit/s G.722 either way,
so a leg bridged to G.711 (``set_pcm_rate(8000)``) needs no resampling.

The library is Debian's ``libspandsp2`` (baresip depends on it); without it the
registry falls back to PyAV's G.722.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from ..plc import WaveformRepetitionPlc
from .base import CodecError, Pcm

G722_SAMPLE_RATE_8000 = 0x0001
BIT_RATE = 64000
PCM_RATES = (8000, 16000)


def _load() -> ctypes.CDLL | None:
    for name in ("libspandsp.so.2", ctypes.util.find_library("spandsp")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            for side in ("encode", "decode"):
                init = getattr(lib, f"g722_{side}_init")
                init.restype = ctypes.c_void_p
                init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
                free = getattr(lib, f"g722_{side}_free")
                free.restype = ctypes.c_int
                free.argtypes = [ctypes.c_void_p]
            lib.g722_encode.restype = ctypes.c_int
            lib.g722_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                        ctypes.c_int]
            lib.g722_decode.restype = ctypes.c_int
            lib.g722_decode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p,
                                        ctypes.c_int]
        except AttributeError:
            continue  # a spandsp without G.722
        return lib
    return None


_LIB = _load()


def available() -> bool:
    return _LIB is not None


class SpanDspG722:
    """G.722 at 64 kbit/s, PCM at 16 kHz or (``set_pcm_rate(8000)``) 8 kHz."""

    name = "G722"
    clock_rate = 8000  # RFC 3551 §4.5.2: the RTP clock is 8000 although audio is 16 kHz
    static_pt: int | None = 9
    pcm_rates = PCM_RATES

    def __init__(self, sample_rate: int = 16000) -> None:
        self.sample_rate = 0
        self._enc: int | None = None
        self._dec: int | None = None
        if _LIB is None:
            raise CodecError("spandsp's G.722 is not available")
        self.set_pcm_rate(sample_rate)

    def set_pcm_rate(self, rate: int) -> None:
        """Work at ``rate`` from now on (fresh codec state)."""
        if rate not in PCM_RATES:
            raise CodecError(f"G.722 has no PCM rate of {rate} Hz")
        if rate == self.sample_rate:
            return
        assert _LIB is not None
        self._free()
        options = G722_SAMPLE_RATE_8000 if rate == 8000 else 0
        self._enc = _LIB.g722_encode_init(None, BIT_RATE, options)
        self._dec = _LIB.g722_decode_init(None, BIT_RATE, options)
        if not self._enc or not self._dec:
            raise CodecError("g722_encode_init or g722_decode_init failed")
        self.sample_rate = rate
        self._plc = WaveformRepetitionPlc(rate)
        self._out = ctypes.create_string_buffer(rate // 50 * 4)  # ample for any frame

    def encode(self, pcm: Pcm) -> bytes:
        assert _LIB is not None
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise CodecError("G.722 encodes mono int16 PCM")
        samples = np.ascontiguousarray(pcm)
        if len(samples) > len(self._out) * (2 if self.sample_rate == 16000 else 1):
            raise CodecError(f"G.722 frame of {len(samples)} samples is too long")
        length = _LIB.g722_encode(self._enc, self._out, samples.ctypes.data, len(samples))
        return self._out.raw[:length]

    def decode(self, payload: bytes) -> Pcm:
        assert _LIB is not None
        per_octet = 2 if self.sample_rate == 16000 else 1
        out = np.empty(len(payload) * per_octet, dtype=np.int16)
        count = _LIB.g722_decode(self._dec, out.ctypes.data, payload, len(payload))
        if count <= 0:
            return np.zeros(0, dtype=np.int16)  # the stream conceals an empty frame
        return self._plc.good_frame(out[:count])

    def decode_samples(self, payload: bytes) -> Pcm:
        """``payload`` decoded without concealment history (a relay converting packet
        by packet, see packet_convert.py)."""
        assert _LIB is not None
        per_octet = 2 if self.sample_rate == 16000 else 1
        out = np.empty(len(payload) * per_octet, dtype=np.int16)
        count = _LIB.g722_decode(self._dec, out.ctypes.data, payload, len(payload))
        return out[:max(count, 0)]

    def native_state(self) -> tuple[int, int]:
        """The addresses of spandsp's encoder and decoder states: the compiled relay
        (fastrelay.c) codes with them while this codec's pair is lent to it. They
        change only with ``set_pcm_rate``, before which the pair is reclaimed."""
        return self._enc or 0, self._dec or 0

    def conceal(self, samples: int) -> Pcm:
        return self._plc.conceal(samples)

    def timestamp_units(self, samples: int) -> int:
        return samples * self.clock_rate // self.sample_rate

    def _free(self) -> None:
        if _LIB is None:
            return
        if self._enc:
            _LIB.g722_encode_free(self._enc)
        if self._dec:
            _LIB.g722_decode_free(self._dec)
        self._enc = self._dec = None

    def __del__(self) -> None:
        self._free()
