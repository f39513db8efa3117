"""Failed attempts per key, answered with an exponentially growing wait."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int
    last: float
    blocked_until: float


class FailureBackoff:
    """After ``free`` failures a key must wait ``first`` seconds before its next try,
    twice as long after each further failure, at most ``longest``; a success (or
    ``forget_after`` quiet seconds) clears it."""

    def __init__(self, free: int = 5, first: float = 1.0, longest: float = 300.0,
                 forget_after: float = 900.0, max_keys: int = 100_000) -> None:
        self.free = free
        self.first = first
        self.longest = longest
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._records: OrderedDict[Hashable, _Record] = OrderedDict()

    def retry_after(self, key: Hashable, now: float) -> float:
        """Seconds ``key`` must still wait before it may try again (0: it may now)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        if now - record.last > self.forget_after:
            del self._records[key]
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, key: Hashable, now: float) -> float:
        """Count a failure; returns the wait it earned (0 while failures are free)."""
        record = self._records.get(key)
        if record is None or now - record.last > self.forget_after:
            if record is None and len(self._records) >= self.max_keys:
                self._records.popitem(last=False)
            record = self._records[key] = _Record(0, now, now)
        self._records.move_to_end(key)
        record.failures += 1
        record.last = now
        wait = 0.0
        if record.failures > self.free:
            wait = min(self.longest, self.first * 2 ** (record.failures - self.free - 1))
            record.blocked_until = now + wait
        return wait

    def succeeded(self, key: Hashable) -> None:
        self._records.pop(key, None)

    def failures(self, key: Hashable) -> int:
        record = self._records.get(key)
        return record.failures if record is not None else 0

    def __len__(self) -> int:
        return len(self._records)
