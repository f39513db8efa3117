"""libopus through ctypes: the decoder for what FFmpeg does not expose (the codec's
own packet loss concealment and in-band FEC recovery, RFC 6716 §4.4, §2.1.7), and
the encoder and decoder at any of Opus's PCM rates (8, 12, 16, 24 or 48 kHz; the
RTP clock stays 48 kHz), so a leg bridged to G.711 encodes and decodes at 8 kHz
with no resampling and a fraction of the work.

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
from .opus_packet import QuietOpus

OPUS_OK = 0
OPUS_APPLICATION_VOIP = 2048
OPUS_SET_BITRATE = 4002
OPUS_SET_COMPLEXITY = 4010
OPUS_SET_INBAND_FEC = 4012
OPUS_SET_PACKET_LOSS_PERC = 4014
OPUS_SET_DTX = 4016
PCM_RATES = (8000, 12000, 16000, 24000, 48000)
MAX_PACKET = 1500


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
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int)]
        lib.opus_encode.restype = ctypes.c_int32
        lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                    ctypes.c_char_p, ctypes.c_int32]
        lib.opus_encoder_ctl.restype = ctypes.c_int  # variadic: (state, request, int)
        lib.opus_encoder_destroy.restype = None
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
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


class OpusEncoder:
    """Mono libopus encoder (VoIP application) at ``rate`` Hz."""

    def __init__(self, rate: int = 48000, bitrate: int = 32000, complexity: int = 5,
                 fec: bool = True, expected_loss: int = 5, dtx: bool = False) -> None:
        if _LIB is None:
            raise CodecError("libopus is not available")
        error = ctypes.c_int(0)
        self._state = _LIB.opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, ctypes.byref(error))
        if error.value != OPUS_OK or not self._state:
            raise CodecError(f"opus_encoder_create failed ({error.value})")
        self.rate = rate
        for request, value in ((OPUS_SET_BITRATE, bitrate), (OPUS_SET_COMPLEXITY, complexity),
                               (OPUS_SET_INBAND_FEC, int(fec)),
                               (OPUS_SET_PACKET_LOSS_PERC, expected_loss if fec else 0),
                               (OPUS_SET_DTX, int(dtx))):
            result = _LIB.opus_encoder_ctl(ctypes.c_void_p(self._state), ctypes.c_int(request),
                                           ctypes.c_int(value))
            if result != OPUS_OK:
                raise CodecError(f"opus_encoder_ctl({request}, {value}) failed ({result})")
        self._out = ctypes.create_string_buffer(MAX_PACKET)

    def encode(self, pcm: Pcm) -> bytes:
        assert _LIB is not None
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise CodecError("Opus encodes mono int16 PCM")
        frame = np.ascontiguousarray(pcm)
        length = _LIB.opus_encode(self._state, frame.ctypes.data, len(frame), self._out, MAX_PACKET)
        if length < 0:
            raise CodecError(f"opus_encode of {len(frame)} samples at {self.rate} Hz failed ({length})")
        return self._out.raw[:length]

    def __del__(self) -> None:
        if _LIB is not None and getattr(self, "_state", None):
            _LIB.opus_encoder_destroy(self._state)
            self._state = None


class LibOpus:
    """The Opus codec on libopus alone. Its PCM rate can be changed (``set_pcm_rate``)
    to the rate of whatever it is bridged to: the RTP clock stays 48 kHz, and libopus
    does the rate conversion inside the codec, far cheaper than encoding 48 kHz."""

    name = "opus"
    clock_rate = 48000
    static_pt: int | None = None
    pcm_rates = PCM_RATES

    def __init__(self, sample_rate: int = 48000, bitrate: int = 32000, complexity: int = 5,
                 fec: bool = True, dtx: bool = False, expected_loss: int = 5) -> None:
        self._settings = (bitrate, complexity, fec, expected_loss, dtx)
        self.sample_rate = 0
        self.set_pcm_rate(sample_rate)

    def set_pcm_rate(self, rate: int) -> None:
        """Work at ``rate`` from now on (fresh encoder and decoder state)."""
        if rate not in PCM_RATES:
            raise CodecError(f"Opus has no PCM rate of {rate} Hz")
        if rate == self.sample_rate:
            return
        bitrate, complexity, fec, expected_loss, dtx = self._settings
        self._encoder = OpusEncoder(rate, bitrate, complexity, fec, expected_loss, dtx)
        self._decoder = OpusDecoder(rate)
        self._quiet = QuietOpus()
        self.sample_rate = rate

    def encode(self, pcm: Pcm) -> bytes:
        return self._encoder.encode(pcm)

    def decode(self, payload: bytes) -> Pcm:
        decoder = self._decoder
        self._quiet.before_decode(decoder.decode)
        pcm = decoder.decode(payload)
        self._quiet.decoded(pcm)
        return pcm

    def conceal(self, samples: int) -> Pcm:
        self._quiet.before_decode(self._decoder.decode)
        return self._decoder.conceal(samples)

    def recover(self, next_payload: bytes, samples: int) -> Pcm | None:
        """A lost frame rebuilt from the in-band FEC of the packet after it."""
        self._quiet.before_decode(self._decoder.decode)
        return self._decoder.recover(next_payload, samples)

    def is_quiet(self, payload: bytes, below_dbov: float) -> bool:
        """DTX, or no voice by the sender's own SILK flags (opus_packet.QuietOpus)."""
        return self._quiet.is_quiet(payload, below_dbov)

    def timestamp_units(self, samples: int) -> int:
        return samples * self.clock_rate // self.sample_rate
