"""G.711 μ-law (PCMU) and A-law (PCMA), vectorized with lookup tables."""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from ..plc import WaveformRepetitionPlc
from .base import CodecError, Pcm


def _ulaw_decode_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> npt.NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(sign, magnitude, -magnitude).astype(np.int16)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # the G.711 reference works on 14-bit magnitudes with bias 33 and clip 8159
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 0x21
    segment_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(segment_ends, magnitude)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)  # clipped to the largest code
    table: npt.NDArray[np.uint8] = ((code ^ mask) & 0xFF).astype(np.uint8)
    return table


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(pcm >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(pcm < 0, -pcm - 1, pcm), 32767) >> 3  # 13-bit
    octave = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32)
    exponent = np.where(magnitude >= 32, octave - 4, 0)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    table: npt.NDArray[np.uint8] = ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)
    return table


ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
ULAW_ENCODE = _ulaw_encode_table()
ALAW_ENCODE = _alaw_encode_table()


class _G711:
    clock_rate = 8000
    sample_rate = 8000

    def __init__(self, encode_table: npt.NDArray[np.uint8], decode_table: npt.NDArray[np.int16]) -> None:
        self._enc = encode_table
        self._dec = decode_table
        self._plc = WaveformRepetitionPlc(self.sample_rate)
        # payloads relayed untouched, decoded into the concealment history only when
        # it is needed (a loss, or a frame decoded for output); enough for its length
        self._relayed: deque[bytes] = deque(maxlen=4)
        self._quiet_codes: dict[float, bytes] = {}  # see is_quiet

    def is_quiet(self, payload: bytes, below_dbov: float) -> bool:
        """Whether every sample of ``payload`` is so small that the frame's level is
        ``below_dbov`` or quieter, judged on the code bytes without decoding. A
        payload with one louder sample is not quiet (decode it and measure)."""
        codes = self._quiet_codes.get(below_dbov)
        if codes is None:
            limit = 32767 * 10 ** (-below_dbov / 20)  # the RMS can be no more than the peak
            codes = bytes(c for c in range(256) if abs(int(self._dec[c])) <= limit)
            self._quiet_codes[below_dbov] = codes
        return bool(payload) and not payload.translate(None, codes)

    def encode(self, pcm: Pcm) -> bytes:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise CodecError("G.711 encodes mono int16 PCM")
        return self._enc[pcm.astype(np.int32) + 32768].tobytes()

    def _catch_up(self) -> None:
        while self._relayed:
            self._plc.keep(self._dec[np.frombuffer(self._relayed.popleft(), dtype=np.uint8)])

    def decode(self, payload: bytes) -> Pcm:
        if self._relayed:
            self._catch_up()
        pcm = self._dec[np.frombuffer(payload, dtype=np.uint8)]
        return self._plc.good_frame(pcm)  # 3.75 ms behind, for smooth concealment

    @property
    def decode_table(self) -> npt.NDArray[np.int16]:
        """Payload byte → sample: lets many streams' payloads be decoded in one lookup."""
        return self._dec

    def keep(self, payload: bytes) -> None:
        """The payload was relayed untouched: keep concealment history in step."""
        self._relayed.append(payload)

    def conceal(self, samples: int) -> Pcm:
        if self._relayed:
            self._catch_up()
        return self._plc.conceal(samples)

    def timestamp_units(self, samples: int) -> int:
        return samples


class Pcmu(_G711):
    name = "PCMU"
    static_pt: int | None = 0

    def __init__(self) -> None:
        super().__init__(ULAW_ENCODE, ULAW_DECODE)


class Pcma(_G711):
    name = "PCMA"
    static_pt: int | None = 8

    def __init__(self) -> None:
        super().__init__(ALAW_ENCODE, ALAW_DECODE)
