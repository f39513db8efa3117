"""Failed logins throttled per source address and per user, without handing an
attacker a way to lock a user out of their own phones."""

from __future__ import annotations

from collections import OrderedDict

from .backoff import FailureBackoff

KNOWN_FOR = 86_400.0  # s a source that signed in as a user stays known for that user


class LoginThrottle:
    """A source that keeps failing waits longer and longer (``FailureBackoff``), and so
    does a user whose password is being guessed, except from the sources that user
    signed in from lately: the user's own phone keeps working while strangers wait."""

    def __init__(self, by_source: FailureBackoff | None = None,
                 by_user: FailureBackoff | None = None, max_known: int = 100_000) -> None:
        self.by_source = by_source if by_source is not None \
            else FailureBackoff(free=5, first=1.0, longest=300.0)
        self.by_user = by_user if by_user is not None \
            else FailureBackoff(free=10, first=1.0, longest=300.0)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._known_sources: OrderedDict[str, float] = OrderedDict()  # any user's
        self._max_known = max_known

    def _is_known(self, user: str, source: str, now: float) -> bool:
        seen = self._known.get((user, source))
        return seen is not None and now - seen < KNOWN_FOR

    def source_wait(self, source: str, now: float) -> float:
        return self.by_source.retry_after(source, now)

    def user_wait(self, user: str, source: str, now: float) -> float:
        if self._is_known(user, source, now):
            return 0.0
        return self.by_user.retry_after(user, now)

    def failed(self, user: str, source: str, now: float) -> float:
        """Count a failure; the wait it earned the source (or the user)."""
        wait = self.by_source.failed(source, now)
        if not self._is_known(user, source, now):
            wait = max(wait, self.by_user.failed(user, now))
        return wait

    def succeeded(self, user: str, source: str, now: float) -> None:
        self.by_source.succeeded(source)
        key = (user, source)
        self._known[key] = now
        self._known.move_to_end(key)
        while len(self._known) > self._max_known:
            self._known.popitem(last=False)
        self._known_sources[source] = now
        self._known_sources.move_to_end(source)
        while len(self._known_sources) > self._max_known:
            self._known_sources.popitem(last=False)

    def source_known(self, source: str, now: float) -> bool:
        """Someone signed in from ``source`` in the last day."""
        seen = self._known_sources.get(source)
        return seen is not None and now - seen < KNOWN_FOR
