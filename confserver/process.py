"""Assembles the server from a Config and runs it on a reactor."""

from __future__ import annotations

import gc
import logging
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from twisted.internet import error as net_error
from twisted.internet import ssl, task
from twisted.internet.interfaces import IListeningPort, IOpenSSLContextFactory
from twisted.names import client as dns_client
from zope.interface import implementer

from confserver import native
from confserver.adapters.calls.application import AppSettings, SipApplication
from confserver.adapters.calls.call import CallSettings
from confserver.adapters.focus.focus import Focus
from confserver.adapters.media.ports import PortPool, SharedPortPool
from confserver.adapters.media.session import MediaEngine, MediaPortUnavailable
from confserver.adapters.media.udp import port_pair_free
from confserver.adapters.sip.endpoint import SipEndpoint
from confserver.adapters.sip.registrar import Registrar, RegistrarSettings
from confserver.adapters.sip.resolver import TargetResolver
from confserver.adapters.sip.transports import StreamLimits, StreamTransport, UdpTransport
from confserver.config import Config, ListenAddress
from confserver.limits.buckets import RateLimiter
from confserver.limits.calls import CallLimits
from confserver.limits.requests import RequestLimits
from confserver.media.codecs import default_registry
from confserver.roles import installed_roles
from confserver.sip.digest import DigestServer
from confserver.sip.sdp import codecs_in_order
from confserver.sip.transaction import TimerSettings
from confserver.storage.bindings import BindingStore
from confserver.storage.database import Database, open_database
from confserver.storage.meetings import MeetingDirectory
from confserver.storage.nonces import DatabaseNonceUses
from confserver.storage.server_secret import server_secret
from confserver.storage.users import UserDirectory
from confserver.text import for_log

log = logging.getLogger("switchboard")


class StartupError(RuntimeError):
    """The server cannot start; the message says why in one line."""


@dataclass
class Server:
    config: Config
    reactor: Any
    db: Database
    endpoint: SipEndpoint
    app: SipApplication
    ports: list[IListeningPort]
    streams: list[StreamTransport]
    # what roles ask to run when the server stops (timers, registrations)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # each installed role's runtime object, by role name (for tests and tooling)
    roles: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        for hook in self.on_stop:
            try:
                hook()
            except Exception:
                log.exception("a role's stop hook failed")
        if self.app.media is not None:
            self.app.media.close_all()
        for stream in self.streams:
            stream.close_all()
        for port in self.ports:
            port.stopListening()
        self.db.close()


@implementer(IOpenSSLContextFactory)
class _AskForClientCertificates:
    """Our TLS server's context: it asks every peer for a certificate, requires none and
    trusts none by itself (a gateway's is pinned by fingerprint and checked by
    mediation; a phone without one is welcome)."""

    def __init__(self, options: Any) -> None:
        self._context = options.getContext()
        # set once: a context that has made a connection can no longer be changed
        self._context.set_verify(SSL.VERIFY_PEER,
                                 lambda _conn, _cert, _errno, _depth, _ok: True)
        self._context.set_session_id(b"switchboard")

    def getContext(self) -> Any:
        return self._context


def _tls_options(config: Config) -> Any:
    assert config.tls_certificate and config.tls_private_key
    load: Any = ssl.PrivateCertificate.loadPEM  # untyped in Twisted
    try:
        cert = load(
            Path(config.tls_certificate).read_text() + Path(config.tls_private_key).read_text())
    except OSError as exc:
        raise StartupError(f"cannot read TLS certificate or key: {exc}") from exc
    except Exception as exc:
        raise StartupError(f"bad TLS certificate or key: {exc}") from exc
    return _AskForClientCertificates(cert.options())


def _tls_trust(config: Config) -> Any:
    """Whom outgoing TLS trusts: the certificates in ``[tls] ca_file``, else the
    system's trust store."""
    platform: Any = ssl.platformTrust  # untyped in Twisted
    roots: Any = ssl.trustRootFromCertificates
    if not config.tls_ca_file:
        return platform()
    try:
        text = Path(config.tls_ca_file).read_text()
        load: Any = ssl.Certificate.loadPEM
        certificates = [load(f"-----BEGIN CERTIFICATE-----{part}") for part in
                        text.split("-----BEGIN CERTIFICATE-----")[1:]]
    except OSError as exc:
        raise StartupError(f"[tls] ca_file {config.tls_ca_file}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise StartupError(f"[tls] ca_file {config.tls_ca_file}: not PEM certificates: "
                           f"{exc}") from exc
    if not certificates:
        raise StartupError(f"[tls] ca_file {config.tls_ca_file}: no certificate in it")
    return roots(certificates)


def _dns_resolver() -> Any:
    # /etc/hosts first, then the resolv.conf servers (untyped in Twisted)
    create: Any = dns_client.createResolver
    return create()


def build_server(config: Config, reactor: Any) -> Server:
    try:
        db = open_database(config.database_url)
    except Exception as exc:
        raise StartupError(f"database {config.database_url}: {exc}") from exc
    users = UserDirectory(db)
    endpoint = SipEndpoint(reactor, timers=TimerSettings(t1=config.t1))
    try:
        secret = server_secret(db, config.auth_secret)
    except Exception as exc:
        db.close()
        raise StartupError(f"database {config.database_url}: cannot read or store the "
                           f"server secret: {exc}") from exc
    registrar = Registrar(
        RegistrarSettings(config.domain, config.min_expires, config.max_expires,
                          config.default_expires),
        users, BindingStore(db),
        DigestServer(config.domain, secret, config.nonce_lifetime, config.auth_algorithms,
                     nonce_uses=DatabaseNonceUses(db)))
    throttle = registrar.throttle
    endpoint.limits = RequestLimits(
        RateLimiter(config.messages_per_second, config.message_burst),
        RateLimiter(config.invites_per_second, config.invite_burst), config.trusted_networks,
        strangers=RateLimiter(config.strangers_per_second, config.strangers_burst),
        known=lambda host: throttle.source_known(host, reactor.seconds()))
    call_settings = CallSettings(media_address=config.media_advertised_address or config.media_address,
                                 session_expires=config.session_expires,
                                 min_se=config.min_se, ring_timeout=config.ring_timeout,
                                 user_agent=config.user_agent, srtp=config.srtp,
                                 codecs=codecs_in_order(config.codecs))
    local_hosts = tuple({a.host for a in config.listen} |
                        ({config.advertised_address} if config.advertised_address else set()))
    media = MediaEngine(reactor, config.media_address, default_registry(), config.media_timeout,
                        shared_port=config.shared_rtp_port,
                        relay_offload=config.relay_offload, relearn_after=config.relearn_after)
    ports = SharedPortPool(config.shared_rtp_port) if config.shared_rtp_port \
        else PortPool(*config.rtp_ports, probe=port_pair_free(config.media_address),
                      reserve=config.rtp_port_reserve)
    focus = Focus(config.domain, MeetingDirectory(db), registrar, media, default_registry(),
                  reactor.seconds, config.recording_directory)
    app = SipApplication(reactor, endpoint,
                         AppSettings(config.domain, config.user_agent, local_hosts,
                                     config.federated_domains,
                                     tuple(sorted({a.port for a in config.listen})),
                                     config.public_services, config.trusted_networks),
                         registrar, lambda aor: users.get(aor) is not None,
                         call_settings, ports,
                         resolver=TargetResolver(_dns_resolver()), media=media, focus=focus,
                         secret=secret,
                         call_limits=CallLimits(config.unknown_calls_per_source,
                                                config.unknown_calls, config.user_calls))
    endpoint.handler = app
    listening: list[IListeningPort] = []
    streams: list[StreamTransport] = []
    tls_trust = None
    if any(a.transport == "tls" for a in config.listen):
        try:
            tls_trust = _tls_trust(config)
        except StartupError:
            db.close()
            raise
    stream_limits = StreamLimits(config.connections_per_source, config.connections,
                                 config.message_timeout, config.idle_timeout,
                                 config.max_message_size)
    tls_options = None
    try:
        for address in config.listen:
            advertised = config.advertised_address or address.host
            if address.transport == "udp":
                udp = UdpTransport(endpoint, address.host, address.port, advertised)
                listening.append(reactor.listenUDP(address.port, udp, interface=address.host))
                endpoint.add_transport(udp)
            else:
                if address.transport == "tls" and tls_options is None:
                    tls_options = _tls_options(config)
                stream = StreamTransport(endpoint, address.transport, reactor, address.host,
                                         address.port, tls_server=tls_options,
                                         tls_trust=tls_trust, advertised_host=advertised,
                                         limits=stream_limits)
                listening.append(stream.listen())
                endpoint.add_transport(stream)
                streams.append(stream)
        if config.shared_rtp_port:
            address = ListenAddress("udp", config.media_address, config.shared_rtp_port)
            media.bind_shared_port()
    except net_error.CannotListenError as exc:
        for port in listening:
            port.stopListening()
        db.close()
        reason = exc.socketError.strerror if getattr(exc.socketError, "strerror", None) \
            else str(exc.socketError)
        raise StartupError(f"cannot listen on {address}: {reason}") from exc
    except MediaPortUnavailable as exc:
        for port in listening:
            port.stopListening()
        db.close()
        raise StartupError(f"cannot listen on {address} (shared RTP port): "
                           f"{exc.error.strerror or exc.error}") from exc
    except StartupError:
        for port in listening:
            port.stopListening()
        db.close()
        raise
    server = Server(config, reactor, db, endpoint, app, listening, streams)
    for role in installed_roles():
        if config.roles is None or role.name in config.roles:
            try:
                role.install(server)
            except Exception as exc:
                server.stop()
                raise StartupError(f"role {role.name} cannot start: {exc}") from exc
            log.info("role %s installed", role.name)
    return server


def _purge_bindings(server: Server) -> None:
    """Drop expired registrations (a REGISTER only tidies its own address-of-record)
    and the nonce-counts of expired digest nonces."""
    now = server.reactor.seconds()
    try:
        removed = BindingStore(server.db).purge_expired(now)
        DatabaseNonceUses(server.db).purge(now)
    except Exception as exc:  # the database may be briefly unavailable: try next time
        log.warning("could not purge expired registrations: %s", exc)
        return
    if removed:
        log.info("purged %d expired registrations", removed)


GC_YOUNG = 10_000  # net allocations between passes over the youngest generation
GC_MIDDLE_EVERY = 250  # youngest passes between passes over the middle one


class _GcPauseLog:
    """Logs collections long enough to make the media clock late (over 20 ms)."""

    def __init__(self) -> None:
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        import time

        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        if pause > 0.02:
            log.info("garbage collection of generation %d paused %.0f ms (%d collected)",
                     info.get("generation", -1), pause * 1000, info.get("collected", 0))


class OneLineFormatter(logging.Formatter):
    """Every message stays on its line: control characters that came from the network
    (a user part with %0A, a display name with a CR) are written as escapes, so no
    value can forge a log line of its own. Tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = for_log(record.message)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


def serve(config: Config) -> int:
    from twisted.internet import reactor as default_reactor

    reactor: Any = default_reactor
    configure_logging(config.log_level)
    # every call holds two RTP sockets: allow as many descriptors as the system lets us
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        server = build_server(config, reactor)
    except StartupError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1
    addresses = ", ".join(str(a) for a in config.listen)
    log.info("Switchboard serving %s on %s (database %s)", config.domain, addresses,
             server.db.backend)
    log.info("media cores: %s", native.loaded_state())
    outdated = native.stale()
    if outdated:
        log.warning("compiled media modules are older than their sources and run old "
                    "code: %s (`make native` rebuilds them)", ", ".join(outdated))

    def shutdown(signum: int, _frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        reactor.callFromThread(reactor.stop)

    # The media clock must not stall for the cyclic collector. Start-up objects are
    # kept out of it; an ended call is freed by reference counting (no cycles:
    # tests/mediation/test_call_lifetime.py), so what the collector walks is what is
    # still alive, and a pass over the youngest generation costs about 0.5 µs per
    # object that survived since the last one: at most GC_YOUNG objects, a few ms.
    # The middle generation is walked as rarely as before (every 2.5M allocations).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, GC_MIDDLE_EVERY, 100)
    gc.callbacks.append(_GcPauseLog())
    purge = task.LoopingCall(_purge_bindings, server)
    purge.clock = reactor
    purge.start(60.0, now=False)
    reactor.addSystemEventTrigger("before", "shutdown", server.stop)
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    reactor.run(installSignalHandlers=False)
    log.info("stopped")
    return 0
