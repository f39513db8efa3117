"""Ring-back tones: frequencies, cadence and continuity across frames."""

from __future__ import annotations

import numpy as np
import pytest

from confserver.media.tones import (
    RINGBACK_PLANS,
    CadencedTone,
    LobbyMusic,
    dbm0_amplitude,
    steady_tone,
    tone_sequence,
)


def generate(plan: str, seconds: float, rate: int, frame: int) -> np.ndarray:
    tone = CadencedTone(RINGBACK_PLANS[plan])
    frames = [tone.frame(frame, rate) for _ in range(int(seconds * rate / frame))]
    return np.concatenate(frames)


def on_off(signal: np.ndarray, rate: int) -> list[bool]:
    """Whether each 10 ms block carries sound."""
    block = rate // 100
    blocks = signal[: len(signal) // block * block].reshape(-1, block).astype(float)
    return list(np.sqrt((blocks ** 2).mean(axis=1)) > 100)


def runs(flags: list[bool]) -> list[tuple[bool, int]]:
    out: list[tuple[bool, int]] = []
    for flag in flags:
        if out and out[-1][0] == flag:
            out[-1] = (flag, out[-1][1] + 1)
        else:
            out.append((flag, 1))
    return out


def peaks(signal: np.ndarray, rate: int, count: int) -> list[float]:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    found: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - f) > 15 for f in found):
            found.append(float(freqs[index]))
        if len(found) == count:
            break
    return sorted(found)


@pytest.mark.parametrize("rate,frame", [(8000, 160), (16000, 320), (48000, 960)])
def test_us_ringback_is_440_plus_480_two_seconds_on_four_off(rate: int, frame: int) -> None:
    signal = generate("us", 12.0, rate, frame)
    assert runs(on_off(signal, rate)) == [(True, 200), (False, 400), (True, 200), (False, 400)]
    assert peaks(signal[: 2 * rate], rate, 2) == pytest.approx([440, 480], abs=2)


def test_uk_ringback_is_a_double_ring() -> None:
    signal = generate("uk", 3.0, 8000, 160)
    assert runs(on_off(signal, 8000)) == [(True, 40), (False, 20), (True, 40), (False, 200)]
    assert peaks(signal[:3200], 8000, 2) == pytest.approx([400, 450], abs=5)


def test_frames_join_without_a_click() -> None:
    # odd frame sizes: the waveform is the same as one long frame
    tone = CadencedTone(RINGBACK_PLANS["eu"])
    pieces = np.concatenate([tone.frame(n, 8000) for n in (37, 160, 3, 800)])
    whole = CadencedTone(RINGBACK_PLANS["eu"]).frame(len(pieces), 8000)
    assert np.array_equal(pieces, whole)


def test_every_plan_is_audible_and_below_clipping() -> None:
    for name, plan in RINGBACK_PLANS.items():
        signal = generate(name, plan.period, 8000, 160)
        assert 300 < np.abs(signal).max() < 16000, name


def test_a_steady_tone_never_stops_and_joins_frames_without_a_click() -> None:
    tone = steady_tone(1000.0, -10.0)
    signal = np.concatenate([tone.frame(160, 8000) for _ in range(400)])  # 8 s
    assert all(on_off(signal, 8000))
    assert peaks(signal, 8000, 1) == pytest.approx([1000.0], abs=2)
    assert np.abs(signal).max() == pytest.approx(dbm0_amplitude(-10.0), rel=0.01)
    assert np.abs(np.diff(signal.astype(float))).max() < 2 * np.pi * 1000 / 8000 * 32767 * 0.3


def test_a_tone_sequence_has_its_parts_gaps_and_ramps() -> None:
    rate = 16000
    out = tone_sequence(rate, ((600.0, 0.1), (0.0, 0.05), (900.0, 0.1)), amplitude=5000.0,
                        ramp_seconds=0.005)
    assert len(out) == int(rate * 0.25)
    assert out[0] == 0 and abs(int(out[-1])) < 100  # ramped, no click at either end
    assert not np.any(out[int(rate * 0.1):int(rate * 0.15)])  # the gap
    assert peaks(out[:int(rate * 0.1)].astype(float), rate, 1) == pytest.approx([600.0], abs=15)
    assert tone_sequence(rate, (), amplitude=1.0, ramp_seconds=0.01).size == 0


def test_lobby_music_is_quiet_and_continuous() -> None:
    music = LobbyMusic()
    signal = np.concatenate([music.frame(8000, 160) for _ in range(500)])  # 10 s
    level = np.sqrt((signal.astype(float) ** 2).mean())
    assert 100 < level < 2000
