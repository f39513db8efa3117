"""When the media clock's frames are due, and how a late clock catches up.

A periodic timer that skips to the next boundary (``LoopingCall.withCount``)
hands a late clock two frames at once. Doing both in one go costs twice a
frame's work, which ends past the next boundary too once a frame takes more
than half the interval: the clock then settles at half rate, every packet
going out in pairs 40 ms apart, and never recovers. This clock runs one
frame per call instead and says "again at once" while it is behind, so the
reactor can read the socket between frames and the backlog drains in the
spare time of the frames that follow. Frames further behind than
``max_behind`` are dropped (a stall of the whole process: sending them all
would only flood the peers). Pure: the caller passes ``now`` and sets the
timer to :meth:`delay`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    late: bool  # ran an interval or more after it was due
    dropped: int  # frames given up before this one, the clock having fallen too far behind


class FrameClock:
    def __init__(self, interval: float, now: float, max_behind: int = 5) -> None:
        if interval <= 0 or max_behind < 0:
            raise ValueError("the interval must be positive and max_behind not negative")
        self.interval = interval
        self.max_behind = max_behind
        self._origin = now
        self._next = 1  # the number of the next frame; due at origin + number * interval

    @property
    def next_due(self) -> float:
        # counted from the origin, not summed interval by interval: no drift in floats
        return self._origin + self._next * self.interval

    def take(self, now: float) -> Frame | None:
        """The frame to run now (None: the timer fired early, nothing is due yet)."""
        # a timer may fire a hair early by float rounding: a microsecond counts as due
        if now < self.next_due - 1e-6:
            return None
        behind = int((now - self.next_due + 1e-6) // self.interval)
        dropped = max(0, behind - self.max_behind)
        self._next += dropped
        late = now - self.next_due >= self.interval - 1e-6
        self._next += 1
        return Frame(late, dropped)

    def delay(self, now: float) -> float:
        """Seconds until the next frame is due: 0 while the clock is behind."""
        wait = self.next_due - now
        return wait if wait > 1e-6 else 0.0
