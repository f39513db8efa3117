"""Which codecs convert packet by packet, and what a converted payload holds."""

from __future__ import annotations

import numpy as np
import pytest

from confserver.media.codecs import default_registry, spandsp
from confserver.media.codecs.base import try_pcm_rate
from confserver.media.codecs.g711 import Pcma, Pcmu
from confserver.media.packet_convert import (
    CODEC_G722_8K,
    CODEC_PCMA,
    CODEC_PCMU,
    CODEC_UNTOUCHED,
    PayloadConverter,
    codec_kind,
    convertible,
    native_codec,
)

needs_spandsp = pytest.mark.skipif(not spandsp.available(), reason="G.722 at 8 kHz is spandsp's")


def g722(rate: int = 8000) -> spandsp.SpanDspG722:
    return spandsp.SpanDspG722(rate)


def test_g711_converts_to_the_other_law_and_to_g722_at_8khz_only() -> None:
    assert codec_kind(Pcmu()) == CODEC_PCMU and codec_kind(Pcma()) == CODEC_PCMA
    assert convertible(Pcmu(), Pcma()) and not convertible(Pcmu(), Pcmu())
    opus = default_registry().create("opus")
    assert try_pcm_rate(opus, 8000)
    assert codec_kind(opus) == CODEC_UNTOUCHED and not convertible(Pcmu(), opus)
    assert native_codec(Pcmu(), True) == (CODEC_PCMU, 0, 0)
    assert native_codec(Pcmu(), False) == (CODEC_UNTOUCHED, 0, 0)
    with pytest.raises(ValueError, match="does not convert"):
        PayloadConverter(Pcmu(), opus)


@needs_spandsp
def test_g722_converts_only_while_its_codec_works_at_8khz() -> None:
    wide = g722(16000)
    assert codec_kind(wide) == CODEC_UNTOUCHED and not convertible(Pcmu(), wide)
    narrow = g722()
    kind, encoder, decoder = native_codec(narrow, True)
    assert kind == CODEC_G722_8K and encoder and decoder and encoder != decoder
    assert convertible(Pcmu(), narrow) and convertible(narrow, Pcma())


def test_a_law_and_mu_law_convert_as_decoding_and_encoding_would() -> None:
    samples = (np.arange(-32768, 32768, 37)).astype(np.int16)
    mu = Pcmu().encode(samples)
    to_a = PayloadConverter(Pcmu(), Pcma())(mu)
    assert len(to_a) == len(mu)
    assert to_a == Pcma().encode(Pcmu().decode_table[np.frombuffer(mu, dtype=np.uint8)])


@needs_spandsp
def test_a_converted_g722_stream_carries_the_g711_audio() -> None:
    t = np.arange(8000) / 8000
    tone = (6000 * np.sin(2 * np.pi * 700 * t)).astype(np.int16)
    to_g722 = PayloadConverter(Pcmu(), g722())
    listener = g722()
    heard = np.concatenate([
        listener.decode_samples(to_g722(Pcmu().encode(tone[i:i + 160])))
        for i in range(0, 8000, 160)])
    assert len(heard) == 8000
    settled, sent = heard[1600:].astype(float), tone[1600:].astype(float)
    assert np.dot(settled, sent) / (np.linalg.norm(settled) * np.linalg.norm(sent)) > 0.98
    # and back: the G.722 packets decoded and encoded as μ-law, one octet a sample
    to_pcmu = PayloadConverter(g722(), Pcmu())
    speaker = g722()
    back = to_pcmu(speaker.encode(tone[:160]))
    assert len(back) == 160
