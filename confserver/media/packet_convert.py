"""Converting a relayed packet's payload between 8 kHz codecs of one octet a sample.

G.711 μ-law, G.711 A-law and G.722 with its codec working at 8 kHz (spandsp's
``G722_SAMPLE_RATE_8000``: the lower sub-band only, which is all a G.711 leg can
carry) share what matters to a relay: an 8000 Hz RTP clock (RFC 3551 §4.5.2
gives G.722 one, for historical reasons) and one payload octet for each 8 kHz
sample. A packet of one converts into a packet of the other with the same
length, sequence number and timestamp, so two such legs can be paired as a
relay is (no jitter buffer, no resampling, no added delay), each packet
decoded and re-encoded as it passes. That is how rtpengine transcodes too.

The same conversion is done in C by the compiled relay (fastrelay.c) on the
very codec states used here, so a pair can move between the two mid-call.
``CODEC_*`` are that module's numbers for the codecs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .codecs.base import AudioCodec, Pcm

CODEC_UNTOUCHED, CODEC_PCMU, CODEC_PCMA, CODEC_G722_8K = 0, 1, 2, 3


def codec_kind(codec: AudioCodec) -> int:
    """The codec's number for converting (CODEC_UNTOUCHED: not convertible)."""
    if codec.clock_rate != 8000 or codec.sample_rate != 8000:
        return CODEC_UNTOUCHED
    if codec.name == "PCMU" and hasattr(codec, "decode_table"):
        return CODEC_PCMU
    if codec.name == "PCMA" and hasattr(codec, "decode_table"):
        return CODEC_PCMA
    if codec.name == "G722" and hasattr(codec, "native_state"):
        return CODEC_G722_8K
    return CODEC_UNTOUCHED


def convertible(source: AudioCodec, target: AudioCodec) -> bool:
    """Packets of ``source`` can become packets of ``target`` one by one (different
    codecs of the kind the module describes)."""
    a, b = codec_kind(source), codec_kind(target)
    return a != b and a != CODEC_UNTOUCHED and b != CODEC_UNTOUCHED


def native_codec(codec: AudioCodec, convert: bool) -> tuple[int, int, int]:
    """What fastrelay's ``lend`` takes of a leg's codec: its number (CODEC_UNTOUCHED
    when the pair is not converted) and, for G.722, its encoder and decoder states."""
    kind = codec_kind(codec) if convert else CODEC_UNTOUCHED
    if kind == CODEC_G722_8K:
        encoder, decoder = codec.native_state()  # type: ignore[attr-defined]
        return kind, encoder, decoder
    return kind, 0, 0


class PayloadConverter:
    """Payloads of ``source`` converted to ``target`` (``convertible``), packet by
    packet, each codec's state running on as the packets pass. Neither side
    conceals anything: a packet lost before us is a gap in the numbering the far
    end sees and conceals itself, as with any relayed packet."""

    def __init__(self, source: AudioCodec, target: AudioCodec) -> None:
        if not convertible(source, target):
            raise ValueError(f"{source.name} at {source.sample_rate} Hz does not convert "
                             f"packet by packet to {target.name} at {target.sample_rate} Hz")
        self.source = source
        self.target = target
        table = getattr(source, "decode_table", None)
        self._decode: Callable[[bytes], Pcm]
        if table is not None:
            self._decode = lambda payload: table[np.frombuffer(payload, dtype=np.uint8)]
        else:
            self._decode = source.decode_samples  # type: ignore[attr-defined]

    def __call__(self, payload: bytes) -> bytes:
        pcm = self._decode(payload)
        if len(pcm) != len(payload):  # not for these codecs; keep the packet's length
            pcm = np.resize(pcm, len(payload)) if len(pcm) else np.zeros(len(payload),
                                                                         dtype=np.int16)
        return self.target.encode(pcm)
