"""Token buckets per key: a steady rate with a burst on top (RFC 2697 style)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RateLimiter:
    """At most ``rate`` events a second per key on average, ``burst`` at once."""

    __slots__ = ("_buckets", "burst", "max_keys", "rate", "refused")

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        # key -> [tokens, time they were counted]: a list, updated in place
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()
        self.refused = 0

    def allow(self, key: Hashable, now: float) -> bool:
        """Take one token for ``key``: True when there was one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        self._buckets.move_to_end(key)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            self.refused += 1
            return False
        bucket[0] = tokens - 1.0
        return True

    def retry_after(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` has a token again (0 when it has one now)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        return max(0.0, (1.0 - tokens) / self.rate)

    def __len__(self) -> int:
        return len(self._buckets)
