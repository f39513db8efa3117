"""The SIP application: routes each request to the registrar, OPTIONS, a service or a call."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IReactorTime

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import CallSettings, DialogPeer, SipCall
from confserver.adapters.calls.inbound import UasCall
from confserver.adapters.calls.services import BUILTIN_SERVICES
from confserver.adapters.focus.focus import Focus
from confserver.adapters.gate.outbound_gate import OutboundGate
from confserver.adapters.media.ports import RtpPorts
from confserver.adapters.media.session import FRAME_MS, MediaEngine, MediaPortUnavailable, MediaTarget
from confserver.adapters.sip.endpoint import ServerTxHandle, SipEndpoint, Target
from confserver.adapters.sip.registrar import Registrar
from confserver.adapters.sip.resolver import TargetResolver, is_ip
from confserver.gate.destination import GateRules
from confserver.limits.calls import CallLimits
from confserver.limits.networks import Networks
from confserver.media.codecs.base import AudioCodec
from confserver.media.sdes import CryptoAttribute
from confserver.media.srtp import SrtpContext
from confserver.media.stream import AudioStream
from confserver.sip.message import Request, Response
from confserver.sip.sdp import NegotiatedStream
from confserver.sip.uas_checks import UasPolicy, check_request
from confserver.sip.uri import SipUri
from confserver.storage.errors import StorageError
from confserver.storage.meetings import conference_id_of

log = logging.getLogger("switchboard.app")


class InviteRouter(Protocol):
    """A role that answers INVITEs to some of the domain's URIs (the dial-in attendant's
    access numbers): installed by the role at start-up, asked in order."""

    def route(self, request: Request, tx: ServerTxHandle, uri: SipUri) -> CallBehaviour | bool:
        """The behaviour to answer with; True when it replied itself; False: not ours."""
        ...


ADHOC_FACTORY = "adhoc"  # sip:adhoc@domain starts an ad-hoc meeting


@dataclass(frozen=True, slots=True)
class AppSettings:
    domain: str
    user_agent: str = "Switchboard"
    local_hosts: tuple[str, ...] = ()
    federated_domains: tuple[str, ...] = ()  # [federation] allowed_domains
    local_ports: tuple[int, ...] = ()  # the ports we listen on, for the outbound gate
    # networks whose callers may use echo, tone, dtmf and noanswer without signing in
    public_services: tuple[str, ...] = ()
    # networks exempt from the per-source call limits (a Kamailio in front, a load test)
    trusted_networks: tuple[str, ...] = ()





def media_terms(s: NegotiatedStream) -> tuple[object, ...]:
    """What a media session is built from: when a re-INVITE changes any of it, the
    session must change over (a direction or an address change alone does not)."""
    return (s.codec.name.lower(), s.codec.clock_rate, s.payload_type, s.dtmf_payload_type,
            s.ptime, s.local_crypto, s.remote_crypto)


class SipApplication:
    """Implements the endpoint's RequestHandler and CallHost for answered calls."""

    def __init__(self, reactor: IReactorTime, endpoint: SipEndpoint, settings: AppSettings,
                 registrar: Registrar, user_exists: Callable[[str], bool],
                 call_settings: CallSettings, ports: RtpPorts,
                 services: dict[str, Callable[[], CallBehaviour]] | None = None,
                 policy: UasPolicy | None = None,
                 resolver: TargetResolver | None = None,
                 media: MediaEngine | None = None,
                 focus: Focus | None = None, secret: bytes | None = None,
                 call_limits: CallLimits | None = None) -> None:
        """``secret``: the server's (confserver/storage/server_secret.py); what this
        process vouches for to another is signed with it."""
        self.reactor = reactor
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.call_limits = call_limits if call_limits is not None else CallLimits()
        self.endpoint = endpoint
        self.settings = settings
        self.registrar = registrar
        self.user_exists = user_exists
        self.call_settings = call_settings
        self.ports = ports
        self.services = dict(BUILTIN_SERVICES if services is None else services)
        self.policy = policy or UasPolicy()
        self.resolver = resolver
        self.media = media
        self.focus = focus
        if focus is not None:
            focus.app = self
        self.routers: list[InviteRouter] = []
        # every call the server places for someone passes here (confserver/gate/)
        self.gate = OutboundGate(
            GateRules(settings.domain, frozenset((h.lower(), p) for h in settings.local_hosts
                                                 for p in settings.local_ports),
                      frozenset(d.lower() for d in settings.federated_domains)),
            registrar.bindings, self.secret, reactor.seconds, self.own_target)
        self.calls: dict[tuple[str, str, str], SipCall] = {}
        self._pending: dict[int, UasCall] = {}  # id(invite tx) -> call, until answered
        self.stats = {"calls_total": 0}

    @property
    def settings(self) -> AppSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: AppSettings) -> None:
        # The networks are parsed once per settings, not once per request.
        self._settings = settings
        self._public = Networks(settings.public_services)
        self._trusted = Networks(settings.trusted_networks)

    # ------------------------------------------------------------ RequestHandler

    def handle_request(self, request: Request, tx: ServerTxHandle) -> None:
        rejection = check_request(request, self.policy)
        if rejection is not None:
            tx.reply(rejection.status, rejection.reason, rejection.headers)
            return
        if request.to_tag:
            self._in_dialog(request, tx)
            return
        method = request.method
        if method == "REGISTER":
            self._register(request, tx)
        elif method == "OPTIONS":
            tx.reply(200, "OK", self._capabilities(), to_tag=f"opt{abs(hash(request.call_id)) % 10**8}")
        elif method == "INVITE":
            self._invite(request, tx)
        elif method == "SUBSCRIBE":
            self._subscribe(request, tx)
        else:
            tx.reply(481, "Call/Transaction Does Not Exist")

    def handle_ack(self, request: Request, source: Target) -> None:
        call = self._find(request)
        if call is not None:
            tx = call.invite_tx
            call.on_ack(request)
            if tx is not None and call.invite_tx is None:
                # the ACK settled an INVITE answered after its handler returned (a
                # mediation call, answered when the gateway did): no CANCEL can reach it
                self._pending.pop(id(tx), None)

    def handle_cancel(self, tx: ServerTxHandle) -> None:
        call = self._pending.pop(id(tx), None)
        if call is not None:
            call.on_cancel()

    def handle_stray_response(self, response: Response) -> None:
        log.debug("stray %d response for %s dropped", response.status, response.call_id)

    def handle_invite_failure(self, request: Request, reason: str) -> None:
        call = self._find(request) if request.to_tag else None
        if call is None:
            for pending in list(self._pending.values()):
                if pending.invite_tx is not None and pending.invite_tx.request is request:
                    call = pending
        if call is None:
            for candidate in self.calls.values():
                if candidate.invite_tx is not None and candidate.invite_tx.request is request:
                    call = candidate
                    break
        if call is not None:
            call.on_invite_failure(reason)

    # ------------------------------------------------------------ routing
    def _find(self, request: Request) -> SipCall | None:
        return self.calls.get((request.call_id, request.to_tag or "", request.from_tag or ""))

    def _in_dialog(self, request: Request, tx: ServerTxHandle) -> None:
        if request.method == "SUBSCRIBE" and self.focus is not None:
            subscription = self.focus.subscriptions.get(
                (request.call_id, request.to_tag or "", request.from_tag or ""))
            if subscription is not None:
                subscription.refresh(request, tx)
                return
        call = self._find(request)
        if call is None:
            tx.reply(481, "Call/Transaction Does Not Exist")
            return
        call.in_dialog(request, tx)

    def _service_caller(self, request: Request, tx: ServerTxHandle) -> tuple[bool, str | None]:
        """Whether a test service may take this call, and who answers for it: anyone
        from ``[services] public`` networks (nobody vouches for them), else a signed-in
        user of ours ("user:..."); not allowed when challenged or refused here."""
        if tx.source.host in self._public:
            return True, None
        claimed = request.from_.uri if request.from_ is not None else None
        if isinstance(claimed, SipUri) and claimed.host.lower() == self.settings.domain.lower():
            username, refusal = self.registrar.authenticate(request, self.reactor.seconds(),
                                                            source=tx.source.host)
            if username is None:
                assert refusal is not None
                tx.reply(refusal.status, refusal.reason, refusal.headers)
                return False, None
            return True, f"user:sip:{username}@{self.settings.domain}"
        tx.reply(403, "Forbidden (the test services are for signed-in users)")
        return False, None

    def _capabilities(self) -> list[tuple[str, str]]:
        return [("Allow", ", ".join(self.policy.methods)),
                ("Accept", ", ".join(self.policy.content_types)),
                ("Accept-Encoding", "identity"), ("Accept-Language", "en"),
                ("Supported", ", ".join(self.policy.extensions)),
                ("Server", self.settings.user_agent)]

    def _is_local(self, uri: SipUri) -> bool:
        host = uri.host.lower()
        return host == self.settings.domain.lower() or host in self.settings.local_hosts

    def _register(self, request: Request, tx: ServerTxHandle) -> None:
        try:
            result = self.registrar.register(request, self.reactor.seconds(),
                                             f"{tx.source.host}:{tx.source.port}",
                                             tx.source.transport)
        except StorageError as exc:
            log.error("registrar storage error: %s", exc)
            tx.reply(500, "Server Internal Error (storage unavailable)", [("Retry-After", "30")])
            return
        tx.reply(result.status, result.reason, result.headers,
                 to_tag=f"reg{abs(hash(request.call_id)) % 10**8}")

    def _subscribe(self, request: Request, tx: ServerTxHandle) -> None:
        uri = request.uri
        conference_id = conference_id_of(uri.user_unescaped or "") \
            if isinstance(uri, SipUri) and self._is_local(uri) else None
        if conference_id is None or self.focus is None:
            tx.reply(404, "Not Found (no event source here)")
            return
        self.focus.subscribe(self, request, tx, conference_id)

    def _invite(self, request: Request, tx: ServerTxHandle) -> None:
        uri = request.uri
        if not isinstance(uri, SipUri) or not self._is_local(uri):
            tx.reply(404, "Not Found (not a domain served here)")
            return
        user = uri.user_unescaped or ""
        conference_id = conference_id_of(user)
        behaviour: CallBehaviour | None = None
        if conference_id is not None and self.focus is not None:
            behaviour = self.focus.join(request, tx, conference_id)
            if behaviour is None:
                return  # refused or challenged: the focus replied
        elif user == ADHOC_FACTORY and self.focus is not None:
            behaviour = self.focus.start_adhoc(request, tx)
            if behaviour is None:
                return
        factory = self.services.get(user)
        if behaviour is None and factory is None:
            for router in self.routers:
                try:
                    routed = router.route(request, tx, uri)
                except StorageError:
                    tx.reply(500, "Server Internal Error (storage unavailable)",
                             [("Retry-After", "30")])
                    return
                if routed is True:
                    return
                if routed is not False:
                    behaviour = routed
                    break
        if behaviour is None and factory is None:
            try:
                exists = self.user_exists(uri.aor())
            except StorageError:
                tx.reply(500, "Server Internal Error (storage unavailable)", [("Retry-After", "30")])
                return
            if exists:
                tx.reply(480, "Temporarily Unavailable")
            else:
                tx.reply(404, "Not Found")
            return
        if behaviour is None:
            assert factory is not None
            allowed, caller = self._service_caller(request, tx)
            if not allowed:
                return  # challenged or refused
            behaviour = factory()
            behaviour.caller = caller
        trusted = tx.source.host in self._trusted
        refusal = None if trusted else self.call_limits.admit(behaviour.caller, tx.source.host)
        if refusal is not None:
            log.warning("call from %s refused: %s", tx.source.host, refusal)
            if behaviour.caller is None:
                tx.reply(503, f"Service Unavailable ({refusal})", [("Retry-After", "10")])
            else:
                tx.reply(403, f"Forbidden ({refusal})")
            return
        call = UasCall(self, tx, behaviour)
        if not trusted:
            call.account = (behaviour.caller, tx.source.host)
        if not call.accept():
            if call.account is not None:
                self.call_limits.release(*call.account)
            for port in (call.rtp_port, call.video_port):
                if port is not None:
                    self.ports.release(port)
            return
        self.calls[call.key] = call
        self._pending[id(tx)] = call
        self.stats["calls_total"] += 1
        try:
            call.behaviour.on_invite(call)
        except Exception:
            log.exception("call %s failed to start", request.call_id)
            call.reject(500, "Server Internal Error")
        if tx.answered:
            self._pending.pop(id(tx), None)

    # ------------------------------------------------------------ CallHost
    def local_contact(self, transport: str) -> str:
        host, port = self.via_address(transport)
        scheme = "sips" if transport == "tls" else "sip"
        suffix = "" if transport in ("udp", "tls") else f";transport={transport}"
        return f"<{scheme}:switchboard@{host}:{port}{suffix}>"

    def via_address(self, transport: str) -> tuple[str, int]:
        return self.endpoint.local_address(transport)

    def own_target(self) -> Target:
        """This server's own SIP address (UDP when it listens there): where a call
        for a role of this process (mediation, the attendant) is sent."""
        transport = "udp" if "udp" in self.endpoint.transports else \
            next(iter(self.endpoint.transports), "udp")
        host, port = self.via_address(transport)
        return Target(transport, host, port)

    def _dialog_target(self, call: DialogPeer) -> Target:
        if call.source.reliable:
            return call.source  # reuse the connection the dialog came in on
        assert call.dialog is not None
        uri = call.dialog.next_hop()
        if isinstance(uri, SipUri):
            return Target(call.source.transport, uri.params.get("maddr") or uri.host,
                          uri.port or 5060)
        return call.source

    def send_in_dialog(self, call: DialogPeer, request: Request,
                       on_response: Callable[[Response], None],
                       on_failure: Callable[[str], None]) -> None:
        self._with_target(call, lambda target: self.endpoint.send_request(
            request, target, on_response, on_failure), on_failure)

    def send_ack(self, call: SipCall, ack: Request) -> None:
        self._with_target(call, lambda target: self.endpoint.send_ack(ack, target),
                          lambda _reason: None)

    def _with_target(self, call: DialogPeer, send: Callable[[Target], object],
                     on_failure: Callable[[str], None]) -> None:
        """Send to the dialog's next hop, resolving a host name with DNS (RFC 3263)."""
        target = self._dialog_target(call)
        if is_ip(target.host) or self.resolver is None or call.dialog is None:
            send(target)
            return
        hop = call.dialog.next_hop()

        def resolved(targets: list[Target]) -> None:
            if targets:
                send(targets[0])
            else:
                on_failure("dns")

        def failed(reason: object) -> None:
            log.info("cannot resolve %s: %s", hop, reason)
            on_failure("dns")

        deferred = self.resolver.resolve(hop, call.source.transport)
        deferred.addCallbacks(resolved, failed)

    def start_media(self, call: SipCall) -> bool:
        """Open the call's RTP session; False when no port can be bound."""
        if self.media is None or not call.streams or call.rtp_port is None:
            return True
        app = call.behaviour.media_app(call)
        if app is None:
            return True
        for _attempt in range(5):
            s = call.streams[0]
            codec, srtp = self._media_parts(s)
            # our frames are the media clock's 20 ms whatever the peer packs in a packet
            stream = AudioStream(codec, s.payload_type, s.dtmf_payload_type, FRAME_MS,
                                 cname=f"switchboard@{self.settings.domain}", srtp=srtp,
                                 remote_ptime_ms=s.ptime)
            stream.audio_level_id = s.audio_level_id
            target = MediaTarget(s.remote_address, s.remote_port, s.remote_rtcp_port, s.rtcp_mux)
            try:
                call.media = self.media.open(call.rtp_port, stream, target, app, s.direction,
                                             lambda: call.hangup("no media"))
            except MediaPortUnavailable:
                if not isinstance(call, UasCall) or call.state != "early":
                    return False  # our SDP already named this port
                # another process holds this port: take the next one and answer again
                log.info("RTP port %d busy; trying another", call.rtp_port)
                self.ports.release(call.rtp_port)
                port = self.ports.allocate()
                if port is None:
                    return False
                call.rtp_port = port
                call.renegotiate_port()
                continue
            call.media.negotiated = media_terms(s)
            call.media_app = app
            self._start_video(call)
            return True
        return False

    def _media_parts(self, s: NegotiatedStream) -> tuple[AudioCodec, SrtpContext | None]:
        assert self.media is not None
        codec = self.media.codecs.create(s.codec.name)
        srtp = None
        if s.local_crypto and s.remote_crypto:
            srtp = SrtpContext(CryptoAttribute.parse(s.local_crypto),
                               CryptoAttribute.parse(s.remote_crypto))
        return codec, srtp

    def _start_video(self, call: SipCall) -> None:
        """Open the call's video session when video was agreed and the service takes it."""
        video = next((s for s in call.streams if s.kind == "video"), None)
        if video is None or call.video_port is None or self.media is None \
                or call.video is not None:
            return
        try:
            call.video = call.behaviour.video_app(call, video, self.media.sockets,
                                                  self.media.address)
        except OSError as exc:  # the video port is taken: the call goes on with audio
            log.info("video port %d unavailable (%s): audio only", call.video_port, exc)

    def update_media(self, call: SipCall) -> None:
        if call.media is not None and call.streams:
            s = call.streams[0]
            call.media.direction = s.direction
            call.media.retarget(s.remote_address, s.remote_port, s.remote_rtcp_port)
            call.media.stream.audio_level_id = s.audio_level_id
            terms = media_terms(s)
            if terms != call.media.negotiated:
                # a re-INVITE settled another codec or new SRTP keys: the session changes
                # over now, as the peer does on our answer
                rekeyed = terms[-2:] != call.media.negotiated[-2:]
                log.info("call %s media renegotiated: %s/%d, payload type %d%s",
                         call.dialog.call_id if call.dialog else "?", s.codec.name,
                         s.codec.clock_rate, s.payload_type, " (SRTP keys changed)" if rekeyed else "")
                codec, srtp = self._media_parts(s)
                call.media.renegotiate(codec, s.payload_type, s.dtmf_payload_type, s.ptime, srtp)
                call.media.negotiated = terms

    def stop_media(self, call: SipCall) -> None:
        if call.media is not None and self.media is not None:
            self.media.close(call.media)
            call.media = None
        if call.video is not None:
            call.video.close()
            call.video = None

    def call_placed(self, call: SipCall) -> None:
        self.calls[call.key] = call

    def call_ended(self, call: SipCall) -> None:
        if call.account is not None:
            self.call_limits.release(*call.account)
            call.account = None
        if call.dialog is not None:
            self.calls.pop(call.key, None)
        if call.invite_tx is not None:
            self._pending.pop(id(call.invite_tx), None)
        log.debug("call %s ended: %s", call.dialog.call_id if call.dialog else "?", call.end_reason)
