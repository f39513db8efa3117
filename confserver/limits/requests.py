"""Request rates per source at the SIP edge (what Kamailio's pike and ratelimit do)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .buckets import RateLimiter


class RequestLimits:
    """Every message from a source takes a token from its ``messages`` bucket (none
    left: the message is dropped unread); every new INVITE one from its ``invites``
    bucket as well (none left: 503 with Retry-After). Sources in ``trusted`` networks
    (a proxy in front, a load generator) and the ``trusted_hosts`` a role names (its
    gateways, which have limits of their own) are not counted."""

    def __init__(self, messages: RateLimiter, invites: RateLimiter,
                 trusted: Iterable[str] = ()) -> None:
        self.messages = messages
        self.invites = invites
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)
        self.trusted_hosts: set[str] = set()
        self._verdicts: dict[str, bool] = {}  # host -> in a trusted network (bounded)
        self.dropped = 0
        self.busy = 0

    def _trusted(self, host: str) -> bool:
        if host in self.trusted_hosts:
            return True
        if not self._networks:
            return False
        verdict = self._verdicts.get(host)
        if verdict is None:
            try:
                address = ipaddress.ip_address(host)
                verdict = any(address in network for network in self._networks)
            except ValueError:
                verdict = False
            if len(self._verdicts) >= 10_000:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict

    def message(self, host: str, now: float) -> bool:
        """May a message from ``host`` be read? False: drop it."""
        if self.messages.allow(host, now) or self._trusted(host):
            return True
        self.dropped += 1
        return False

    def invite(self, host: str, now: float) -> float:
        """0 when a new INVITE from ``host`` may go on, else the seconds to wait."""
        if self.invites.allow(host, now) or self._trusted(host):
            return 0.0
        self.busy += 1
        return max(1.0, self.invites.retry_after(host, now))
