"""Frames a mixer can tell are quiet without decoding them (AudioStream.pull with
``quiet_below_dbov``): G.711 codes near zero, Opus DTX, RFC 6464 audio levels."""

from __future__ import annotations

import numpy as np
import pytest

from confserver.media.codecs import default_registry
from confserver.media.codecs.g711 import Pcma, Pcmu
from confserver.media.level import level_dbov
from confserver.media.rtp import RtpPacket, set_audio_level
from confserver.media.stream import AudioStream

GATE = 50.0


def constant(value: int, n: int = 160) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


@pytest.mark.parametrize("codec", [Pcmu(), Pcma()], ids=["PCMU", "PCMA"])
def test_g711_quiet_is_decided_on_the_codes_and_agrees_with_the_measured_level(codec) -> None:
    rng = np.random.default_rng(5)
    for rms in (0.0, 10.0, 30.0, 60.0, 100.0, 150.0, 400.0, 3000.0):
        pcm = np.clip(rng.normal(0, rms, 160), -32768, 32767).astype(np.int16)
        payload = codec.encode(pcm)
        decoded = Pcmu().decode(payload) if codec.name == "PCMU" else Pcma().decode(payload)
        measured = level_dbov(float(np.sqrt(np.mean(decoded.astype(np.float64) ** 2))))
        if codec.is_quiet(payload, GATE):
            assert measured >= GATE  # never calls a frame quiet that the gate would let in
    assert codec.is_quiet(codec.encode(constant(0)), GATE)
    assert codec.is_quiet(codec.encode(constant(-40)), GATE)
    assert not codec.is_quiet(codec.encode(constant(400)), GATE)
    one_loud = constant(0)
    one_loud[77] = 2000
    assert not codec.is_quiet(codec.encode(one_loud), GATE)
    assert not codec.is_quiet(b"", GATE)


def stream_of(name: str, pt: int) -> AudioStream:
    stream = AudioStream(default_registry().create(name), pt, None)
    stream.quiet_below_dbov = GATE
    return stream


def feed(stream: AudioStream, payloads: list[bytes | None], frame_ts: int,
         level: list[int | None] | None = None, ext_id: int = 1) -> list[tuple[bool, np.ndarray | None]]:
    """Receive one packet (None: nothing sent) and pull one frame every 20 ms."""
    out = []
    for i, payload in enumerate(payloads):
        if payload is not None:
            packet = RtpPacket(stream.payload_type, i, i * frame_ts, 9, payload)
            if level is not None and level[i] is not None:
                set_audio_level(packet, ext_id, False, level[i] or 0)
            stream.receive(bytes(packet), i * 0.02)
        pcm = stream.pull(i * 0.02)
        out.append((stream.last_quiet, pcm))
    return out


def test_a_silent_g711_participant_is_not_decoded_and_a_talker_is() -> None:
    stream = stream_of("PCMU", 0)
    silent = Pcmu().encode(constant(0))
    loud = Pcmu().encode((3000 * np.sin(np.arange(160) / 3)).astype(np.int16))
    out = feed(stream, [silent] * 20 + [loud] * 10 + [silent] * 10, 160)
    started = [(quiet, pcm) for quiet, pcm in out if pcm is not None]
    # playout starts 40 ms (two frames) after the first packet
    assert [quiet for quiet, _ in started] == [True] * 20 + [False] * 10 + [True] * 8
    assert all(not pcm.any() for quiet, pcm in started if quiet)
    assert all(np.abs(pcm).max() > 1000 for _quiet, pcm in started[20:30])
    assert stream.stats.quiet_frames == 28


def test_without_a_threshold_every_frame_is_decoded() -> None:
    stream = AudioStream(default_registry().create("PCMU"), 0, None)
    feed(stream, [Pcmu().encode(constant(0))] * 10, 160)
    assert stream.stats.quiet_frames == 0 and not stream.last_quiet


def test_the_senders_audio_level_decides_before_the_payload() -> None:
    stream = stream_of("PCMU", 0)
    stream.audio_level_id = 3
    loud = Pcmu().encode((3000 * np.sin(np.arange(160) / 3)).astype(np.int16))
    silent = Pcmu().encode(constant(0))
    # the sender says 127 (silence) over a loud payload, then 20 dBov over silence
    out = feed(stream, [loud] * 10 + [silent] * 10, 160,
               level=[127] * 10 + [20] * 10, ext_id=3)
    started = [quiet for quiet, pcm in out if pcm is not None]
    assert started == [True] * 10 + [False] * 8


def test_opus_dtx_frames_and_the_pauses_between_them_are_quiet() -> None:
    stream = stream_of("opus", 111)
    sender = default_registry().create("opus")
    t = np.arange(960 * 10) / 48000
    speech = (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    talk = [sender.encode(speech[i * 960:(i + 1) * 960]) for i in range(10)]
    dtx = b"\x08"  # a TOC byte alone: what a DTX sender sends every 400 ms
    payloads: list[bytes | None] = [*talk, dtx, *([None] * 19), dtx, *([None] * 9)]
    out = feed(stream, payloads, 960)
    judged = [quiet for quiet, pcm in out if pcm is not None]
    assert judged[:8] == [False] * 8
    assert all(judged[10:])  # the DTX frame and the silent pause after it
    assert stream.stats.quiet_frames >= 25


def test_quiet_frames_keep_g711_concealment_from_repeating_old_speech() -> None:
    stream = stream_of("PCMU", 0)
    loud = Pcmu().encode((3000 * np.sin(np.arange(160) / 3)).astype(np.int16))
    silent = Pcmu().encode(constant(0))
    stream.quiet_below_dbov = None
    feed(stream, [loud] * 10, 160)
    stream.quiet_below_dbov = GATE
    for i in range(10, 20):
        stream.receive(bytes(RtpPacket(0, i, i * 160, 9, silent)), i * 0.02)
        stream.pull(i * 0.02)
    stream.quiet_below_dbov = None  # a consumer that wants everything conceals the loss
    concealed = stream.codec.conceal(160)
    assert np.abs(concealed).max() < 200  # from the silence kept, not the speech before it


def test_opus_silence_sent_without_dtx_is_judged_quiet_on_the_senders_vad_flags() -> None:
    stream = stream_of("opus", 111)
    sender = default_registry().create("opus")
    t = np.arange(960 * 60) / 48000
    speech = (6000 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)
    silence = np.zeros(960, dtype=np.int16)
    payloads: list[bytes | None] = [sender.encode(silence) for _ in range(100)]
    payloads += [sender.encode(speech[i * 960:(i + 1) * 960]) for i in range(20)]
    out = feed(stream, payloads, 960)
    judged = [quiet for quiet, pcm in out if pcm is not None]
    assert sum(judged[:98]) >= 90  # one silent frame in 26 to 51 is decoded to check
    assert not any(judged[100:])   # speech is decoded
    assert stream.stats.quiet_frames == sum(judged)
