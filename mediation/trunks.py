"""Talking to gateways outside calls: OPTIONS probes (gateway health) and REGISTER for
registration-mode trunks, on the injected reactor."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.sip.endpoint import Target
from confserver.sip.dialog import new_call_id, new_tag
from confserver.sip.digest import DigestClient
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Headers, Request, Response
from confserver.sip.uri import SipUri

from .gateways import GatewaySettings, parse_address
from .registration import RegistrationState
from .store import MediationConfig

if TYPE_CHECKING:
    from .b2bua import Mediation

log = logging.getLogger("switchboard.mediation")


def request_to(mediation: Mediation, method: str, uri: SipUri, target: Target, *,
               from_user: str = "switchboard", to_uri: str | None = None,
               call_id: str | None = None, cseq: int = 1, from_tag: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> Request:
    app = mediation.app
    via_host, via_port = app.via_address(target.transport)
    domain = app.settings.domain
    request = Request(headers=Headers([
        ("Via", f"SIP/2.0/{target.transport.upper()} {via_host}:{via_port};"
                f"branch=z9hG4bK{new_tag()};rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{from_user}@{domain}>;tag={from_tag or new_tag()}"),
        ("To", f"<{to_uri or uri}>"), ("Call-ID", call_id or new_call_id(via_host)),
        ("CSeq", f"{cseq} {method}"), ("Contact", app.local_contact(target.transport)),
        ("User-Agent", app.settings.user_agent), *(headers or [])]),
        method=method, uri=uri, body=b"")
    request.validate()
    return request


class GatewayProber:
    """Sends OPTIONS to every gateway with a probe interval; any response counts as
    alive (a 404 or 405 still proves the gateway is there)."""

    def __init__(self, mediation: Mediation) -> None:
        self.mediation = mediation
        self._timers: dict[str, IDelayedCall] = {}
        self.probes_sent = 0

    def reconfigure(self, config: MediationConfig) -> None:
        for name in list(self._timers):
            if name not in config.gateways or not config.gateways[name].probe_interval:
                self._stop(name)
        for name, gateway in config.gateways.items():
            if gateway.probe_interval and name not in self._timers:
                self._schedule(name, 0.5)

    def stop(self) -> None:
        for name in list(self._timers):
            self._stop(name)

    def _stop(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _schedule(self, name: str, delay: float) -> None:
        self._timers[name] = self.mediation.reactor.callLater(delay, self._probe, name)

    def _probe(self, name: str) -> None:
        self._timers.pop(name, None)
        config = self.mediation.current
        gateway = config.gateways.get(name) if config else None
        health = self.mediation.health.get(name)
        if gateway is None or health is None or not gateway.probe_interval:
            return
        target = Target(gateway.transport, gateway.host, gateway.port)
        try:
            request = request_to(self.mediation, "OPTIONS",
                                 SipUri.parse(f"sip:{gateway.host}:{gateway.port}"), target)
        except (SipSyntaxError, ValueError) as exc:
            log.warning("gateway %s cannot be probed: %s", name, exc)
            return
        self.probes_sent += 1
        answered = [False]

        def on_response(response: Response) -> None:
            if response.status >= 200 and not answered[0]:
                answered[0] = True
                self._result(name, True)

        def on_failure(reason: str) -> None:
            if not answered[0]:
                answered[0] = True
                self._result(name, False)

        self.mediation.app.endpoint.send_request(request, target, on_response, on_failure)

    def _result(self, name: str, alive: bool) -> None:
        health = self.mediation.health.get(name)
        if health is None:
            return
        was_up = health.up
        delay = health.probe_result(alive)
        if was_up != health.up:
            log.warning("gateway %s is %s", name, health.state)
        if name not in self._timers:
            self._schedule(name, delay)


class TrunkRegistration:
    """Keeps one registration-mode trunk registered."""

    def __init__(self, mediation: Mediation, gateway: GatewaySettings) -> None:
        self.mediation = mediation
        self.gateway = gateway
        registrars = tuple(r for r in (gateway.registrar, gateway.alternate_registrar) if r)
        self.state = RegistrationState(registrars, gateway.register_expires)
        self.call_id = new_call_id(gateway.host)
        self.from_tag = new_tag()
        self.cseq = 0
        self.client = DigestClient.create(gateway.username, gateway.password)
        self._timer: IDelayedCall | None = None
        self.registrations = 0
        self.stopped = False

    def start(self) -> None:
        self._schedule(0.0)

    def stop(self) -> None:
        self.stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    def _schedule(self, delay: float) -> None:
        if not self.stopped:
            self._timer = self.mediation.reactor.callLater(delay, self._register)

    def _register(self, authorization: tuple[str, str] | None = None) -> None:
        self._timer = None
        g = self.gateway
        host, port = parse_address(self.state.registrar)
        target = Target(g.transport, host, port)
        uri = SipUri.parse(f"sip:{host}:{port}")
        aor = f"sip:{g.username}@{host}"
        self.cseq += 1
        try:
            request = request_to(self.mediation, "REGISTER", uri, target, from_user=g.username,
                                 to_uri=aor, call_id=self.call_id, cseq=self.cseq,
                                 headers=[("Expires", str(g.register_expires)),
                                          *([authorization] if authorization else [])])
            # the registrar's From and To name the trunk account
            request.headers.set("From", f"<{aor}>;tag={self.from_tag}")
        except (SipSyntaxError, ValueError) as exc:
            log.warning("trunk %s cannot register: %s", g.name, exc)
            return
        done = [False]

        def on_response(response: Response) -> None:
            if response.status < 200 or done[0]:
                return
            done[0] = True
            if response.status in (401, 407) and authorization is None:
                header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
                answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
                try:
                    value = self.client.authorization(response.headers.get_all(header),
                                                      "REGISTER", str(uri))
                except SipSyntaxError as exc:
                    log.warning("trunk %s: cannot answer the registrar: %s", g.name, exc)
                    self._failed()
                    return
                self._register((answer, value))
                return
            if 200 <= response.status < 300:
                self.registrations += 1
                granted = _granted(response, g.register_expires)
                log.info("trunk %s registered at %s for %d s", g.name, self.state.registrar,
                         granted)
                self._schedule(self.state.on_success(granted, self.mediation.reactor.seconds()))
                return
            log.warning("trunk %s: REGISTER got %d %s", g.name, response.status, response.reason)
            self._failed()

        def on_failure(reason: str) -> None:
            if not done[0]:
                done[0] = True
                log.warning("trunk %s: registrar %s did not answer (%s)", g.name,
                            self.state.registrar, reason)
                self._failed()

        self.mediation.app.endpoint.send_request(request, target, on_response, on_failure)

    def _failed(self) -> None:
        self._schedule(self.state.on_failure(self.mediation.reactor.seconds()))


def _granted(response: Response, asked: int) -> int:
    for value in response.headers.get_all("Contact"):
        for part in value.split(";")[1:]:
            key, _, number = part.strip().partition("=")
            if key.lower() == "expires" and number.strip().isdigit():
                return int(number)
    expires = response.headers.get("Expires")
    return int(expires) if expires and expires.strip().isdigit() else asked


class TrunkRegistrations:
    """Starts and stops registrations as trunks are added, changed or removed."""

    def __init__(self, mediation: Mediation) -> None:
        self.mediation = mediation
        self.trunks: dict[str, TrunkRegistration] = {}

    def reconfigure(self, config: MediationConfig) -> None:
        for name, trunk in list(self.trunks.items()):
            current = config.gateways.get(name)
            if current != trunk.gateway:
                trunk.stop()
                del self.trunks[name]
        for name, gateway in config.gateways.items():
            if gateway.mode == "register" and name not in self.trunks:
                trunk = TrunkRegistration(self.mediation, gateway)
                self.trunks[name] = trunk
                trunk.start()

    def stop(self) -> None:
        for trunk in self.trunks.values():
            trunk.stop()
