"""The mediation server: a back-to-back user agent between Switchboard's internal side
and PSTN gateways / SIP trunks (the Twisted side of routing).

Two routers go on the SIP application. ``GatewayRouter`` goes first and takes
every INVITE that arrives from a configured gateway: the called number is
normalized with the gateway's dial plan and looked up (an access number goes to
the attendant through the front end; a user's number rings all their devices).
``OutboundRouter`` goes last and takes INVITEs from our users to numbers: the
caller's dial plan normalizes, a number of a user or an access number stays
inside, anything else is authorized by the caller's voice policy and routed by
least cost, with failover.

A ``MediationCall`` couples the two legs through call events only, and its media
through a :class:`MediaBridge`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from twisted.internet.interfaces import IDelayedCall

from confserver.media.tones import RINGBACK_PLANS, CadencedTone
from confserver.server.calls import CallBehaviour, UasCall
from confserver.server.endpoint import ServerTxHandle, Target
from confserver.server.media import MediaApp
from confserver.sip.digest import DigestClient
from confserver.sip.message import Request
from confserver.sip.sdp import codecs_in_order
from confserver.sip.uri import SipUri
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.bindings import BindingStore
from confserver.storage.users import UserDirectory

from .callerid import outbound_numbers
from .dialplan import E164, Normalized
from .emodel import estimate_mos
from .events import CallEvent, Connect, Disconnect, Fail, Hold, Ring
from .failover import FailoverSequence, fails_over
from .gateways import GatewaySettings
from .health import GatewayHealth, HealthSettings
from .legs import AnsweringLeg, DialingLeg, LegMedia
from .media_bridge import MediaBridge
from .rates import RateTable
from .routing import Attempt, Refusal, RoutePlan
from .store import CONFIG_VERSION, MediationConfig, MediationStore

if TYPE_CHECKING:
    from confserver.server.application import SipApplication

log = logging.getLogger("switchboard.mediation")
DIALABLE = re.compile(r"\+?[0-9*#]{2,32}\Z")
_SEPARATORS = re.compile(r"[\s().\-/]")
CONFIG_FRESHNESS = 1.0  # seconds a routing snapshot is used before asking for changes
RECORD_DELAY = 0.25  # seconds call records wait to be written together
RECORD_RETRY = 5.0  # seconds before writing again after the database refused
MAX_QUEUED_RECORDS = 100_000  # about 100 MB: beyond this the oldest unwritten go
INTERNAL, GATEWAY = 0, 1  # the bridge's legs


class Authenticator(Protocol):
    def authenticate(self, request: Request, now: float, header: str = "Authorization"
                     ) -> tuple[str | None, object | None]: ...


@dataclass
class CallRecord:
    """What the call detail record will say; filled in as the call goes."""

    call_id: str
    direction: str
    caller: str = ""
    dialed: str = ""
    normalized: str = ""
    dial_plan: str = ""
    rule: str = ""
    voice_policy: str = ""
    usage: str = ""
    route: str = ""
    gateway: str = ""
    target: str = ""
    cost_per_minute: float | None = None
    attempts: list[str] = field(default_factory=list)
    disposition: str = "failed"
    sip_status: int = 0
    started_at: float = 0.0
    answered_at: float | None = None

    def row(self, ended_at: float, internal: LegMedia | None, gateway: LegMedia | None
            ) -> dict[str, Any]:
        def mos(media: LegMedia | None) -> float | None:
            if media is None or media.loss_percent is None:
                return None
            return estimate_mos(media.codec, media.loss_percent, media.jitter_ms or 0.0,
                                media.rtt_ms)

        return {"call_id": self.call_id[:255], "direction": self.direction,
                "caller": self.caller[:255], "dialed": self.dialed[:64],
                "normalized": self.normalized[:64], "dial_plan": self.dial_plan,
                "rule": self.rule, "voice_policy": self.voice_policy, "usage": self.usage,
                "route": self.route, "gateway": self.gateway, "target": self.target[:255],
                "cost_per_minute": self.cost_per_minute,
                "attempts": ",".join(self.attempts)[:1024], "disposition": self.disposition,
                "sip_status": self.sip_status, "started_at": self.started_at,
                "answered_at": self.answered_at, "ended_at": ended_at,
                "internal_codec": internal.codec if internal else "",
                "gateway_codec": gateway.codec if gateway else "",
                "internal_loss": internal.loss_percent if internal else None,
                "internal_jitter": internal.jitter_ms if internal else None,
                "gateway_loss": gateway.loss_percent if gateway else None,
                "gateway_jitter": gateway.jitter_ms if gateway else None,
                "internal_mos": mos(internal), "gateway_mos": mos(gateway),
                "internal_srtp": bool(internal and internal.srtp),
                "gateway_srtp": bool(gateway and gateway.srtp)}


class Mediation:
    """The mediation role's state in one process: configuration snapshot, gateway
    health, calls per gateway."""

    def __init__(self, app: SipApplication, store: MediationStore, users: UserDirectory,
                 access_numbers: AccessNumberDirectory, bindings: BindingStore,
                 auth: Authenticator, *, site: str = "", next_hop: Target | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.reactor = app.reactor
        self.store = store
        self.users = users
        self.access_numbers = access_numbers
        self.bindings = bindings
        self.auth = auth
        self.site = site
        self.next_hop = next_hop
        self.wall_clock = wall_clock
        self.health: dict[str, GatewayHealth] = {}
        self.active: dict[str, int] = {}
        self.calls: set[MediationCall] = set()
        self._config: MediationConfig | None = None
        self._versions = ("", "")
        self._checked_at = 0.0
        self._records: list[dict[str, Any]] = []
        self._flush_call: IDelayedCall | None = None
        self._rates: dict[str, RateTable] = {}
        self.stats = {"outbound": 0, "inbound": 0, "refused": 0, "failovers": 0}
        self.on_config: list[Callable[[MediationConfig], None]] = []

    # ------------------------------------------------------------ configuration
    def config(self) -> MediationConfig:
        """The routing snapshot. Whether an admin changed something is asked of the
        database at most once per CONFIG_FRESHNESS seconds: a query per INVITE would
        cost more than routing the call."""
        now = self.reactor.seconds()
        if self._config is not None and now - self._checked_at < CONFIG_FRESHNESS:
            return self._config
        return self.reload()

    def reload(self) -> MediationConfig:
        """The routing snapshot, re-read now if an admin changed something."""
        self._checked_at = self.reactor.seconds()
        versions = self.store.versions()
        if self._config is None or versions != self._versions:
            rates = self._rates if self._config is not None and \
                versions[1] == self._versions[1] else None
            self._config = self.store.snapshot(rates)
            self._rates = self._config.table.rates
            self._versions = versions
            log.info("mediation configuration loaded (configuration version %s, rates "
                     "version %s)", *versions)
            for name, gateway in self._config.gateways.items():
                if name not in self.health:
                    self.health[name] = GatewayHealth(HealthSettings(
                        interval=gateway.probe_interval or 30.0))
            for listener in self.on_config:
                listener(self._config)
        return self._config

    @property
    def current(self) -> MediationConfig | None:
        """The snapshot last loaded (None before the first), without checking for changes."""
        return self._config

    def usable(self, gateway: str) -> bool:
        config = self._config
        settings = config.gateways.get(gateway) if config else None
        if settings is None:
            return False
        health = self.health.get(gateway)
        if health is not None and not health.available(self.reactor.seconds()):
            return False
        return not settings.max_calls or self.active.get(gateway, 0) < settings.max_calls

    def gateway_for(self, source: Target) -> GatewaySettings | None:
        """The gateway a request came from: by address and port, else by address alone
        when only one gateway lives there."""
        if (source.host, source.port) in {self.app.via_address(t) for t in ("udp", "tcp")}:
            return None  # our own leg to the front end, looped back: never a gateway
        gateways = self.config().gateways.values()
        exact = [g for g in gateways if g.host == source.host and g.port == source.port]
        if exact:
            return exact[0]
        if not source.reliable:
            return None  # over UDP a gateway sends from the port it listens on
        # over TCP or TLS the source port is ephemeral: the address alone, if unambiguous
        same_host = [g for g in gateways if g.host == source.host]
        return same_host[0] if len(same_host) == 1 else None

    def internal_target(self) -> Target:
        if self.next_hop is not None:
            return self.next_hop
        host, port = self.app.via_address("udp")
        return Target("udp", host, port)

    def record(self, row: dict[str, Any]) -> None:
        """Queue a call record; queued records are written together RECORD_DELAY
        seconds after the first (one transaction instead of one per call)."""
        self._records.append(row)
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.reactor.callLater(RECORD_DELAY, self.flush_records)

    def flush_records(self) -> None:
        """Write the queued call records. When the database refuses, they stay queued
        (the oldest dropped beyond MAX_QUEUED_RECORDS) and are tried again later."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        rows, self._records = self._records, []
        try:
            self.store.add_cdrs(rows)
        except SQLAlchemyError as exc:
            log.error("%d mediation call records not written yet: %s", len(rows), exc)
            self._records = rows + self._records
            if len(self._records) > MAX_QUEUED_RECORDS:
                dropped = len(self._records) - MAX_QUEUED_RECORDS
                log.error("%d mediation call records dropped: the database has refused "
                          "writes too long", dropped)
                del self._records[:dropped]
            self._flush_call = self.reactor.callLater(RECORD_RETRY, self.flush_records)

    # ------------------------------------------------------------ finding who a number is
    def local_destination(self, number: str) -> tuple[str, str] | None:
        """("access", sip uri) or ("user", aor) when ``number`` belongs inside."""
        if E164.match(number):
            access = self.access_numbers.get(number)
            if access is not None:
                return "access", access.sip_uri
            user = self.users.by_phone(number)
            if user is not None:
                return "user", user.sip_uri
            return None
        user = self.users.by_extension(number)
        return ("user", user.sip_uri) if user is not None else None


def _dialed(uri: SipUri) -> str | None:
    user = _SEPARATORS.sub("", uri.user_unescaped or "")
    user = user.split(";")[0]
    return user if DIALABLE.match(user) else None


def _warning(domain: str, text: str) -> tuple[str, str]:
    return "Warning", f'399 {domain} "{text.replace(chr(34), chr(39))}"'


class GatewayRouter:
    """First router: INVITEs from a gateway or trunk."""

    def __init__(self, mediation: Mediation) -> None:
        self.mediation = mediation

    def route(self, request: Request, tx: ServerTxHandle, uri: SipUri) -> CallBehaviour | bool:
        m = self.mediation
        gateway = m.gateway_for(tx.source)
        if gateway is None:
            return False
        call_id = request.call_id or ""
        record = CallRecord(call_id, "inbound", gateway=gateway.name,
                            started_at=m.wall_clock())
        caller = request.from_.uri if request.from_ else None
        record.caller = (caller.user_unescaped or "") if isinstance(caller, SipUri) else ""
        dialed = _dialed(uri)
        record.dialed = dialed or (uri.user_unescaped or "")
        config = m.config()
        plan = config.dial_plan_for_gateway(gateway, m.site)
        normalized = plan.normalize(dialed) if plan and dialed else None
        number = normalized.number if normalized else dialed
        if normalized is not None and plan is not None:
            record.dial_plan, record.rule = plan.name, normalized.rule.name
        record.normalized = number or ""
        destination = m.local_destination(number) if number else None
        if destination is None:
            record.disposition, record.sip_status = "no-destination", 404
            m.record(record.row(m.wall_clock(), None, None))
            tx.reply(404, "Not Found (no user or access number has this number)",
                     [_warning(m.app.settings.domain, f"{number or dialed} is not ours")])
            return True
        kind, target = destination
        record.target = target
        m.stats["inbound"] += 1
        return MediationCall(m, record, inbound=(gateway, kind, target))


class OutboundRouter:
    """Last router: our users' INVITEs to numbers nobody else answered."""

    def __init__(self, mediation: Mediation) -> None:
        self.mediation = mediation

    def route(self, request: Request, tx: ServerTxHandle, uri: SipUri) -> CallBehaviour | bool:
        m = self.mediation
        dialed = _dialed(uri)
        if dialed is None or m.users.get(uri.aor()) is not None:
            return False
        domain = m.app.settings.domain
        claimed = request.from_.uri if request.from_ else None
        identity: str | None = None
        if isinstance(claimed, SipUri) and claimed.host.lower() == domain.lower():
            username, refusal = m.auth.authenticate(request, m.reactor.seconds())
            if username is None:
                tx.reply(getattr(refusal, "status", 403), getattr(refusal, "reason", "Forbidden"),
                         list(getattr(refusal, "headers", [])))
                return True
            identity = f"sip:{username}@{domain}"
        record = CallRecord(request.call_id or "", "outbound", caller=identity or "anonymous",
                            dialed=dialed, started_at=m.wall_clock())
        config = m.config()
        plan = config.dial_plan_for_user(identity, m.site)
        normalized: Normalized | None = plan.normalize(dialed) if plan else None
        if normalized is None and E164.match(dialed):
            number = dialed
        elif normalized is None:
            return self._refuse(tx, record, Refusal(
                484, "Address Incomplete", f"no rule of dial plan "
                f"{plan.name if plan else '(none)'} turns {dialed} into a number"))
        else:
            number = normalized.number
            record.dial_plan, record.rule = plan.name if plan else "", normalized.rule.name
        record.normalized = number
        destination = m.local_destination(number)
        if destination is not None:
            kind, target = destination
            record.target = target
            return MediationCall(m, record, internal=(kind, target))
        if normalized is not None and normalized.internal:
            return self._refuse(tx, record, Refusal(404, "Not Found",
                                                    f"no user has extension {number}"))
        policy = config.policy_for_user(identity)
        record.voice_policy = policy.name if policy else ""
        now = time.localtime(m.wall_clock())
        plan_or_refusal = config.table.plan(number, policy, weekday=now.tm_wday,
                                            minute=now.tm_hour * 60 + now.tm_min,
                                            usable=m.usable)
        if isinstance(plan_or_refusal, Refusal):
            return self._refuse(tx, record, plan_or_refusal)
        m.stats["outbound"] += 1
        return MediationCall(m, record, outbound=plan_or_refusal)

    def _refuse(self, tx: ServerTxHandle, record: CallRecord, refusal: Refusal) -> bool:
        m = self.mediation
        m.stats["refused"] += 1
        log.info("call to %s refused: %s (%s)", record.normalized or record.dialed,
                 refusal.reason, refusal.diagnostic)
        record.disposition, record.sip_status = "refused", refusal.status
        m.record(record.row(m.wall_clock(), None, None))
        tx.reply(refusal.status, refusal.reason,
                 [_warning(m.app.settings.domain, refusal.diagnostic)])
        return True


class MediationCall:
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
        self.ended = False

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

    def media_app(self, call: UasCall) -> MediaApp | None:
        return self.bridge.sides[self.answering_side]

    def on_remote_hold(self, call: UasCall, direction: str) -> None:
        """The caller held or resumed: the connected far end is told the same."""
        if self.connected is not None and not self.ended:
            self.connected.reoffer(direction)

    def on_end(self, call: UasCall) -> None:
        # the caller hung up, cancelled, or the call failed: end every other leg
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
            self.answering.fail(status, reason, [_warning(
                self.m.app.settings.domain, "tried " + ", ".join(
                    f"{g} ({s or 'no answer'})" for g, s in tried))])
            return
        gateway = config.gateways[attempt.gateway]
        self.attempt, self.gateway = attempt, gateway
        self.record.gateway, self.record.route = gateway.name, attempt.route.name
        self.record.usage, self.record.cost_per_minute = attempt.usage, attempt.cost
        self._count(gateway.name)
        numbers = outbound_numbers(gateway, attempt.route, self.record.normalized,
                                   *self._caller_identity())
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
        leg = DialingLeg(self._leg_event, gateway.name, gateway.dtmf)
        self.dialing = [leg]
        self.bridge.sides[GATEWAY].wants_inband_dtmf = gateway.dtmf == "inband"
        self._arm_failover(gateway.failover_timer, leg)
        leg.start(self.m.app, uri, from_header, self.bridge.sides[GATEWAY],
                  codecs=codecs_in_order(gateway.codecs),
                  target=Target(gateway.transport, gateway.host, gateway.port),
                  headers=headers, credentials=credentials,
                  ring_timeout=self.m.app.call_settings.ring_timeout, srtp=gateway.srtp,
                  session_expires=gateway.session_expires)

    def _dial_inside(self, kind: str, target: str) -> None:
        """The internal leg(s): the attendant through the front end, or every device a
        user has registered, at once."""
        assert self.answering is not None
        domain = self.m.app.settings.domain
        caller = self.record.caller or "anonymous"
        number = caller if caller.startswith("+") or caller.isdigit() else "anonymous"
        if self.record.direction == "outbound":
            from_header = f"<{self.record.caller}>" if self.record.caller.startswith("sip:") \
                else f"<sip:anonymous@{domain}>"
        else:
            from_header = f'"{number}" <sip:{number}@{domain};user=phone>'
        legs: list[tuple[SipUri, Target]] = []
        if kind == "access":
            legs.append((SipUri.parse(target), self.m.internal_target()))
        else:
            now = self.m.wall_clock()
            for binding in self.m.bindings.current(target, now):
                try:
                    contact = SipUri.parse(binding.contact.strip("<>"))
                except ValueError:
                    continue
                host, _, port = binding.source.rpartition(":")
                legs.append((contact, Target(binding.transport or "udp", host or contact.host,
                                             int(port) if port.isdigit() else contact.port or 5060)))
        if not legs:
            self.record.sip_status = 480
            self.answering.fail(480, "Temporarily Unavailable (no registered device)")
            return
        side = self.bridge.sides[INTERNAL]
        self.dialing = []
        for uri, where in legs:
            leg = DialingLeg(self._leg_event, str(uri))
            self.dialing.append(leg)
            leg.start(self.m.app, uri, from_header, side, target=where,
                      ring_timeout=self.m.app.call_settings.ring_timeout)

    def _caller_identity(self) -> tuple[str, str]:
        """(calling number, display name) of the caller: a user's phone number and
        name, or whatever an anonymous caller sent."""
        caller = self.record.caller
        if not caller.startswith("sip:"):
            return caller, ""
        try:
            user = self.m.users.get(caller)
        except SQLAlchemyError:
            user = None
        return (user.phone or "", user.display_name) if user is not None else ("", "")

    # ------------------------------------------------------------ events from the legs
    def _leg_event(self, leg: DialingLeg, event: CallEvent) -> None:
        if (self.ended or self.stopping) and not isinstance(event, Disconnect):
            return
        assert self.answering is not None
        match event:
            case Ring(early_media):
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
            case Connect():
                self._connected(leg)
            case Fail(status, reason):
                self._failed(leg, status, reason)
            case Disconnect(reason):
                if leg is self.connected:
                    self.answering.disconnect(f"far end: {reason}")
            case Hold(direction):
                if leg is self.connected:
                    self.answering.reoffer(direction)

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
        codec = leg.codec()
        self.answering.connect((codec,) if codec is not None else None)
        if not self.answering.answered:
            leg.disconnect("the caller's leg could not be answered")

    def _failed(self, leg: DialingLeg, status: int | None, reason: str) -> None:
        assert self.answering is not None
        if leg not in self.dialing:
            return
        self.dialing.remove(leg)
        if self.sequence is None:  # an internal fork: fail when every device has
            if not self.dialing and self.connected is None:
                code = status if status is not None and 400 <= status < 700 else 480
                self.record.sip_status = code
                self.answering.fail(code, reason if status else "Temporarily Unavailable")
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
        if side == self.answering_side:
            if self.connected is not None:
                self.connected.send_digit(digit)
        elif self.answering is not None:
            self.answering.send_digit(digit)
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

    def _finish(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        self._cancel_failover()
        self._uncount()
        self.m.calls.discard(self)
        internal = gateway = None
        legs = {self.answering_side: self.answering.media_report() if self.answering else None,
                1 - self.answering_side: self.connected.media_report() if self.connected else None}
        internal, gateway = legs[INTERNAL], legs[GATEWAY]
        if self.record.disposition == "answered":
            self.record.disposition = "completed"
        self.m.record(self.record.row(self.m.wall_clock(), internal, gateway))
        log.info("mediation call %s ended: %s", self.record.call_id, reason)


__all__ = ["CONFIG_VERSION", "GatewayRouter", "Mediation", "MediationCall", "OutboundRouter"]
