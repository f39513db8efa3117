"""CPU time another process spent during a window of the load generator's run.

Pass/fail at a size says little when two versions both pass; the server's CPU
share at the same load tells them apart, and it is far less noisy on a shared
machine than the size where late frames begin.
"""

from __future__ import annotations

import os

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of ``pid`` so far; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # after the command name: state is field 3 of stat(5), utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


class WindowCpu:
    """Samples ``pid`` when the window opens and when it closes; ``share`` is the
    fraction of one core it used in between (None without a pid or a reading)."""

    def __init__(self, pid: int | None, opens: float, closes: float) -> None:
        self.pid, self.opens, self.closes = pid, opens, closes
        self._start: tuple[float, float] | None = None
        self.share: float | None = None

    def poll(self, now: float) -> None:
        if self.pid is None or self.share is not None or now < self.opens:
            return
        used = cpu_seconds(self.pid)
        if used is None:
            self.pid = None
            return
        if self._start is None:
            self._start = (now, used)
        elif now >= self.closes and now > self._start[0]:
            self.share = round((used - self._start[1]) / (now - self._start[0]), 3)
