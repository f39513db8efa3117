"""How many calls may be up at once, by who answers for them."""

from __future__ import annotations

from collections import Counter


class CallLimits:
    """Calls nobody vouched for (``caller`` None: not signed in, not from a gateway)
    are limited per source address and in total; a signed-in user's (``user:...``)
    per user. Gateways' calls are limited by each gateway's own ``max_calls``."""

    def __init__(self, per_source: int = 10, unknown_total: int = 200,
                 per_user: int = 10) -> None:
        self.per_source = per_source
        self.unknown_total = unknown_total
        self.per_user = per_user
        self._by_source: Counter[str] = Counter()
        self._by_user: Counter[str] = Counter()
        self.unknown = 0
        self.refused = 0

    def admit(self, caller: str | None, source: str) -> str | None:
        """Count one more call: None when it may go on, else why not (not counted)."""
        if caller is None:
            if self._by_source[source] >= self.per_source:
                self.refused += 1
                return f"too many calls from {source}"
            if self.unknown >= self.unknown_total:
                self.refused += 1
                return "too many calls from callers who did not sign in"
            self._by_source[source] += 1
            self.unknown += 1
        elif caller.startswith("user:"):
            if self._by_user[caller] >= self.per_user:
                self.refused += 1
                return f"too many calls at once for {caller[5:]}"
            self._by_user[caller] += 1
        return None

    def release(self, caller: str | None, source: str) -> None:
        if caller is None:
            if self._by_source[source] > 0:
                self._by_source[source] -= 1
                if not self._by_source[source]:
                    del self._by_source[source]
                self.unknown -= 1
        elif caller.startswith("user:") and self._by_user[caller] > 0:
            self._by_user[caller] -= 1
            if not self._by_user[caller]:
                del self._by_user[caller]
