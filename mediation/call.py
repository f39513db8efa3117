"""One call through mediation: the leg we answered and the legs we place, coupled
through call events only and through a :class:`MediaBridge` for their media."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import SipCall
from confserver.adapters.calls.inbound import UasCall
from confserver.adapters.media.session import MediaApp
from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.calls.events import (
    CallEvent,
    Connect,
    Disconnect,
    Fail,
    Hold,
    Ring,
    Transfer,
    TransferProgress,
)
from confserver.gate.destination import Refused, ToNumber, ToUser, kind_of
from confserver.media.tones import RINGBACK_PLANS, CadencedTone
from confserver.sip.assertion import HEADER as ASSERTION
from confserver.sip.assertion import Assertion, sign
from confserver.sip.digest import DigestClient
from confserver.sip.message import Request
from confserver.sip.sdp import codecs_in_order
from confserver.sip.uri import SipUri, TelUri
from confserver.storage.errors import StorageError

from .callerid import outbound_numbers
from .failover import FailoverSequence, fails_over
from .gateways import GatewaySettings
from .legs import AnsweringLeg, DialingLeg
from .media_bridge import GATEWAY, INTERNAL, MediaBridge, ParkedSide
from .records import CallRecord, warning_header
from .routing import Attempt, Refusal, RoutePlan
from .transfer import TRANSFER_GRACE, HandledTransfer

if TYPE_CHECKING:
    from .b2bua import Mediation

log = logging.getLogger("switchboard.mediation")

# seconds an internal leg (the front end for an access number, a user's device) may
# leave our INVITE without any response, not even 100 Trying, before it counts as
# down: by then the INVITE has been sent four times (RFC 3261 Timer A)
RESPONSE_WITHIN = 5.0


class MediationCall(CallBehaviour):
    """One call through mediation: the answering leg (the INVITE we received) and one
    or more dialing legs (attempts in turn, or a user's devices at once)."""

    def __init__(self, mediation: Mediation, record: CallRecord, *,
                 outbound: RoutePlan | None = None,
                 inbound: tuple[GatewaySettings, str, str] | None = None,
                 internal: tuple[str, str] | None = None) -> None:
        self.m = mediation
        self.record = record
        self.plan = outbound
        self.inbound = inbound
        self.internal = internal
        self.sequence = FailoverSequence(outbound.attempts) if outbound else None
        self.gateway: GatewaySettings | None = inbound[0] if inbound else None
        self.bridge = MediaBridge(self._bridge_digit)
        # the leg facing the gateway is the bridge's leg 1
        self.answering_side = GATEWAY if inbound else INTERNAL
        self.answering: AnsweringLeg | None = None
        self.dialing: list[DialingLeg] = []
        self.connected: DialingLeg | None = None
        self.attempt: Attempt | None = None
        self._timer: IDelayedCall | None = None
        self._counted: str | None = None
        self.stopping = False  # the answering leg ended: legs' failures are not failovers
        # who answers for the call: the gateway it came from, or our user who placed it
        self.caller: str | None = f"gateway:{inbound[0].name}" if inbound else (
            f"user:{record.caller}" if record.caller.startswith("sip:") else None)
        self.ended = False
        # once connected, the leg on each side of the bridge (None: that party left);
        # a transfer puts another leg on the internal side
        self.active: list[AnsweringLeg | DialingLeg | None] = [None, None]
        self.last: list[AnsweringLeg | DialingLeg | None] = [None, None]  # for the record
        self.transfer: HandledTransfer | None = None
        self.passed_by: AnsweringLeg | DialingLeg | None = None  # who asked a passed transfer
        self._answering_away = False  # the answering leg was transferred away
        self._parked = ParkedSide()
        self._grace: IDelayedCall | None = None
        self._transfer_counted: str | None = None
        self._inside_kind = ""  # what the internal legs call: "access" or "user"
        self._inside_tried: list[str] = []  # each failed internal leg, for the Warning

    # ------------------------------------------------------------ CallBehaviour (answering leg)
    def on_invite(self, call: UasCall) -> None:
        self.m.calls.add(self)
        dtmf = self.gateway.dtmf if self.gateway and self.answering_side == GATEWAY else "rfc4733"
        self.answering = AnsweringLeg(call, dtmf)
        side = self.bridge.sides[self.answering_side]
        side.wants_inband_dtmf = self._listens_inband(self.answering_side)
        if self.plan is not None:
            self._next_attempt()
        elif self.inbound is not None:
            _gateway, kind, target = self.inbound
            self._dial_inside(kind, target)
        elif self.internal is not None:
            self._dial_inside(*self.internal)

    def media_app(self, call: SipCall) -> MediaApp | None:
        return self._parked if self._answering_away else self.bridge.sides[self.answering_side]

    def on_event(self, call: SipCall, event: CallEvent) -> None:
        """Hold and TransferProgress on the answering leg's call."""
        if self.answering is not None:
            self._leg_event(self.answering, event)

    def on_refer(self, call: SipCall, request: Request, tx: ServerTxHandle) -> None:
        if self.answering is None:
            tx.reply(481, "Call/Transaction Does Not Exist")
            return
        event = self.answering.take_refer(request, tx)
        if event is not None:
            self._leg_event(self.answering, event)
            self.answering.unanswered_transfer()

    def on_end(self, call: SipCall) -> None:
        if self.answering is not None and (
                self._answering_away or self._side_of(self.answering) is not None):
            self._active_ended(self.answering, call.end_reason)
            return
        # before the call connected: the caller hung up, cancelled, or the call
        # failed: end every other leg
        if self.record.disposition == "failed" and call.end_reason == "cancelled":
            self.record.disposition = "cancelled"
            self.record.sip_status = 487
        self.stopping = True
        for leg in list(self.dialing):
            leg.disconnect("caller ended")
        self._finish(call.end_reason)

    # ------------------------------------------------------------ placing legs
    def _listens_inband(self, side: int) -> bool:
        return side == GATEWAY and self.gateway is not None and self.gateway.dtmf == "inband"

    def _next_attempt(self) -> None:
        assert self.sequence is not None and self.answering is not None
        config = self.m.config()
        attempt = self.sequence.next_attempt(g for g in config.gateways if self.m.usable(g))
        if attempt is None:
            tried = self.sequence.tried
            last = next((s for _g, s in reversed(tried) if s is not None), None)
            status = 503 if last is None or fails_over(last) else last
            reason = "Service Unavailable (every gateway failed)" if status == 503 \
                else "Call Failed"
            self.record.sip_status = status
            self.answering.fail(status, reason, [warning_header(
                self.m.app.settings.domain, "tried " + ", ".join(
                    f"{g} ({s or 'no answer'})" for g, s in tried))])
            return
        gateway = config.gateways[attempt.gateway]
        self.attempt, self.gateway = attempt, gateway
        self.record.gateway, self.record.route = gateway.name, attempt.route.name
        self.record.usage, self.record.cost_per_minute = attempt.usage, attempt.cost
        self._count(gateway.name)
        self.bridge.sides[GATEWAY].wants_inband_dtmf = gateway.dtmf == "inband"
        self.dialing = []
        self.place_gateway_leg(gateway, attempt, self.record.normalized, self._leg_event,
                               self.dialing.append, self.bridge.sides[GATEWAY])

    def place_gateway_leg(self, gateway: GatewaySettings, attempt: Attempt, number: str,
                          on_event: Callable[[DialingLeg, CallEvent], None],
                          adopt: Callable[[DialingLeg], None],
                          app: MediaApp | None = None) -> None:
        """A leg calling ``number`` through ``gateway``, its numbers translated for
        the gateway; ``adopt`` takes it before it starts (its first event may come
        at once). Without ``app`` it stays outside the bridge (a transfer's)."""
        numbers = outbound_numbers(gateway, attempt.route, number, *self._caller_identity())
        params = ";user=phone" if gateway.user_phone else ""
        transport = f";transport={gateway.transport}" if gateway.transport != "udp" else ""
        uri = SipUri.parse(f"sip:{numbers.called}@{gateway.host}:{gateway.port}{params}{transport}")
        domain = self.m.app.settings.domain
        display = f'"{numbers.display}" ' if numbers.display else ""
        from_header = f"{display}<sip:{numbers.calling}@{domain}>"
        headers = list(gateway.extra_headers)
        if numbers.asserted:
            headers.append(("P-Asserted-Identity", f"<sip:{numbers.asserted}@{domain};user=phone>"))
        if numbers.privacy:
            headers.append(("Privacy", "id"))
        credentials = DigestClient.create(gateway.username, gateway.password) \
            if gateway.username and gateway.password else None
        leg = DialingLeg(on_event, gateway.name, gateway.dtmf)
        if app is None:
            app = ParkedSide(gateway.dtmf == "inband")
        else:
            self._arm_failover(gateway.failover_timer, leg)
        adopt(leg)
        leg.start(self.m.app, uri, from_header, app,
                  codecs=codecs_in_order(gateway.codecs),
                  target=Target(gateway.transport, gateway.host, gateway.port),
                  headers=headers, credentials=credentials,
                  ring_timeout=self.m.app.call_settings.ring_timeout, srtp=gateway.offered_srtp,
                  session_expires=gateway.session_expires)

    def _dial_inside(self, kind: str, target: str) -> None:
        """The internal leg(s): the attendant through the front end, or every device a
        user has registered, at once."""
        assert self.answering is not None
        self.dialing = []
        self._inside_kind = kind
        if not self.place_inside_legs(kind, target, None, self._leg_event, self.dialing.append,
                                      self.bridge.sides[INTERNAL]):
            self.record.sip_status = 480
            self.answering.fail(480, "Temporarily Unavailable (no registered device)")

    def place_inside_legs(self, kind: str, target: str, replaces: str | None,
                          on_event: Callable[[DialingLeg, CallEvent], None],
                          adopt: Callable[[DialingLeg], None],
                          app: MediaApp | None = None) -> int:
        """Legs to the attendant (``kind`` "access") or to every device the user
        ``target`` has registered (none: nobody to call), from the phone party."""
        domain = self.m.app.settings.domain
        caller = self.record.caller or "anonymous"
        number = caller if caller.startswith("+") or caller.isdigit() else "anonymous"
        if self.record.direction == "outbound" and self.transfer is None:
            from_header = f"<{self.record.caller}>" if self.record.caller.startswith("sip:") \
                else f"<sip:anonymous@{domain}>"
        else:  # the phone party calls in, or is being transferred
            if self.record.direction == "outbound":
                number = self.record.normalized or "anonymous"
            from_header = f'"{number}" <sip:{number}@{domain};user=phone>'
        targets: list[tuple[SipUri, Target]] = []
        if kind == "access":
            targets.append((SipUri.parse(target), self.m.internal_target()))
        else:
            now = self.m.wall_clock()
            for binding in self.m.bindings.current(target, now):
                try:
                    contact = SipUri.parse(binding.contact.strip("<>"))
                except ValueError:
                    continue
                host, _, port = binding.source.rpartition(":")
                targets.append((contact, Target(
                    binding.transport or "udp", host or contact.host,
                    int(port) if port.isdigit() else contact.port or 5060)))
        headers = [("Replaces", replaces)] if replaces else None
        # the attendant counts a caller's wrong guesses by their number: it must know
        # the call comes from a gateway (through us), not take anyone's word for it
        vouch = None
        if kind == "access" and self.gateway is not None:
            assertion = Assertion(origin=f"gateway:{self.gateway.name}",
                                  caller=number if number != "anonymous" else "")
            secret, clock = self.m.app.secret, self.m.reactor.seconds

            def vouch(request: Request) -> tuple[str, str]:
                return ASSERTION, sign(secret, request, assertion, clock())
        for uri, where in targets:
            leg = DialingLeg(on_event, str(uri))
            adopt(leg)
            leg.start(self.m.app, uri, from_header, app or self._parked, target=where,
                      headers=headers, ring_timeout=self.m.app.call_settings.ring_timeout,
                      response_within=RESPONSE_WITHIN, vouch=vouch)
        return len(targets)

    def usable_gateways(self) -> dict[str, GatewaySettings]:
        return {name: gateway for name, gateway in self.m.config().gateways.items()
                if self.m.usable(name)}

    def _caller_identity(self) -> tuple[str, str]:
        """(calling number, display name) of the caller: a user's phone number and
        name, or whatever an anonymous caller sent."""
        caller = self.record.caller
        if not caller.startswith("sip:"):
            return caller, ""
        try:
            user = self.m.user(caller)
        except StorageError:
            user = None
        return (user.phone or "", user.display_name) if user is not None else ("", "")

    # ------------------------------------------------------------ events from the legs
    def _leg_event(self, leg: AnsweringLeg | DialingLeg, event: CallEvent) -> None:
        if self.transfer is not None and isinstance(leg, DialingLeg) and self.transfer.owns(leg):
            self.transfer.handle(leg, event)
            return
        if (self.ended or self.stopping) and not isinstance(event, Disconnect):
            return
        assert self.answering is not None
        match event:
            case Ring(early_media) if isinstance(leg, DialingLeg):
                self._cancel_failover()
                if self.answering.answered:
                    pass
                elif early_media and self.connected is None:
                    # the far end's ring-back or announcement, passed through as it is
                    self.bridge.ring_back(self.answering_side, None)
                    codec = leg.codec()
                    self.answering.progress((codec,) if codec is not None else None)
                elif not self._local_ringback():
                    self.answering.ring()
            case Connect() if isinstance(leg, DialingLeg):
                self._connected(leg)
            case Fail(status, reason, local) if isinstance(leg, DialingLeg):
                self._failed(leg, status, reason, local)
            case Disconnect(reason):
                self._active_ended(leg, reason)
            case Hold(direction):
                side = self._side_of(leg)
                other = self.active[1 - side] if side is not None else None
                if other is not None:
                    other.reoffer(direction)
            case Transfer():
                self._transfer_asked(leg, event)
            case TransferProgress(status, reason, final):
                self._passed_progress(leg, status, reason, final)

    def _side_of(self, leg: AnsweringLeg | DialingLeg) -> int | None:
        """The bridge side ``leg`` is on, or None (not connected, or transferred away)."""
        for side in (INTERNAL, GATEWAY):
            if self.active[side] is leg:
                return side
        return None

    def _active_ended(self, leg: AnsweringLeg | DialingLeg, reason: str) -> None:
        """A connected party left: the other party is released, unless the one who
        left is a transferor whose transfer we are still carrying out."""
        side = self._side_of(leg)
        if side is None:
            return  # a late device, or a party transferred away
        self.active[side] = None
        if side == INTERNAL and self.transfer is not None:
            log.info("mediation call %s: the transferor left; the transfer goes on",
                     self.record.call_id)
            return
        if self.transfer is not None:
            self.transfer.cancel("the transferred party left")
            self.transfer = None
        other = self.active[1 - side]
        if other is not None:
            other.disconnect(f"far end: {reason}")
        if self.active == [None, None]:
            self._finish(reason)

    # ------------------------------------------------------------ transfers (REFER)
    def _transfer_asked(self, leg: AnsweringLeg | DialingLeg, event: Transfer) -> None:
        """The internal party asks that the phone party be connected to someone else.
        The trunk does it (its ``refer`` is "pass" and the target is a phone number
        it can call) or we do, calling the target and swapping it in on answer."""
        if leg is not self.active[INTERNAL] or self.active[GATEWAY] is None:
            leg.answer_transfer(403, "Forbidden (only our side of a connected call can "
                                "transfer it)")
            return
        if self.transfer is not None or self.passed_by is not None:
            leg.answer_transfer(491, "Request Pending (a transfer is under way)")
            return
        scratch = CallRecord(self.record.call_id, "transfer")
        where = self._transfer_destination(event.target, scratch)
        if isinstance(where, Refusal):
            log.info("mediation call %s: transfer to %s refused: %s", self.record.call_id,
                     event.target, where.diagnostic)
            leg.answer_transfer(where.status, f"{where.reason} ({where.diagnostic})")
            return
        gateway = self.gateway
        if isinstance(where, RoutePlan) and gateway is not None and gateway.refer == "pass" \
                and event.replaces is None:
            self._pass_transfer(leg, gateway, where)
            return
        description = scratch.normalized or where[1] if not isinstance(where, RoutePlan) \
            else where.number
        leg.answer_transfer(202, "Accepted")
        log.info("mediation call %s: transferring the phone party to %s", self.record.call_id,
                 description)
        self.transfer = HandledTransfer(
            self, self.m.reactor, description, event.replaces,
            legs_report_to=self._leg_event, on_ringing=self._transfer_ringing,
            on_connected=self._transfer_connected, on_failed=self._transfer_failed,
            on_early_media=self._transfer_early_media)
        self._transfer_ring_back()
        if isinstance(where, RoutePlan):
            self.transfer.start_routed(where)
        else:
            self.transfer.start_inside(*where)

    def _transfer_destination(self, target: SipUri | TelUri, scratch: CallRecord
                              ) -> tuple[str, str] | RoutePlan | Refusal:
        """Where a transfer target is, by the outbound gate's rule
        (confserver/gate/destination.py): a number (normalized with the transferor's
        dial plan and authorized by their voice policy, as if they dialed it) or one
        of our users by address; nothing else (a transfer moves a phone party, whose
        call mediation carries)."""
        transferor = self._internal_identity()
        match kind_of(target, self.m.app.gate.rules):
            case ToNumber(number):
                # authorized as if the transferor dialed it; whether a gateway can take
                # it now is the transfer's business (a passed one needs no new channel)
                return self.m.resolve(number, transferor, scratch, available_only=False)
            case ToUser(aor):
                try:
                    user = self.m.user(aor)
                except StorageError:
                    return Refusal(503, "Service Unavailable",
                                   "the user directory is unavailable")
                if user is None:
                    return Refusal(404, "Not Found", f"no user {aor}")
                return "user", user.sip_uri
            case Refused(status, reason):
                return Refusal(status, "Forbidden" if status == 403 else "Not Acceptable",
                               reason)
        host = getattr(target, "host", "")
        return Refusal(403, "Forbidden", f"transfers go to our users or to numbers, not to "
                       f"{host}")

    def _internal_identity(self) -> str | None:
        """The user on the internal side: the caller of an outbound call, the user an
        inbound call reached (None for the attendant)."""
        if self.record.direction == "outbound":
            return self.record.caller if self.record.caller.startswith("sip:") else None
        return self.record.target if self.inbound and self.inbound[1] == "user" else None

    def _transfer_ring_back(self) -> None:
        plan = self.gateway.ringback if self.gateway else "us"
        self.bridge.ring_back(GATEWAY, CadencedTone(RINGBACK_PLANS.get(plan,
                                                                       RINGBACK_PLANS["us"])))

    def _transfer_early_media(self, leg: DialingLeg | None) -> None:
        """The transfer target sends early media (its ring-back, an announcement): the
        phone party hears it instead of our ring-back, and the transferor, parked,
        hears nothing meanwhile. ``None``: that leg failed, so back to our ring-back
        (another attempt may follow) with the transferor in the bridge again."""
        old = self.active[INTERNAL]
        if leg is not None:
            self.bridge.ring_back(GATEWAY, None)
            if old is not None:
                old.attach(self._parked)
            leg.attach(self.bridge.sides[INTERNAL])
            return
        if old is not None:
            old.attach(self.bridge.sides[INTERNAL])
        if self.transfer is not None and not self.transfer.done:
            self._transfer_ring_back()

    def _transfer_ringing(self) -> None:
        referrer = self.active[INTERNAL]
        if referrer is not None:
            referrer.notify_transfer(180, "Ringing", final=False)

    def _transfer_connected(self, leg: DialingLeg, gateway: str | None) -> None:
        transfer, self.transfer = self.transfer, None
        assert transfer is not None
        self.bridge.ring_back(GATEWAY, None)
        old = self.active[INTERNAL]
        leg.attach(self.bridge.sides[INTERNAL])
        self.active[INTERNAL] = self.last[INTERNAL] = leg
        if gateway is not None:
            self._count_transfer(gateway)
        self.record.transferred_to = transfer.description
        log.info("mediation call %s: transferred to %s", self.record.call_id,
                 transfer.description)
        if old is not None:
            if old is self.answering:
                self._answering_away = True
            old.attach(self._parked)
            old.notify_transfer(200, "OK", final=True)
            # RFC 5589: the transferor hangs up now; if it does not, we do
            self._grace = self.m.reactor.callLater(TRANSFER_GRACE, old.disconnect, "transferred")
        phone = self.active[GATEWAY]
        if phone is not None:
            phone.reoffer("sendrecv")  # the transferor may have held the phone party

    def _transfer_failed(self, status: int, reason: str) -> None:
        transfer, self.transfer = self.transfer, None
        assert transfer is not None
        self.bridge.ring_back(GATEWAY, None)
        log.info("mediation call %s: transfer to %s failed: %s %s", self.record.call_id,
                 transfer.description, status, reason)
        self.record.attempts.append(f"transfer:{status}")
        referrer = self.active[INTERNAL]
        if referrer is not None:
            referrer.notify_transfer(status, reason, final=True)  # the call goes on
        elif self.active[GATEWAY] is not None:
            self._active_ended_by_us(f"transfer failed ({status})")

    def _active_ended_by_us(self, reason: str) -> None:
        phone = self.active[GATEWAY]
        self.active[GATEWAY] = None
        if phone is not None:
            phone.disconnect(reason)
        if self.active == [None, None]:
            self._finish(reason)

    def _pass_transfer(self, leg: AnsweringLeg | DialingLeg, gateway: GatewaySettings,
                       plan: RoutePlan) -> None:
        """The trunk transfers: a REFER on its leg to the number as it wants numbers."""
        phone = self.active[GATEWAY]
        assert phone is not None
        attempt = plan.attempts[0] if plan.attempts else None
        numbers = outbound_numbers(gateway, attempt.route if attempt else None, plan.number,
                                   *self._caller_identity())
        params = ";user=phone" if gateway.user_phone else ""
        refer_to = f"<sip:{numbers.called}@{gateway.host}:{gateway.port}{params}>"
        domain = self.m.app.settings.domain
        referred_by = f"<sip:{numbers.calling}@{domain}>" if numbers.calling != "anonymous" \
            else None
        leg.answer_transfer(202, "Accepted")
        self.passed_by = leg
        self.record.transferred_to = plan.number
        log.info("mediation call %s: transfer to %s passed to %s", self.record.call_id,
                 plan.number, gateway.name)
        phone.refer(refer_to, referred_by,
                    lambda status, why: self._passed_progress(phone, status, why, True))

    def _passed_progress(self, leg: AnsweringLeg | DialingLeg, status: int, reason: str,
                         final: bool) -> None:
        """The trunk reports on a transfer passed to it: the transferor hears it."""
        referrer = self.passed_by
        if referrer is None or leg is not self.active[GATEWAY]:
            return
        if final:
            self.passed_by = None
            if status >= 300:
                self.record.transferred_to = ""
                self.record.attempts.append(f"transfer:{status}")
        if referrer is self.active[INTERNAL]:
            referrer.notify_transfer(status, reason, final)

    def _local_ringback(self) -> bool:
        """Our caller hears a ring-back tone of the gateway's country while the far end
        rings without sending media (a 180 with no SDP): True when the caller is
        handled (tone playing, or a plain 180 for an INVITE that had no offer)."""
        gateway = self.gateway
        if self.answering_side != INTERNAL or gateway is None \
                or gateway.ringback not in RINGBACK_PLANS:
            return False  # PSTN callers: the gateway turns the 180 into alerting
        assert self.answering is not None
        if self.bridge.ringback[INTERNAL] is not None:
            return True
        if self.answering.progress(codecs_in_order(gateway.codecs)):
            self.bridge.ring_back(INTERNAL, CadencedTone(RINGBACK_PLANS[gateway.ringback]))
        return True

    def _connected(self, leg: DialingLeg) -> None:
        assert self.answering is not None
        self._cancel_failover()
        self.bridge.ring_back(self.answering_side, None)
        if self.connected is not None:  # a second device answered too late
            leg.disconnect("answered elsewhere")
            return
        self.connected = leg
        for other in self.dialing:
            if other is not leg:
                other.disconnect("answered elsewhere")
        self.dialing = [leg]
        if self.attempt is not None:
            self.record.attempts.append(f"{leg.name}:200")
            health = self.m.health.get(leg.name)
            if health is not None:
                health.call_result(False, self.m.reactor.seconds())
        self.record.disposition, self.record.sip_status = "answered", 200
        self.record.answered_at = self.m.wall_clock()
        self.m.record_answered(self.record)
        codec = leg.codec()
        self.answering.connect((codec,) if codec is not None else None)
        if not self.answering.answered:
            leg.disconnect("the caller's leg could not be answered")
            return
        self.active[self.answering_side] = self.answering
        self.active[1 - self.answering_side] = leg
        self.last = list(self.active)

    def _failed(self, leg: DialingLeg, status: int | None, reason: str,
                local: bool = False) -> None:
        assert self.answering is not None
        if leg not in self.dialing:
            return
        self.dialing.remove(leg)
        if local and self.sequence is not None:
            # our own shortage (no RTP port): not the gateway's failure, and no other
            # gateway would do better; the caller may try again in a moment
            self._cancel_failover()
            self._uncount()
            self.record.attempts.append(f"{leg.name}:local")
            self.record.sip_status = 503
            log.warning("mediation call %s: %s", self.record.call_id, reason)
            self.answering.fail(503, "Service Unavailable (no media port free here)",
                                [("Retry-After", "5")])
            return
        if self.sequence is None:  # an internal fork: fail when every device has
            where = f" at {leg.call.source.host}:{leg.call.source.port}" if leg.call else ""
            self._inside_tried.append(f"{leg.name}{where} ({status or reason})")
            if not self.dialing and self.connected is None:
                if status is not None and 400 <= status < 700:
                    code, phrase = status, reason.partition(" ")[2] or "Call Failed"
                elif self._inside_kind == "access":  # the front end did not respond
                    code, phrase = 504, "Server Time-out"
                else:
                    code, phrase = 480, "Temporarily Unavailable"
                self.record.sip_status = code
                self.answering.fail(code, phrase, [warning_header(
                    self.m.app.settings.domain, "tried " + ", ".join(self._inside_tried))])
            return
        self._cancel_failover()
        self._uncount()
        self.sequence.record(leg.name, status)
        self.record.attempts.append(f"{leg.name}:{status or 'timeout'}")
        gateway = self.gateway
        translations = gateway.translations if gateway else {}
        health = self.m.health.get(leg.name)
        if fails_over(status, translations):
            if health is not None:
                health.call_result(True, self.m.reactor.seconds())
            self.m.stats["failovers"] += 1
            log.info("gateway %s failed (%s): trying the next", leg.name, reason)
            self._next_attempt()
            return
        assert status is not None
        self.record.sip_status = status
        self.answering.fail(status, reason.partition(" ")[2] or "Call Failed")

    def _bridge_digit(self, side: int, digit: str, method: str) -> None:
        """A digit heard on one leg is sent on the other, in that leg's way."""
        other = self.active[1 - side]
        if other is not None:
            other.send_digit(digit)
        del method  # each leg sends in its own way

    # ------------------------------------------------------------ timers and the end
    def _arm_failover(self, seconds: float, leg: DialingLeg) -> None:
        self._cancel_failover()

        def expired() -> None:
            self._timer = None
            if leg in self.dialing and not leg.ringing and not leg.answered:
                log.info("gateway %s gave no answer in %.0f s: trying the next", leg.name, seconds)
                leg.abandon("failover timer")
                self._failed(leg, None, "no answer before the failover timer")

        self._timer = self.m.reactor.callLater(seconds, expired)

    def _cancel_failover(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _count(self, gateway: str) -> None:
        self._uncount()
        self.m.active[gateway] = self.m.active.get(gateway, 0) + 1
        self._counted = gateway

    def _uncount(self) -> None:
        if self._counted is not None:
            self.m.active[self._counted] = max(0, self.m.active.get(self._counted, 1) - 1)
            self._counted = None
        if self._transfer_counted is not None:
            gateway, self._transfer_counted = self._transfer_counted, None
            self.m.active[gateway] = max(0, self.m.active.get(gateway, 1) - 1)

    def _count_transfer(self, gateway: str) -> None:
        """A transfer's target through a gateway counts against its limit too."""
        self.m.active[gateway] = self.m.active.get(gateway, 0) + 1
        self._transfer_counted = gateway

    def _finish(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        self._cancel_failover()
        self._uncount()
        if self.transfer is not None:
            self.transfer.cancel("call ended")
            self.transfer = None
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        self.m.calls.discard(self)
        if self.last == [None, None]:  # never connected: what the answering leg had
            self.last[self.answering_side] = self.answering
        self.bridge.end_relay()  # a relay's counters back in the streams the report reads
        internal, gateway = (leg.media_report() if leg else None for leg in self.last)
        if self.record.disposition == "answered":
            self.record.disposition = "completed"
        self.m.record(self.record.row(self.m.wall_clock(), internal, gateway), self.record)
        log.info("mediation call %s ended: %s", self.record.call_id, reason)
        # every leg has been told to end: what they say from now on changes nothing,
        # and the references back to this call would keep it in cycles
        self.bridge.close()
        for leg in self.dialing:
            leg.detach()


__all__ = ["MediationCall"]
