"""Is an address in a set of networks? Asked for every request, so each address's
answer is kept (a bounded table) and the networks are parsed once."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class Networks:
    def __init__(self, cidrs: Iterable[str] = (), max_cached: int = 10_000) -> None:
        self._networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._verdicts: dict[str, bool] = {}
        self._max_cached = max_cached

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, host: object) -> bool:
        if not self._networks or not isinstance(host, str):
            return False
        verdict = self._verdicts.get(host)
        if verdict is None:
            try:
                address = ipaddress.ip_address(host)
                verdict = any(address in network for network in self._networks)
            except ValueError:
                verdict = False
            if len(self._verdicts) >= self._max_cached:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict
