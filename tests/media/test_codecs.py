"""Codec round trips and G.711 exactness."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from confserver.media.codecs import CodecError, default_registry
from confserver.media.codecs.g711 import ALAW_DECODE, ALAW_ENCODE, ULAW_DECODE, ULAW_ENCODE


def tone(rate: int, seconds: float, freq: float = 440.0, amp: int = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def snr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return float(10 * np.log10(np.sum(a**2) / max(np.sum((a - b) ** 2), 1e-9)))


def test_g711_tables_match_the_reference() -> None:
    # SHA-256 prefixes of the tables, checked once bit for bit against the
    # G.711 reference implementation (CPython's audioop) for all 65,536 inputs
    assert hashlib.sha256(ULAW_ENCODE.tobytes()).hexdigest()[:16] == "81d633c9e6972a18"
    assert hashlib.sha256(ALAW_ENCODE.tobytes()).hexdigest()[:16] == "38488f6fd710f468"
    assert ULAW_ENCODE[32768] == 0xFF and ALAW_ENCODE[32768] == 0xD5  # zero
    assert ULAW_DECODE[0xFF] == 0 and ULAW_DECODE[0x00] == -32124
    assert ALAW_DECODE[0xD5] == 8 and ALAW_DECODE[0x55] == -8


@pytest.mark.parametrize("name,min_snr", [("PCMU", 35), ("PCMA", 35)])
def test_g711_round_trip(name: str, min_snr: float) -> None:
    codec = default_registry().create(name)
    x = tone(8000, 0.2)
    y = codec.decode(codec.encode(x))
    delay = 30  # the concealer holds 3.75 ms back (G.711 Appendix I)
    assert not y[:delay].any()
    assert snr(x[:-delay], y[delay:]) >= min_snr


@pytest.mark.parametrize("name,rate,clock,payload", [("G722", 16000, 8000, 160),
                                                     ("opus", 48000, 48000, None)])
def test_wideband_codecs_round_trip(name: str, rate: int, clock: int, payload: int | None) -> None:
    registry = default_registry()
    enc, dec = registry.create(name), registry.create(name)
    assert enc.sample_rate == rate and enc.clock_rate == clock
    frame = rate // 50
    x = tone(rate, 1.0)
    out = []
    for i in range(50):
        data = enc.encode(x[i * frame:(i + 1) * frame])
        if payload is not None:
            assert len(data) == payload
        out.append(dec.decode(data))
    y = np.concatenate(out)
    assert len(y) == len(x)
    assert enc.timestamp_units(frame) == frame * clock // rate
    # codecs delay the signal: compare the spectra's peak instead of samples
    spectrum = np.abs(np.fft.rfft(y[rate // 2:]))
    peak = np.argmax(spectrum) * rate / len(y[rate // 2:])
    assert abs(peak - 440) < 5


def test_plc_conceals_then_fades_to_silence() -> None:
    codec = default_registry().create("PCMU")
    x = tone(8000, 0.2, 200)
    for i in range(10):
        codec.decode(codec.encode(x[i * 160:(i + 1) * 160]))
    first = codec.conceal(160)
    assert np.abs(first).max() > 4000  # keeps the waveform going
    for _ in range(3):
        codec.conceal(160)
    assert np.abs(codec.conceal(160)).max() < 200  # silent after 60 ms of loss


def test_registry_errors() -> None:
    registry = default_registry()
    assert "pcmu" in registry and "g729" not in registry
    with pytest.raises(CodecError):
        registry.create("G729")
    with pytest.raises(CodecError):
        registry.create("PCMU").encode(np.zeros(10, dtype=np.float32))  # type: ignore[arg-type]


def test_opus_uses_libopus_concealment_and_fec() -> None:
    from confserver.media.codecs.av_codecs import Opus
    from confserver.media.codecs.libopus import available

    assert available()
    enc, dec = Opus(bitrate=24000, expected_loss=10), Opus()
    x = tone(48000, 1.0, 300)
    packets = [enc.encode(x[i:i + 960]) for i in range(0, 48000, 960)]
    for packet in packets[:20]:
        dec.decode(packet)
    concealed = dec.conceal(960)
    assert len(concealed) == 960 and np.abs(concealed).max() > 100  # not silence
    rebuilt = dec.recover(packets[21], 960)
    assert rebuilt is not None and len(rebuilt) == 960


def test_stream_rebuilds_lost_opus_frame_from_the_next_packet() -> None:
    from confserver.media.rtp import RtpPacket
    from confserver.media.stream import AudioStream

    sender, receiver = default_registry().create("opus"), default_registry().create("opus")
    stream = AudioStream(receiver, 96, None)
    x = tone(48000, 1.0, 300)
    frames = []
    for i in range(33):
        payload = sender.encode(x[i * 960:(i + 1) * 960])
        if i < 30 and i != 10:  # packet 10 is lost
            stream.receive(bytes(RtpPacket(96, i, i * 960, 7, payload)), i * 0.02)
        frames.append(stream.pull(i * 0.02))
    assert all(f is None or len(f) == 960 for f in frames)
    assert stream.jitter.stats.lost == 1
