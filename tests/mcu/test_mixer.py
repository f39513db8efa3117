"""Mixer maths: no self-echo, total minus own is exact, soft clipping, shared mixes."""

from __future__ import annotations

import numpy as np

from confserver.mcu.mixer import EVERYONE, AudioMixer, soft_clip

N = 320


def tone(freq: float, amp: float = 3000) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(N) / 16000)).astype(np.int16)


def test_talker_hears_everyone_but_itself_exactly() -> None:
    a, b, c = tone(300), tone(500), tone(700)
    result = AudioMixer(N).mix({"a": a, "b": b, "c": c}, {"a", "b", "c"}, {"a", "b", "c"})
    heard_by_a = result.mixes[result.listener_mix["a"]]
    assert np.array_equal(heard_by_a, (b.astype(np.int32) + c).astype(np.int16))
    spectrum = np.abs(np.fft.rfft(heard_by_a))
    bins = {f: spectrum[int(f * N / 16000)] for f in (300, 500, 700)}
    assert bins[300] < 1e-6 * bins[500] and bins[700] > 0.5 * bins[500]  # no self-echo


def test_non_talkers_share_one_mix_and_encode_once_per_codec() -> None:
    frames = {f"p{i}": tone(200 + 50 * i, 300) for i in range(100)}
    talking = {"p0", "p1", "p2"}
    listeners = set(frames)
    result = AudioMixer(N).mix(frames, talking, listeners)
    assert len(result.mixes) == 4  # everyone + one per talker
    assert all(result.listener_mix[p] == EVERYONE for p in listeners - talking)
    codec_of = {p: ("opus" if i % 2 else "PCMU") for i, p in enumerate(sorted(listeners))}
    groups = result.encode_groups(codec_of)
    assert len(groups) <= 4 * 2
    assert sum(len(v) for v in groups.values()) == 100


def test_silence_costs_nothing() -> None:
    result = AudioMixer(N).mix({"a": tone(300), "b": None}, set(), {"a", "b"})
    assert result.mixes == {} and set(result.listener_mix.values()) == {None}


def test_single_talker_hears_silence_and_deaf_listeners_get_nothing() -> None:
    result = AudioMixer(N).mix({"a": tone(300), "b": tone(400)}, {"a"}, {"a", "b", "lobby"},
                               deaf={"lobby"})
    assert result.listener_mix == {"a": None, "b": EVERYONE, "lobby": None}


def test_loudest_talkers_kept_when_too_many() -> None:
    frames = {p: tone(300 + 100 * i) for i, p in enumerate("abcde")}
    loud = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 4.0, "e": 2.0}
    result = AudioMixer(N, max_talkers=3).mix(frames, set(frames), {"x"}, loudness=loud)
    spectrum = np.abs(np.fft.rfft(result.mixes[EVERYONE]))
    present = {p for i, p in enumerate("abcde") if spectrum[int((300 + 100 * i) * N / 16000)] > 1e3}
    assert present == {"b", "c", "d"}


def test_soft_clip_is_smooth_and_bounded() -> None:
    x = np.linspace(-100000, 100000, 20001).astype(np.int32)
    y = soft_clip(x)
    assert y.max() <= 32767 and y.min() >= -32768
    assert np.all(np.diff(y.astype(np.int32)) >= 0)  # monotonic
    small = np.array([1000, -1000, 26000], dtype=np.int32)
    assert np.array_equal(soft_clip(small), small.astype(np.int16))  # untouched below the knee
