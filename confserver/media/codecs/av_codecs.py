"""G.722 and Opus through PyAV (FFmpeg's g722 and libopus)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
import numpy as np

from . import libopus
from .base import CodecError, Pcm
from .libopus import OpusDecoder
from .opus_packet import QuietOpus


class _AvCodec:
    encoder_name = ""
    decoder_name = ""
    sample_rate = 16000

    def __init__(self, options: dict[str, str] | None = None, bit_rate: int | None = None) -> None:
        create: Any = av.CodecContext.create  # audio attributes are untyped in PyAV's stubs
        self._enc: Any = create(self.encoder_name, "w")
        self._enc.sample_rate = self.sample_rate
        self._enc.layout = "mono"
        self._enc.format = "s16"
        self._enc.time_base = Fraction(1, self.sample_rate)
        if bit_rate:
            self._enc.bit_rate = bit_rate
        if options:
            self._enc.options = options
        self._enc.open()
        self._dec: Any = create(self.decoder_name, "r")
        self._dec.sample_rate = self.sample_rate
        self._dec.layout = "mono"
        self._dec.open()
        self._pts = 0
        self._last = np.zeros(0, dtype=np.int16)

    def encode(self, pcm: Pcm) -> bytes:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise CodecError(f"{self.encoder_name} encodes mono int16 PCM")
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += len(pcm)
        return b"".join(bytes(p) for p in self._enc.encode(frame))

    def decode(self, payload: bytes) -> Pcm:
        try:
            frames = self._dec.decode(av.Packet(payload))
        except av.error.FFmpegError as exc:
            raise CodecError(f"{self.decoder_name}: {exc}") from exc
        parts = [self._to_mono_s16(f) for f in frames]
        pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        if len(pcm):
            self._last = pcm
        return pcm

    @staticmethod
    def _to_mono_s16(frame: Any) -> Pcm:
        data = frame.to_ndarray()
        if data.dtype != np.int16:  # float planar from some decoders
            data = np.clip(data * 32767.0, -32768, 32767).astype(np.int16)
        return np.asarray(data.reshape(-1) if data.shape[0] == 1 else data[0], dtype=np.int16)

    def conceal(self, samples: int) -> Pcm:
        # fade the last good frame out; good enough until the codec's own PLC is wired
        if not len(self._last):
            return np.zeros(samples, dtype=np.int16)
        reps = -(-samples // len(self._last))
        tail = np.tile(self._last, reps)[:samples].astype(np.float32)
        self._last = (self._last * 0.5).astype(np.int16)
        return (tail * np.linspace(0.7, 0.2, samples)).astype(np.int16)


class G722(_AvCodec):
    name = "G722"
    clock_rate = 8000  # RFC 3551 §4.5.2: the RTP clock is 8000 although audio is 16 kHz
    sample_rate = 16000
    static_pt: int | None = 9
    encoder_name = "g722"
    decoder_name = "g722"

    def timestamp_units(self, samples: int) -> int:
        return samples // 2


class Opus(_AvCodec):
    name = "opus"
    clock_rate = 48000
    sample_rate = 48000
    static_pt: int | None = None
    encoder_name = "libopus"
    decoder_name = "libopus"

    def __init__(self, bitrate: int = 32000, complexity: int = 5, fec: bool = True,
                 dtx: bool = False, expected_loss: int = 5) -> None:
        options = {"application": "voip", "frame_duration": "20",
                   "compression_level": str(complexity),
                   "packet_loss": str(expected_loss if fec else 0), "dtx": "1" if dtx else "0"}
        if fec:
            options["fec"] = "1"
        super().__init__(options, bitrate)
        # libopus directly for decoding: FFmpeg hides its PLC and FEC
        self._opus = OpusDecoder(self.sample_rate) if libopus.available() else None
        self._quiet = QuietOpus()

    def _decode_now(self, payload: bytes) -> Pcm:
        return super().decode(payload) if self._opus is None else self._opus.decode(payload)

    def decode(self, payload: bytes) -> Pcm:
        self._quiet.before_decode(self._decode_now)
        pcm = self._decode_now(payload)
        self._quiet.decoded(pcm)
        return pcm

    def conceal(self, samples: int) -> Pcm:
        self._quiet.before_decode(self._decode_now)
        if self._opus is None:
            return super().conceal(samples)
        return self._opus.conceal(samples)

    def is_quiet(self, payload: bytes, below_dbov: float) -> bool:
        """DTX, or no voice by the sender's own SILK flags (opus_packet.QuietOpus)."""
        return self._quiet.is_quiet(payload, below_dbov)

    def recover(self, next_payload: bytes, samples: int) -> Pcm | None:
        """A lost frame rebuilt from the in-band FEC of the packet after it."""
        if self._opus is None:
            return None
        self._quiet.before_decode(self._decode_now)
        return self._opus.recover(next_payload, samples)

    def timestamp_units(self, samples: int) -> int:
        return samples
