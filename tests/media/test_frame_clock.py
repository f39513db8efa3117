"""The media clock's schedule: one frame per call, catching up without skipping."""

from __future__ import annotations

import pytest

from confserver.media.frame_clock import Frame, FrameClock


def test_an_on_time_clock_runs_one_frame_per_interval() -> None:
    clock = FrameClock(0.02, now=100.0)
    assert clock.delay(100.0) == pytest.approx(0.02)
    assert clock.take(100.01) is None  # woken early: nothing due
    assert clock.take(100.02) == Frame(late=False, dropped=0)
    assert clock.delay(100.021) == pytest.approx(0.019)
    assert clock.take(100.0400000001) == Frame(late=False, dropped=0)


def test_a_late_clock_catches_up_one_frame_at_a_time_at_once() -> None:
    """A 30 ms stall: the frame due at 20 ms runs at 50 ms (late), the one due at 40
    ms runs straight after (late too), then the clock waits for 60 ms again."""
    clock = FrameClock(0.02, now=0.0)
    assert clock.take(0.05) == Frame(late=True, dropped=0)
    assert clock.delay(0.055) == 0.0
    assert clock.take(0.055) == Frame(late=False, dropped=0)  # due 40, 15 ms behind
    assert clock.delay(0.056) == pytest.approx(0.004)
    assert clock.take(0.06) == Frame(late=False, dropped=0)


def test_a_stall_longer_than_max_behind_drops_the_oldest_frames() -> None:
    clock = FrameClock(0.02, now=0.0, max_behind=5)
    frame = clock.take(0.5)  # frames due 20..500 ms: 25 owed
    assert frame is not None and frame.dropped == 19 and frame.late
    ran = 1
    while clock.delay(0.5) == 0.0:
        assert clock.take(0.5) is not None
        ran += 1
    assert ran == 6  # the five behind and the one due now
    assert clock.delay(0.5) == pytest.approx(0.02)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        FrameClock(0.0, now=0.0)
    with pytest.raises(ValueError):
        FrameClock(0.02, now=0.0, max_behind=-1)
