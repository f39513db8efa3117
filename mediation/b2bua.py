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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.adapters.storage.record_queue import RecordQueue
from confserver.gate.destination import dialed_number
from confserver.recent import RecentLookups
from confserver.sip.assertion import verify
from confserver.sip.digest import RECHALLENGE, compute_ha1
from confserver.sip.message import Request
from confserver.sip.uri import SipUri
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.bindings import BindingStore
from confserver.storage.users import UserDirectory, UserRecord
from confserver.text import log_quoted

from .call import MediationCall
from .dialplan import E164, Normalized
from .gateways import GatewaySettings
from .health import GatewayHealth, HealthSettings
from .models import IN_PROGRESS
from .rates import RateTable
from .records import CallRecord, warning_header
from .routing import Refusal, RoutePlan
from .store import CONFIG_VERSION, REPLACE, SKIP, TOUCH, MediationConfig, MediationStore

if TYPE_CHECKING:
    from confserver.adapters.calls.application import SipApplication

log = logging.getLogger("switchboard.mediation")
CONFIG_FRESHNESS = 1.0  # seconds a routing snapshot is used before asking for changes
RECORD_DELAY = 0.25  # seconds call records wait to be written together
_WRITTEN = "_written"  # set on a queued row once it is in the database
RECORD_RETRY = 5.0  # seconds before writing again after the database refused
MAX_QUEUED_RECORDS = 100_000  # about 100 MB: beyond this the oldest unwritten go


class Authenticator(Protocol):
    def authenticate(self, request: Request, now: float, header: str = "Authorization",
                     source: str = "") -> tuple[str | None, object | None]: ...


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
        self.records: RecordQueue[dict[str, Any]] = RecordQueue(
            self.reactor, self._write_records, "mediation call records", delay=RECORD_DELAY,
            retry=RECORD_RETRY, limit=MAX_QUEUED_RECORDS)
        self._rates: dict[str, RateTable] = {}
        self.stats = {"outbound": 0, "inbound": 0, "refused": 0, "failovers": 0}
        self.lookups = RecentLookups(self.reactor.seconds, CONFIG_FRESHNESS)
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
        """The gateway a request came from: the one configured with that transport,
        address and port. Over TCP or TLS a gateway may open a connection of its own
        (from a port of its choosing): then the only gateway of that transport at that
        address, and only when something else proves it (a pinned certificate, or
        digest): the address alone is never enough."""
        if (source.host, source.port) in {self.app.via_address(t) for t in ("udp", "tcp")}:
            return None  # our own leg to the front end, looped back: never a gateway
        there = [g for g in self.config().gateways.values()
                 if g.host == source.host and g.transport == source.transport]
        exact = [g for g in there if g.port == source.port]
        if exact:
            return exact[0]
        if not source.reliable or len(there) != 1:
            return None  # over UDP a gateway sends from the port it listens on
        gateway = there[0]
        return gateway if gateway.tls_fingerprint or gateway.inbound_auth else None

    def proven(self, gateway: GatewaySettings, request: Request, tx: ServerTxHandle) -> bool:
        """A request from ``gateway``'s address also proves it is the gateway, as far as
        its settings ask: the certificate its TLS connection presented is the pinned
        one, its digest credentials are right. False when refused or challenged here."""
        source = tx.source
        if gateway.tls_fingerprint:
            presented = self.app.endpoint.peer_fingerprint(source)
            if presented is None or presented.upper() != gateway.tls_fingerprint.upper():
                log.warning("gateway %s: a request from %s without its pinned certificate "
                            "(presented %s): refused", gateway.name, source,
                            presented or "none")
                tx.reply(403, "Forbidden (not the certificate configured for this gateway)")
                return False
        if gateway.inbound_auth == "digest":
            return self._digest_proven(gateway, request, tx)
        return True

    def _digest_proven(self, gateway: GatewaySettings, request: Request,
                       tx: ServerTxHandle) -> bool:
        server = self.app.registrar.auth
        now = self.reactor.seconds()
        offered = [v for v in request.headers.get_all("Authorization")
                   if v.strip().lower().startswith("digest")]
        if offered:
            def ha1(user: str, algorithm: str) -> str | None:
                return compute_ha1(algorithm, user, server.realm, gateway.inbound_password) \
                    if user == gateway.inbound_username else None

            result = server.verify(offered[0], request.method, request.uri, request.uri_text,
                                   now, ha1)
            if result.ok:
                return True
            log.warning("auth failure: user=%s source=%s method=%s reason=%s (gateway %s)",
                        log_quoted(result.username or ""), tx.source.host, request.method,
                        log_quoted(result.reason), gateway.name)
            if not result.stale and result.reason not in RECHALLENGE:
                tx.reply(403, "Forbidden (authentication failed)")
                return False
        tx.reply(401, "Unauthorized", [("WWW-Authenticate", value)
                                       for value in server.challenge(now)])
        return False

    def internal_target(self) -> Target:
        if self.next_hop is not None:
            return self.next_hop
        host, port = self.app.via_address("udp")
        return Target("udp", host, port)

    def record(self, row: dict[str, Any], record: CallRecord | None = None) -> None:
        """Queue a call's final record; queued records are written together
        RECORD_DELAY seconds after the first (one transaction instead of one per
        call). With ``record``, the row replaces the one its answer wrote, or that
        one is dropped if it is still queued."""
        written = record.provisional if record is not None else None
        if written is not None:
            if written.get(_WRITTEN):
                row[REPLACE] = True
            else:
                written[SKIP] = True
        self.records.add(row)

    def record_answered(self, record: CallRecord) -> None:
        """Write an answered call's record now, in progress (ended_at: now), so that
        a process killed mid-call still leaves its calls on record; refreshed by
        ``touch_records`` and replaced when the call ends."""
        if record.provisional is not None:
            return  # answered again (a transfer's target): the row stands
        row = record.row(self.wall_clock(), None, None)
        row["disposition"] = IN_PROGRESS
        record.provisional = row
        self.records.add(row)

    def touch_records(self) -> None:
        """Every RECORD_HEARTBEAT: the answered calls still up were seen now."""
        now = self.wall_clock()
        for call in self.calls:
            written = call.record.provisional
            if written is not None and written.get(_WRITTEN) and not call.ended:
                self.records.add({TOUCH: True, "record_key": call.record.key, "ended_at": now})

    def flush_records(self) -> None:
        self.records.flush()

    def _write_records(self, rows: list[dict[str, Any]]) -> None:
        self.store.add_cdrs(rows)
        for row in rows:
            row[_WRITTEN] = True  # an answered call's row: its end replaces it

    # ------------------------------------------------------------ finding who a number is
    def user(self, aor: str) -> UserRecord | None:
        """The user with this address (answers up to CONFIG_FRESHNESS seconds old)."""
        return self.lookups.get(("user", aor), lambda: self.users.get(aor))

    def resolve(self, dialed: str, identity: str | None, record: CallRecord, *,
                available_only: bool = True) -> tuple[str, str] | RoutePlan | Refusal:
        """Where ``identity``'s call to ``dialed`` goes: inside (``local_destination``),
        toward gateways (a route plan authorized by their voice policy; with
        ``available_only``, of gateways up and below their limit now), or nowhere (a
        refusal saying why). Fills in the record's normalization and policy."""
        config = self.config()
        plan = config.dial_plan_for_user(identity, self.site)
        normalized: Normalized | None = plan.normalize(dialed) if plan else None
        if normalized is None and E164.match(dialed):
            number = dialed
        elif normalized is None:
            return Refusal(484, "Address Incomplete", f"no rule of dial plan "
                           f"{plan.name if plan else '(none)'} turns {dialed} into a number")
        else:
            number = normalized.number
            record.dial_plan, record.rule = plan.name if plan else "", normalized.rule.name
        record.normalized = number
        destination = self.local_destination(number)
        if destination is not None:
            return destination
        if normalized is not None and normalized.internal:
            return Refusal(404, "Not Found", f"no user has extension {number}")
        policy = config.policy_for_user(identity)
        record.voice_policy = policy.name if policy else ""
        now = time.localtime(self.wall_clock())
        return config.table.plan(number, policy, weekday=now.tm_wday,
                                 minute=now.tm_hour * 60 + now.tm_min,
                                 usable=self.usable if available_only else lambda _gw: True)

    def local_destination(self, number: str) -> tuple[str, str] | None:
        """("access", sip uri) or ("user", aor) when ``number`` belongs inside."""
        if E164.match(number):
            access = self.lookups.get(("access", number),
                                      lambda: self.access_numbers.get(number))
            if access is not None:
                return "access", access.sip_uri
            user = self.lookups.get(("phone", number), lambda: self.users.by_phone(number))
            if user is not None:
                return "user", user.sip_uri
            return None
        user = self.lookups.get(("extension", number),
                                lambda: self.users.by_extension(number))
        return ("user", user.sip_uri) if user is not None else None


def _dialed(uri: SipUri) -> str | None:
    return dialed_number(uri.user_unescaped or "")


class GatewayRouter:
    """First router: INVITEs from a gateway or trunk."""

    def __init__(self, mediation: Mediation) -> None:
        self.mediation = mediation

    def route(self, request: Request, tx: ServerTxHandle, uri: SipUri) -> CallBehaviour | bool:
        m = self.mediation
        gateway = m.gateway_for(tx.source)
        if gateway is None:
            return False
        if not m.proven(gateway, request, tx):
            return True
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
                     [warning_header(m.app.settings.domain, f"{number or dialed} is not ours")])
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
        if dialed is None or m.user(uri.aor()) is not None:
            return False
        domain = m.app.settings.domain
        claimed = request.from_.uri if request.from_ else None
        identity: str | None = None
        vouched = verify(m.app.secret, request, m.reactor.seconds())
        if vouched is not None and vouched.identity is not None:
            # placed by this server for one of our users (a meeting's dial-out, a
            # REFER): the outbound gate vouched for them; their policy applies
            identity = vouched.identity
        elif isinstance(claimed, SipUri) and claimed.host.lower() == domain.lower():
            username, refusal = m.auth.authenticate(request, m.reactor.seconds(),
                                                    source=tx.source.host)
            if username is None:
                tx.reply(getattr(refusal, "status", 403), getattr(refusal, "reason", "Forbidden"),
                         list(getattr(refusal, "headers", [])))
                return True
            identity = f"sip:{username}@{domain}"
        record = CallRecord(request.call_id or "", "outbound", caller=identity or "anonymous",
                            dialed=dialed, started_at=m.wall_clock())
        where = m.resolve(dialed, identity, record)
        if isinstance(where, Refusal):
            return self._refuse(tx, record, where)
        if isinstance(where, RoutePlan):
            m.stats["outbound"] += 1
            return MediationCall(m, record, outbound=where)
        record.target = where[1]
        return MediationCall(m, record, internal=where)

    def _refuse(self, tx: ServerTxHandle, record: CallRecord, refusal: Refusal) -> bool:
        m = self.mediation
        m.stats["refused"] += 1
        log.info("call to %s refused: %s (%s)", record.normalized or record.dialed,
                 refusal.reason, refusal.diagnostic)
        record.disposition, record.sip_status = "refused", refusal.status
        m.record(record.row(m.wall_clock(), None, None))
        tx.reply(refusal.status, refusal.reason,
                 [warning_header(m.app.settings.domain, refusal.diagnostic)])
        return True


__all__ = ["CONFIG_VERSION", "GatewayRouter", "Mediation", "MediationCall", "OutboundRouter"]
