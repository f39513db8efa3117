"""A transfer mediation carries out itself: the internal party of a connected call
asked (REFER) that the party on the gateway leg be connected to someone else, and
the gateway's ``refer`` setting is "handle" (or only we can reach the target: a
user, the attendant, an attended transfer's Replaces).

The transfer places its own legs toward the target (a user's devices at once, the
attendant, or a phone number through its route's gateways in turn, with the same
failover as any call) and reports to its call through three callbacks: ringing,
connected (this leg now takes the transferor's place), failed (status, reason).
The legs it places stay outside the media bridge until one answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from confserver.calls.events import CallEvent, Connect, Fail, Ring

from .failover import FailoverSequence, fails_over
from .gateways import GatewaySettings
from .legs import DialingLeg
from .routing import Attempt, RoutePlan

log = logging.getLogger("switchboard.mediation")
TRANSFER_GRACE = 4.0  # seconds the transferor has to hang up after success before we do


class LegPlacer(Protocol):
    """What the call lends a transfer to place legs the way it places its own."""

    def usable_gateways(self) -> dict[str, GatewaySettings]: ...

    def place_gateway_leg(self, gateway: GatewaySettings, attempt: Attempt, number: str,
                          on_event: Callable[[DialingLeg, CallEvent], None],
                          adopt: Callable[[DialingLeg], None]) -> None: ...

    def place_inside_legs(self, kind: str, target: str, replaces: str | None,
                          on_event: Callable[[DialingLeg, CallEvent], None],
                          adopt: Callable[[DialingLeg], None]) -> int: ...


class HandledTransfer:
    def __init__(self, placer: LegPlacer, clock: IReactorTime, description: str,
                 replaces: str | None, *,
                 legs_report_to: Callable[[DialingLeg, CallEvent], None],
                 on_ringing: Callable[[], None],
                 on_connected: Callable[[DialingLeg, str | None], None],
                 on_failed: Callable[[int, str], None],
                 on_early_media: Callable[[DialingLeg | None], None] | None = None) -> None:
        self.placer = placer
        self.legs_report_to = legs_report_to  # the call, which hands us our legs' events
        self.clock = clock
        self.description = description
        self.replaces = replaces
        self.on_ringing = on_ringing
        self.on_connected = on_connected
        self.on_failed = on_failed
        # the leg whose early media (a target's ring-back or announcement) the phone
        # party hears now; told with the leg, and with None when that leg is gone
        self.on_early_media = on_early_media
        self.early: DialingLeg | None = None
        self.legs: list[DialingLeg] = []
        self.sequence: FailoverSequence | None = None
        self.number = ""
        self.gateway: str | None = None  # the gateway of the attempt under way
        self.ringing = False
        self.done = False
        self._timer: IDelayedCall | None = None

    def owns(self, leg: DialingLeg) -> bool:
        return leg in self.legs

    # ------------------------------------------------------------ starting
    def start_inside(self, kind: str, target: str) -> None:
        self.legs = []
        if not self.placer.place_inside_legs(kind, target, self.replaces, self.legs_report_to,
                                             self.legs.append):
            self._fail(480, "Temporarily Unavailable (no registered device)")

    def start_routed(self, plan: RoutePlan) -> None:
        self.sequence = FailoverSequence(plan.attempts)
        self.number = plan.number
        self._next_attempt()

    def _next_attempt(self) -> None:
        assert self.sequence is not None
        usable = self.placer.usable_gateways()
        attempt = self.sequence.next_attempt(usable)
        if attempt is None:
            last = next((s for _g, s in reversed(self.sequence.tried) if s is not None), None)
            status = 503 if last is None or fails_over(last) else last
            self._fail(status, "Service Unavailable" if status == 503 else "Call Failed")
            return
        gateway = usable[attempt.gateway]
        self.gateway = gateway.name
        self.legs = []
        def adopt(leg: DialingLeg) -> None:
            self.legs.append(leg)
            self._arm(gateway.failover_timer, leg)

        self.placer.place_gateway_leg(gateway, attempt, self.number, self.legs_report_to, adopt)

    # ------------------------------------------------------------ the legs' events
    def handle(self, leg: DialingLeg, event: CallEvent) -> None:
        """An event of one of our legs (the call passes them on until we are done)."""
        if self.done or leg not in self.legs:
            return
        match event:
            case Ring(early_media=early):
                self._cancel_timer()
                if early and self.early is None and self.on_early_media is not None:
                    self.early = leg
                    self.on_early_media(leg)
                if not self.ringing:
                    self.ringing = True
                    self.on_ringing()
            case Connect():
                self._cancel_timer()
                self.done = True
                for other in self.legs:
                    if other is not leg:
                        other.abandon("answered elsewhere")
                self.legs = [leg]
                self.on_connected(leg, self.gateway if self.sequence is not None else None)
            case Fail(status, reason):
                self._leg_failed(leg, status, reason)

    def _leg_failed(self, leg: DialingLeg, status: int | None, reason: str) -> None:
        self.legs.remove(leg)
        if leg is self.early:
            self.early = None
            if self.on_early_media is not None:
                self.on_early_media(None)
        if self.sequence is None:  # a user's devices: fail when every one has
            if not self.legs:
                code = status if status is not None and 400 <= status < 700 else 480
                self._fail(code, reason.partition(" ")[2] if status else "Temporarily Unavailable")
            return
        self._cancel_timer()
        self.sequence.record(leg.name, status)
        if fails_over(status):
            log.info("transfer: gateway %s failed (%s): trying the next", leg.name, reason)
            self._next_attempt()
            return
        assert status is not None
        self._fail(status, reason.partition(" ")[2] or "Call Failed")

    def _arm(self, seconds: float, leg: DialingLeg) -> None:
        def expired() -> None:
            self._timer = None
            if leg in self.legs and not leg.ringing and not leg.answered:
                leg.abandon("failover timer")
                self._leg_failed(leg, None, "no answer before the failover timer")

        self._timer = self.clock.callLater(seconds, expired)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _fail(self, status: int, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self._cancel_timer()
        self.on_failed(status, reason)

    def cancel(self, reason: str) -> None:
        """The call ended (or the transferor gave up): every leg still trying goes."""
        self.done = True
        self._cancel_timer()
        for leg in self.legs:
            if not leg.answered:
                leg.abandon(reason)


__all__ = ["TRANSFER_GRACE", "HandledTransfer", "LegPlacer"]
