"""Failed attempts per key within a sliding window ("10 per 10 minutes")."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable


class AttemptWindow:
    """A key may fail ``limit`` times within ``seconds``; beyond that it is refused
    until its oldest failure leaves the window."""

    def __init__(self, limit: int, seconds: float, max_keys: int = 100_000) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("limit must be at least 1 and seconds positive")
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.seconds:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def exhausted(self, key: Hashable, now: float) -> bool:
        """``key`` has used up its failures for now."""
        times = self._recent(key, now)
        return times is not None and len(times) >= self.limit

    def retry_after(self, key: Hashable, now: float) -> float:
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return times[0] + self.seconds - now

    def failed(self, key: Hashable, now: float) -> None:
        times = self._recent(key, now)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._failures.popitem(last=False)
            times = self._failures[key] = deque(maxlen=self.limit)
        else:
            self._failures.move_to_end(key)
        times.append(now)

    def __len__(self) -> int:
        return len(self._failures)
