"""Failover decisions for one outbound call. Pure code.

As Lync does: a 5xx, a 408, a transport error or no final answer within the
failover timer moves the call to the next gateway; a 4xx (and a 6xx) ends the
attempt, unless the gateway's response-code translations turn that status into
a 5xx first. No gateway is tried twice for one call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .routing import Attempt

FAILOVER_TIMER = 10.0  # seconds without a final answer before the next gateway


def fails_over(status: int | None, translations: Mapping[int, int] | None = None) -> bool:
    """True when the next gateway should be tried after ``status`` (None: a transport
    error or no final answer in time)."""
    if status is None:
        return True
    status = (translations or {}).get(status, status)
    return status == 408 or 500 <= status < 600


@dataclass
class FailoverSequence:
    """The attempts of one call, in order; each gateway once."""

    attempts: tuple[Attempt, ...]
    tried: list[tuple[str, int | None]] = field(default_factory=list)
    _next: int = 0

    def next_attempt(self, usable: Iterable[str] | None = None) -> Attempt | None:
        allowed = set(usable) if usable is not None else None
        done = {gateway for gateway, _status in self.tried}
        while self._next < len(self.attempts):
            attempt = self.attempts[self._next]
            self._next += 1
            if attempt.gateway in done:
                continue
            if allowed is not None and attempt.gateway not in allowed:
                continue
            return attempt
        return None

    def record(self, gateway: str, status: int | None) -> None:
        self.tried.append((gateway, status))
