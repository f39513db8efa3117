"""Registration-mode trunks: when to REGISTER, when to refresh, when to move to the
alternate registrar. Pure code; ``trunks.py`` sends the requests.

A granted registration is refreshed at half its lifetime. A failed attempt (no
answer, a 5xx, a rejected challenge) moves to the other registrar when there is one and retries
after a back-off that doubles from 30 s up to 10 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRY_FIRST = 30.0
RETRY_MAX = 600.0


@dataclass
class RegistrationState:
    registrars: tuple[str, ...]
    expires: int = 600
    index: int = 0
    registered_until: float = 0.0
    failures: int = 0

    @property
    def registrar(self) -> str:
        return self.registrars[self.index]

    def registered(self, now: float) -> bool:
        return now < self.registered_until

    def on_success(self, granted: int, now: float) -> float:
        """The registrar granted ``granted`` seconds: the delay before refreshing."""
        granted = max(granted, 1)
        self.registered_until = now + granted
        self.failures = 0
        return max(1.0, granted / 2)

    def on_failure(self, now: float) -> float:
        """The attempt failed: the delay before trying again (on the next registrar)."""
        self.failures += 1
        if len(self.registrars) > 1:
            self.index = (self.index + 1) % len(self.registrars)
        return float(min(RETRY_FIRST * 2.0 ** min(self.failures - 1, 10), RETRY_MAX))
