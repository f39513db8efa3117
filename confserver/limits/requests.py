"""Request rates per source at the SIP edge (what Kamailio's pike and ratelimit do)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .buckets import RateLimiter
from .networks import Networks


class RequestLimits:
    """Every message from a source takes a token from its ``messages`` bucket (none
    left: the message is dropped unread); every new INVITE one from its ``invites``
    bucket as well (none left: 503 with Retry-After). Sources in ``trusted`` networks
    (a proxy in front, a load generator) and the ``trusted_hosts`` a role names (its
    gateways, which have limits of their own) are not counted.

    Many sources each within its own rate still add up: messages from sources nobody
    has vouched for lately (no sign-in from there: ``known``) share the ``strangers``
    bucket too, so a flood from thousands of addresses is shed before it is parsed
    while signed-in users' phones go on."""

    def __init__(self, messages: RateLimiter, invites: RateLimiter,
                 trusted: Iterable[str] = (), strangers: RateLimiter | None = None,
                 known: Callable[[str], bool] = lambda _host: False) -> None:
        self.messages = messages
        self.invites = invites
        self.strangers = strangers
        self.known = known
        self._networks = Networks(trusted)
        self.trusted_hosts: set[str] = set()
        self.dropped = 0
        self.busy = 0

    def _trusted(self, host: str) -> bool:
        return host in self.trusted_hosts or host in self._networks

    def stranger(self, host: str) -> bool:
        """Nobody signed in from ``host`` lately, and it is neither trusted nor a gateway."""
        return not (self.known(host) or self._trusted(host))

    def message(self, host: str, now: float) -> bool:
        """May a message from ``host`` be read? False: drop it."""
        if self.messages.allow(host, now):
            strangers = self.strangers
            if strangers is None or self.known(host) or self._trusted(host) \
                    or strangers.allow(None, now):
                return True
        elif self._trusted(host):
            return True
        self.dropped += 1
        return False

    def invite(self, host: str, now: float) -> float:
        """0 when a new INVITE from ``host`` may go on, else the seconds to wait."""
        if self.invites.allow(host, now) or self._trusted(host):
            return 0.0
        self.busy += 1
        return max(1.0, self.invites.retry_after(host, now))
