"""An Opus leg bridged to G.711 works at 8 kHz: libopus converts inside the codec,
the bridge resamples nothing, and the RTP clock stays 48 kHz."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from confserver.media.codecs import default_registry
from confserver.media.codecs.base import CodecError
from confserver.media.codecs.libopus import LibOpus
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream
from mediation.media_bridge import GATEWAY, INTERNAL, MediaBridge


def tone(freq: float, rate: int, seconds: float, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spectrum))])


def test_libopus_works_at_each_of_its_rates_and_refuses_others() -> None:
    for rate in (8000, 16000, 48000):
        codec = LibOpus(rate)
        assert codec.timestamp_units(rate // 50) == 960  # 20 ms on the 48 kHz RTP clock
        out = np.concatenate([codec.decode(codec.encode(frame))
                              for frame in tone(700, rate, 0.4).reshape(-1, rate // 50)])
        assert abs(peak_hz(out[len(out) // 2:], rate) - 700) < 20
        assert len(codec.conceal(rate // 50)) == rate // 50
    with pytest.raises(CodecError):
        LibOpus(11025)


class Session:
    """A media session as the bridge sees one: its stream, no DTMF."""

    dtmf_in_burst = False

    def __init__(self, stream: AudioStream) -> None:
        self.stream = stream

    def set_pcm_rate(self, rate: int) -> bool:
        return self.stream.set_pcm_rate(rate)


def test_an_opus_leg_bridged_to_g711_runs_at_8_khz_with_nothing_resampled() -> None:
    registry = default_registry()
    internal = Session(AudioStream(registry.create("opus"), 111, None))
    gateway = Session(AudioStream(registry.create("PCMU"), 0, None))
    assert not gateway.stream.set_pcm_rate(16000)  # G.711 has one rate
    bridge = MediaBridge(lambda *_a: None, np.random.default_rng(1))
    phone = registry.create("opus")       # the Opus client, at 48 kHz
    speech_in = tone(440, 48000, 2.0)
    to_gateway, to_client = [], []
    pstn = tone(1000, 8000, 2.0)
    for i in range(100):
        now = i * 0.02
        payload = phone.encode(speech_in[i * 960:(i + 1) * 960])
        internal.stream.receive(bytes(RtpPacket(111, i, i * 960, 5, payload)), now)
        gateway.stream.receive(bytes(RtpPacket(0, i, i * 160, 6, gateway.stream.codec.encode(
            pstn[i * 160:(i + 1) * 160]))), now)
        for leg, session, sent in ((GATEWAY, gateway, to_gateway), (INTERNAL, internal, to_client)):
            pcm = session.stream.pull(now)
            if bridge.adopt_rate(leg, session):
                pcm = None
            out = bridge.frame(leg, session, pcm, session.stream.codec.sample_rate,
                               session.stream.frame_samples)
            if out is not None:
                sent.append(session.stream.packetize(out))
    assert internal.stream.codec.sample_rate == 8000
    assert internal.stream.frame_samples == 160 and internal.stream.frame_ts == 960
    assert bridge._to[0].resampler is None and bridge._to[1].resampler is None
    heard_on_pstn = np.concatenate([registry.create("PCMU").decode(RtpPacket.parse(d).payload)
                                    for d in to_gateway[-50:]])
    assert abs(peak_hz(heard_on_pstn, 8000) - 440) < 15
    client = registry.create("opus")
    packets = [RtpPacket.parse(d) for d in to_client[-50:]]
    assert all((b.timestamp - a.timestamp) & 0xFFFFFFFF == 960 for a, b in itertools.pairwise(packets))
    heard_by_client = np.concatenate([client.decode(p.payload) for p in packets])
    assert abs(peak_hz(heard_by_client, 48000) - 1000) < 15


def test_spandsp_g722_interworks_with_ffmpegs_both_ways_and_at_8_khz() -> None:
    from confserver.media.codecs.av_codecs import G722 as FfmpegG722
    from confserver.media.codecs.spandsp import SpanDspG722, available

    if not available():
        pytest.fail("libspandsp2 is missing: make test installs it (baresip depends on it)")
    wide = tone(3000, 16000, 0.6)  # above 4 kHz's reach: survives only in wideband
    ours, theirs = SpanDspG722(), FfmpegG722()
    payloads = [ours.encode(f) for f in wide.reshape(-1, 320)]
    assert all(len(p) == 160 for p in payloads)
    decoded = np.concatenate([theirs.decode(p) for p in payloads])
    assert abs(peak_hz(decoded[4000:], 16000) - 3000) < 20
    receiver = SpanDspG722()
    back = np.concatenate([receiver.decode(theirs.encode(f)) for f in wide.reshape(-1, 320)])
    assert abs(peak_hz(back[4000:], 16000) - 3000) < 20
    # at 8 kHz: 160 samples in, the same 160 octets of G.722 out, read by a 16 kHz decoder
    narrow = SpanDspG722(8000)
    assert narrow.timestamp_units(160) == 160 and SpanDspG722().timestamp_units(320) == 160
    speech = tone(700, 8000, 0.6)
    octets = [narrow.encode(f) for f in speech.reshape(-1, 160)]
    assert all(len(p) == 160 for p in octets)
    wideband_phone = FfmpegG722()
    heard = np.concatenate([wideband_phone.decode(p) for p in octets])
    assert abs(peak_hz(heard[4000:], 16000) - 700) < 20
    assert np.std(heard[4000:]) > 0.5 * np.std(speech)
    local = SpanDspG722(8000)
    again = np.concatenate([local.decode(p) for p in (ours.encode(f) for f in
                                                      tone(700, 16000, 0.6).reshape(-1, 320))])
    assert len(again) == len(speech) and abs(peak_hz(again[2000:], 8000) - 700) < 20
