"""Call authorization and least-cost routing, as Office Communications Server modelled
it. Pure code.

A caller's **voice policy** is an ordered list of PSTN usages. A **route** is a
number pattern, the usages that may use it, its gateways and a priority. A caller
may reach a number only through a route that shares a usage with their policy;
the gateways of every such route become the attempts, in the policy's usage
order, and within one usage cheapest first by each gateway's rate table (the
longest matching prefix for the time of the call). Gateways of equal cost take
turns (round-robin); gateways without a rate for the number come after the
priced ones of their usage, in route order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .rates import RateTable

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}\Z")


class RoutingError(ValueError):
    """A route or a policy is malformed; the message says which field and why."""


def check_name(kind: str, name: str) -> str:
    if not NAME.match(name):
        raise RoutingError(f"{kind} name {name!r} must be letters, digits, '.', '_' or '-' "
                           "(at most 63, starting with a letter or digit)")
    return name


@dataclass(frozen=True, slots=True)
class VoicePolicy:
    name: str
    usages: tuple[str, ...]

    def __post_init__(self) -> None:
        check_name("voice policy", self.name)
        for usage in self.usages:
            check_name("PSTN usage", usage)
        if len(set(self.usages)) != len(self.usages):
            raise RoutingError(f"voice policy {self.name}: a usage is listed twice")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    pattern: str
    usages: tuple[str, ...]
    gateways: tuple[str, ...]
    priority: int = 0
    # the calling number shown on this route: "" keeps the caller's own
    alternate_caller_id: str = ""
    suppress_caller_id: bool = False
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_name("route", self.name)
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise RoutingError(f"route {self.name}: pattern {self.pattern!r} is not a valid "
                               f"regular expression: {exc}") from exc
        if not self.usages:
            raise RoutingError(f"route {self.name}: needs at least one PSTN usage")
        if not self.gateways:
            raise RoutingError(f"route {self.name}: needs at least one gateway")
        for usage in self.usages:
            check_name("PSTN usage", usage)
        object.__setattr__(self, "_compiled", compiled)

    def matches(self, number: str) -> bool:
        return self._compiled.fullmatch(number) is not None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call may not be routed: a SIP status and a diagnostic for the caller."""

    status: int
    reason: str
    diagnostic: str


@dataclass(frozen=True, slots=True)
class Attempt:
    gateway: str
    route: Route
    usage: str
    cost: float | None  # per minute; None when the gateway has no rate for the number


@dataclass(frozen=True, slots=True)
class RoutePlan:
    number: str
    policy: str
    attempts: tuple[Attempt, ...]


class RoutingTable:
    def __init__(self, routes: Iterable[Route], rates: Mapping[str, RateTable] | None = None
                 ) -> None:
        self.routes = tuple(sorted(routes, key=lambda r: r.priority))  # stable for ties
        self.rates = dict(rates or {})
        self._turns: dict[tuple[str, ...], int] = {}

    def plan(self, number: str, policy: VoicePolicy | None, *, weekday: int = 0,
             minute: int = 0, usable: Callable[[str], bool] = lambda _gw: True
             ) -> RoutePlan | Refusal:
        matching = [r for r in self.routes if r.matches(number)]
        if not matching:
            return Refusal(404, "Not Found (no route)", f"no route matches {number}")
        if policy is None or not policy.usages:
            return Refusal(403, "Forbidden (no voice policy)",
                           "the caller has no voice policy with a PSTN usage")
        candidates: list[Attempt] = []
        seen: set[str] = set()
        for usage in policy.usages:
            group: list[Attempt] = []
            for route in matching:
                if usage not in route.usages:
                    continue
                for gateway in route.gateways:
                    if gateway in seen:
                        continue
                    seen.add(gateway)
                    group.append(Attempt(gateway, route, usage,
                                         self._cost(gateway, number, weekday, minute)))
            candidates += self._cheapest_first(group)
        if not candidates:
            names = ", ".join(r.name for r in matching)
            return Refusal(403, "Forbidden (no usage)",
                           f"voice policy {policy.name} has no PSTN usage that route(s) {names} "
                           f"allow for {number}")
        available = tuple(a for a in candidates if usable(a.gateway))
        if not available:
            return Refusal(503, "Service Unavailable (no gateway available)",
                           "every gateway for this number is down, throttled or busy: "
                           + ", ".join(a.gateway for a in candidates))
        return RoutePlan(number, policy.name, available)

    def _cost(self, gateway: str, number: str, weekday: int, minute: int) -> float | None:
        table = self.rates.get(gateway)
        if table is None:
            return None
        rate = table.lookup(number, weekday, minute)
        return rate.cost if rate is not None else None

    def _cheapest_first(self, group: list[Attempt]) -> list[Attempt]:
        priced = sorted((a for a in group if a.cost is not None),
                        key=lambda a: a.cost if a.cost is not None else 0.0)
        ordered: list[Attempt] = []
        i = 0
        while i < len(priced):  # rotate each run of equal cost: round-robin
            j = i
            while j < len(priced) and priced[j].cost == priced[i].cost:
                j += 1
            tie = priced[i:j]
            if len(tie) > 1:
                key = tuple(a.gateway for a in tie)
                turn = self._turns.get(key, 0)
                self._turns[key] = turn + 1
                shift = turn % len(tie)
                tie = tie[shift:] + tie[:shift]
            ordered += tie
            i = j
        return ordered + [a for a in group if a.cost is None]
