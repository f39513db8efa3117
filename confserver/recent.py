"""Directory answers reused for a moment. Every call asks who a number or an
address belongs to; at a few hundred calls per second those database round
trips were a fifth of the server's time. Answers (absent ones too) are kept for
``ttl`` seconds, the same freshness the routing snapshot has, so an admin's
change is seen within a second. Pure code: the caller supplies the clock and
the loader."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class RecentLookups:
    def __init__(self, clock: Callable[[], float], ttl: float = 1.0,
                 limit: int = 100_000) -> None:
        self.clock = clock
        self.ttl = ttl
        self.limit = limit  # entries; beyond it everything is dropped and asked again
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, load: Callable[[], T], now: float | None = None) -> T:
        """The answer for ``key``, from ``load()`` when none is fresh. Sans-I/O callers
        that are handed the time pass it as ``now``."""
        if now is None:
            now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            value: T = entry[1]
            return value
        value = load()
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["RecentLookups"]
