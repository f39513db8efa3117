"""Ring-back tones: frequencies, cadence and continuity across frames."""

from __future__ import annotations

import numpy as np
import pytest

from confserver.media.tones import RINGBACK_PLANS, CadencedTone


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
