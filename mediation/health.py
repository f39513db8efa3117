"""Gateway health: OPTIONS probes and call failures decide whether a gateway takes
calls. Pure code; the prober asks ``probe_delay`` when to probe next.

A gateway is marked down after ``failures_to_down`` probes in a row fail; while
down it is probed with back-off (the interval doubles up to ``max_backoff``) and
comes back at the first answer. ``throttle_after`` call failures in a row (5xx,
408, timeouts) take it out of routing for ``throttle_for`` seconds, after which it
gets calls again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthSettings:
    interval: float = 30.0
    failures_to_down: int = 3
    max_backoff: float = 300.0
    throttle_after: int = 5
    throttle_for: float = 60.0


class GatewayHealth:
    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self.up = True
        self.probe_failures = 0
        self.call_failures = 0
        self.throttled_until = 0.0
        self._backoff = self.settings.interval

    @property
    def state(self) -> str:
        return "up" if self.up else "down"

    def available(self, now: float) -> bool:
        return self.up and now >= self.throttled_until

    def describe(self, now: float) -> str:
        if not self.up:
            return "down"
        return "throttled" if now < self.throttled_until else "up"

    def probe_result(self, answered: bool) -> float:
        """Record a probe; the delay before the next one."""
        s = self.settings
        if answered:
            self.up = True
            self.probe_failures = 0
            self._backoff = s.interval
            return s.interval
        self.probe_failures += 1
        if self.probe_failures >= s.failures_to_down:
            if self.up:
                self.up = False
                self._backoff = s.interval
            else:
                self._backoff = min(self._backoff * 2, s.max_backoff)
            return self._backoff
        return s.interval

    def call_result(self, failed: bool, now: float) -> None:
        if not failed:
            self.call_failures = 0
            return
        self.call_failures += 1
        if self.call_failures >= self.settings.throttle_after:
            self.throttled_until = now + self.settings.throttle_for
            self.call_failures = 0
