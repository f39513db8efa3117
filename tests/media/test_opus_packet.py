"""Opus packets read without decoding (RFC 6716 §3.2 framing, the SILK VAD flags)
and the quiet judgement built on them (confserver.media.codecs.opus_packet)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from confserver.media.codecs.libopus import LibOpus
from confserver.media.codecs.opus_packet import (
    RECHECK_FRAMES,
    MalformedOpus,
    frames,
    voice_activity,
)
from confserver.media.level import pcm_level_dbov
from tests.media.speech import speech

GATE = 50.0
SILK_WB_20MS = 0x48     # config 9: SILK-only wideband, 20 ms, mono, code 0
SILK_NB_60MS = 0x18     # config 3: SILK-only narrowband, 60 ms (three SILK frames)
CELT_FB_20MS = 0xF8     # config 31: CELT-only fullband, 20 ms


def test_each_frame_packing_code_is_split_into_its_frames() -> None:
    assert frames(bytes([SILK_WB_20MS]) + b"abc") == [b"abc"]
    assert frames(bytes([SILK_WB_20MS | 1]) + b"abcd") == [b"ab", b"cd"]
    assert frames(bytes([SILK_WB_20MS | 2, 1]) + b"abcd") == [b"a", b"bcd"]
    # a two-byte length: 252 + 4 * 1 = 256 bytes in the first frame
    long = bytes(range(256))
    assert frames(bytes([SILK_WB_20MS | 2, 252, 1]) + long + b"z") == [long, b"z"]
    # code 3, constant size: three frames of two bytes
    assert frames(bytes([SILK_WB_20MS | 3, 3]) + b"aabbcc") == [b"aa", b"bb", b"cc"]
    # code 3, variable size, with two bytes of padding at the end
    packet = bytes([SILK_WB_20MS | 3, 0x80 | 0x40 | 2, 2, 1]) + b"a" + b"bcd" + b"\0\0"
    assert frames(packet) == [b"a", b"bcd"]
    # padding over 254 bytes takes several length bytes
    packet = bytes([SILK_WB_20MS | 3, 0x40 | 1, 255, 1]) + b"xy" + bytes(255)
    assert frames(packet) == [b"xy"]


@pytest.mark.parametrize("packet, why", [
    (b"", "TOC"),
    (bytes([SILK_WB_20MS | 1]) + b"abc", "even"),
    (bytes([SILK_WB_20MS | 2]), "missing"),
    (bytes([SILK_WB_20MS | 2, 252]), "cut short"),
    (bytes([SILK_WB_20MS | 2, 9]) + b"ab", "past the packet"),
    (bytes([SILK_WB_20MS | 3]), "count byte"),
    (bytes([SILK_WB_20MS | 3, 0]), "1 to 120 ms"),
    (bytes([SILK_WB_20MS | 3, 7]) + bytes(7), "1 to 120 ms"),       # 140 ms of 20 ms frames
    (bytes([SILK_WB_20MS | 3, 3]) + b"abcd", "do not divide"),
    (bytes([SILK_WB_20MS | 3, 0x40 | 1, 9]) + b"ab", "padding is longer"),
    (bytes([SILK_WB_20MS | 3, 0x40 | 1, 255]), "padding length"),
    (bytes([SILK_WB_20MS | 3, 0x80 | 2, 5]) + b"ab", "past the packet"),
    (bytes([SILK_WB_20MS]) + bytes(1276), "longer than 1275"),
])
def test_packets_that_break_the_framing_rules_are_refused(packet: bytes, why: str) -> None:
    with pytest.raises(MalformedOpus, match=why):
        frames(packet)
    assert voice_activity(packet) is None  # and cannot vouch for anything


def test_the_vad_flags_are_the_top_bits_of_each_frames_first_byte() -> None:
    assert voice_activity(bytes([SILK_WB_20MS, 0x80, 0])) is True
    assert voice_activity(bytes([SILK_WB_20MS, 0x40, 0])) is False   # the LBRR flag alone
    assert voice_activity(bytes([SILK_NB_60MS, 0x20, 0])) is True    # the third SILK frame
    assert voice_activity(bytes([SILK_NB_60MS, 0x1F, 0])) is False   # LBRR flag and data
    # stereo: the side channel's flags follow the mid channel's LBRR flag
    assert voice_activity(bytes([SILK_WB_20MS | 4, 0x20, 0])) is True
    assert voice_activity(bytes([SILK_WB_20MS | 4, 0x50, 0])) is False
    assert voice_activity(bytes([SILK_WB_20MS, 0x20, 0])) is False   # mono: that bit is data
    # two frames: voice in either is voice
    assert voice_activity(bytes([SILK_WB_20MS | 1, 0x00, 0x80])) is True
    assert voice_activity(bytes([SILK_WB_20MS | 1])) is False        # two empty frames
    assert voice_activity(bytes([CELT_FB_20MS, 0xFF, 0xFF])) is None  # no flags in CELT
    assert voice_activity(b"") is None


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Half a second of silence, speech, a second of silence, more speech (8 kHz)."""
    said = speech(Path(tmp_path_factory.mktemp("speech")), "en-us")
    silence = np.zeros(8000, dtype=np.int16)
    return np.concatenate([silence[:4000], said[:24000], silence, said[24000:48000]])


def encode(pcm: np.ndarray, samples: int = 160) -> list[bytes]:
    sender = LibOpus(8000)
    return [sender.encode(pcm[i:i + samples]) for i in range(0, len(pcm) - samples + 1, samples)]


@pytest.mark.parametrize("samples", [160, 320, 480], ids=["20ms", "40ms", "60ms"])
def test_libopus_flags_speech_as_voice_and_silence_as_none(talk: np.ndarray, samples: int) -> None:
    packets = encode(talk, samples)
    flags = [voice_activity(packet) for packet in packets]
    assert None not in flags  # a VoIP encoder at 8 kHz codes SILK
    per_second = 8000 // samples
    assert not any(flags[:per_second // 3])                       # leading silence
    assert sum(flags[per_second:3 * per_second]) > 0.8 * 2 * per_second  # speech


def judge_stream(packets: list[bytes]) -> tuple[list[bool], list[np.ndarray], list[np.ndarray]]:
    """Each packet judged by a receiving codec (decoded unless quiet) and decoded
    by a reference decoder that decodes everything."""
    receiver, reference = LibOpus(8000), LibOpus(8000)
    judged, heard, truth = [], [], []
    for packet in packets:
        quiet = receiver.is_quiet(packet, GATE)
        judged.append(quiet)
        heard.append(np.zeros(160, dtype=np.int16) if quiet else receiver.decode(packet))
        truth.append(reference.decode(packet))
    return judged, heard, truth


def test_frames_judged_quiet_are_quiet_and_silence_is_rarely_decoded(talk: np.ndarray) -> None:
    judged, _heard, truth = judge_stream(encode(talk))
    louder = [i for i, quiet in enumerate(judged) if quiet and pcm_level_dbov(truth[i]) < GATE]
    assert louder == []  # never keeps a frame the mixer's gate would let in from the mix
    # the second of silence between the words (frames 175 to 225), after speech fades
    silence = judged[185:225]
    assert sum(not quiet for quiet in silence) <= len(silence) // (RECHECK_FRAMES // 2) + 1
    assert sum(judged) > 60


def test_the_first_frame_decoded_after_skipped_ones_sounds_as_if_none_were(talk: np.ndarray) -> None:
    judged, heard, truth = judge_stream(encode(talk))
    onsets = [i for i in range(1, len(judged)) if judged[i - 1] and not judged[i]]
    assert len(onsets) >= 2
    for i in onsets + [i + 1 for i in onsets]:
        error = np.sum((heard[i].astype(np.float64) - truth[i]) ** 2)
        signal = np.sum(truth[i].astype(np.float64) ** 2)
        assert error <= signal * 1e-4 + 160  # 40 dB, or within a sample's rounding


def test_a_steady_tone_is_never_judged_quiet_though_silk_hears_no_voice() -> None:
    t = np.arange(8000 * 3) / 8000
    tone = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    packets = encode(tone)
    assert voice_activity(packets[-1]) is False  # SILK's VAD stops calling it voice
    judged, _heard, _truth = judge_stream(packets)
    assert not any(judged)
