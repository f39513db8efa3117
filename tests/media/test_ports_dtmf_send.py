"""WAV ports, comfort noise, and DTMF sent in-band and as RFC 4733 events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from confserver.adapters.media.session import PlayerApp
from confserver.adapters.media.wav import MediaFileError, WavRecorder, WavSource, read_wav
from confserver.media.codecs import default_registry
from confserver.media.dtmf import DtmfDetector, TelephoneEvent
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream

from .session_helpers import open_session, rtp


def test_wav_round_trip_and_resampled_playback(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    recorder = WavRecorder(path, 16000)
    tone = (8000 * np.sin(2 * np.pi * 500 * np.arange(16000) / 16000)).astype(np.int16)
    recorder.write(tone)
    recorder.close()
    assert read_wav(path)[0] == 16000
    source = WavSource(path, 8000)
    frames = []
    while (frame := source.read(160)) is not None:
        frames.append(frame)
    assert source.finished and abs(len(frames) - 50) <= 1
    looping = WavSource(path, 8000, loop=True)
    assert all(looping.read(160) is not None for _ in range(200))


def test_bad_wav_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(MediaFileError):
        WavSource(bad, 8000)
    with pytest.raises(MediaFileError):
        WavRecorder(tmp_path / "missing" / "x.wav", 8000)


def test_player_app_plays_records_and_reports_done(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.wav"
    rec = WavRecorder(prompt, 8000)
    rec.write(np.full(800, 1000, np.int16))
    rec.close()
    done: list[bool] = []
    app = PlayerApp(WavSource(prompt, 8000), WavRecorder(tmp_path / "heard.wav", 8000),
                    lambda: done.append(True))
    reactor, _, session, wire, _ = open_session(app)
    for i in range(10):
        session.datagram(rtp(i), ("127.0.0.9", 7777), rtcp_port=False)
        reactor.advance(0.02)
    assert done == [True]
    assert len([d for d, _ in wire.sent if d[1] & 0x7F == 0]) == 5
    app.recorder.close()  # type: ignore[union-attr]
    assert len(read_wav(tmp_path / "heard.wav")[1]) > 0


def test_inband_digits_are_detectable() -> None:
    reactor, _, session, wire, _ = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    for digit in "42#":
        session.send_digit(digit, "inband")
    for _ in range(60):
        reactor.advance(0.02)
    codec = default_registry().create("PCMU")
    pcm = np.concatenate([codec.decode(RtpPacket.parse(d).payload) for d, _ in wire.sent
                          if d[1] & 0x7F == 0])
    assert [d.digit for d in DtmfDetector().feed(pcm)] == list("42#")


def test_rfc4733_digits_sent_with_end_redundancy() -> None:
    reactor, _, session, wire, _ = open_session()
    session.datagram(rtp(0), ("127.0.0.9", 7777), rtcp_port=False)
    session.send_digit("7", "rfc4733", duration_ms=100)
    for _ in range(20):
        reactor.advance(0.02)
    events = [RtpPacket.parse(d) for d, _ in wire.sent if len(d) > 1 and d[1] & 0x7F == 101]
    parsed = [TelephoneEvent.parse(p.payload) for p in events]
    assert {e.event for e in parsed} == {7} and sum(e.end for e in parsed) == 3
    assert events[0].marker and len({p.timestamp for p in events}) == 1
    assert [p.sequence for p in events] == sorted(p.sequence for p in events)


def test_comfort_noise_fills_silence_at_the_announced_level() -> None:
    stream = AudioStream(default_registry().create("PCMU"), 0, None)
    for i in range(5):
        stream.receive(rtp(i), i * 0.02)
    stream.receive(bytes(RtpPacket(13, 5, 5 * 160, 0xABC, bytes([40]))), 0.1)
    frames = [stream.pull(0.1 + i * 0.02) for i in range(20)]
    tail = np.concatenate([f for f in frames[-5:] if f is not None]).astype(float)
    level = 20 * np.log10(np.sqrt(np.mean(tail ** 2)) / 32767)
    assert -43 < level < -37


def test_digits_queued_back_to_back_are_separate_events_and_the_clock_runs_on() -> None:
    """RFC 4733 §2.5.1: a new event has a new timestamp. A digit queued while another
    is still going out starts where that one's packets end, and the audio after both
    is stamped with the time that passed (one frame per packet sent)."""
    stream = AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=1)
    before = stream._ts
    stream.send_digit("1")
    stream.send_digit("2")
    sent = []
    while (data := stream.packetize(np.zeros(160, dtype=np.int16))) is not None:
        packet = RtpPacket.parse(data)
        sent.append(packet)
        if packet.payload_type == 0:
            break
    events = [p for p in sent if p.payload_type == 101]
    starts = sorted({p.timestamp for p in events})
    assert len(starts) == 2 and len(events) == 14  # two 100 ms events, 7 packets each
    assert (starts[1] - starts[0]) % (1 << 32) == 7 * 160
    assert [TelephoneEvent.parse(p.payload).event for p in events if p.timestamp == starts[1]] \
        == [2] * 7
    audio = sent[-1]
    assert audio.payload_type == 0 and (audio.timestamp - before) % (1 << 32) == 14 * 160
