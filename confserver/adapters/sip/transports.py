"""UDP, TCP and TLS transports: thin Twisted protocols around the endpoint."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from twisted.internet import protocol, ssl
from twisted.internet.interfaces import IAddress, IDelayedCall, IListeningPort
from twisted.python.failure import Failure

from confserver.adapters.sip.endpoint import SipEndpoint, Target
from confserver.sip.message import MAX_MESSAGE_SIZE, FramingError, StreamFramer

log = logging.getLogger("switchboard.transport")

# Linux gives a UDP socket about 200 KB to queue datagrams in: under a hundred SIP
# messages, a few tens of milliseconds at a few hundred calls a second. A pause
# longer than that (a collection, a slow database write) dropped requests and ACKs,
# and the retransmissions that followed failed calls. (The kernel caps the size at
# net.core.rmem_max; below that, what it grants is what it grants.)
SIP_RECEIVE_BUFFER = 4 * 1024 * 1024


class UdpTransport(protocol.DatagramProtocol):
    name = "udp"

    def __init__(self, endpoint: SipEndpoint, host: str, port: int,
                 advertised_host: str | None = None) -> None:
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.advertised_host = advertised_host or host

    def startProtocol(self) -> None:
        sock = getattr(self.transport, "socket", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SIP_RECEIVE_BUFFER)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not datagram.strip(b"\r\n"):
            return  # keep-alive
        self.endpoint.receive(datagram, Target("udp", addr[0], addr[1]))

    def send(self, data: bytes, target: Target) -> bool:
        if self.transport is None:
            return False
        try:
            self.transport.write(data, (target.host, target.port))
        except OSError as exc:
            log.info("udp send to %s failed: %s", target, exc)
            return False
        return True

    def local_address(self) -> tuple[str, int]:
        return self.advertised_host, self.port


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one TCP or TLS connection (and one source's, and all of them) may hold.

    A connection must carry a complete message within ``message_timeout`` of its
    opening, and each later one within that of its first byte (a peer trickling a
    message byte by byte holds nothing for long); one quiet for ``idle_timeout``
    (keep-alives count) is closed."""

    per_source: int = 32
    total: int = 4096
    message_timeout: float = 10.0
    idle_timeout: float = 3900.0  # beyond a registration's hour: a phone re-registers
    max_message: int = MAX_MESSAGE_SIZE


class SipStreamProtocol(protocol.Protocol):
    def __init__(self, owner: StreamTransport, inbound: bool = False) -> None:
        self.owner = owner
        self.framer = StreamFramer(owner.limits.max_message)
        self.peer: tuple[str, int] = ("", 0)
        self.pending: list[bytes] = []
        self.inbound = inbound  # accepted from a peer (counted against its source)
        self._deadline: IDelayedCall | None = None  # for the message under way
        self._idle: IDelayedCall | None = None
        self._heard = False  # a complete message has come

    def connectionMade(self) -> None:
        peer: IAddress = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = (getattr(peer, "host", ""), getattr(peer, "port", 0))
        self.owner.connections[self.peer] = self
        if self.inbound:
            self.owner.opened(self.peer[0])
            self._expect_message()  # a connection that says nothing is not kept
        self._touch()
        for data in self.pending:
            self.transport.write(data)  # type: ignore[union-attr]
        self.pending.clear()

    def dataReceived(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            log.info("closing %s connection from %s:%d: %s", self.owner.name,
                     self.peer[0], self.peer[1], exc)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if messages:
            self._heard = True
        if self.framer.pending:
            if self._deadline is None or messages:
                self._expect_message()  # a new message has begun: it has its own time
        elif self._deadline is not None and self._heard:
            # (keep-alives alone do not excuse a new connection from its first message)
            self._stop(self._deadline)
            self._deadline = None
        for message in messages:
            self.owner.endpoint.receive(message, Target(self.owner.name, *self.peer))

    def _expect_message(self) -> None:
        self._stop(self._deadline)
        self._deadline = self.owner.reactor.callLater(self.owner.limits.message_timeout,
                                                      self._give_up, "no complete message")

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.owner.limits.idle_timeout)
        else:
            self._idle = self.owner.reactor.callLater(self.owner.limits.idle_timeout,
                                                      self._give_up, "idle")

    def _give_up(self, why: str) -> None:
        log.info("closing %s connection with %s:%d: %s in time", self.owner.name,
                 self.peer[0], self.peer[1], why)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    @staticmethod
    def _stop(timer: IDelayedCall | None) -> None:
        if timer is not None and timer.active():
            timer.cancel()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        check: Any = reason.check  # untyped in Twisted
        if self.owner.name == "tls" and check(SSL.Error) is not None:
            # a certificate that does not check out, most often: say which and why
            log.warning("tls connection with %s:%d failed: %s", self.peer[0], self.peer[1],
                        reason.getErrorMessage())
        for timer in (self._deadline, self._idle):
            self._stop(timer)
        self._deadline = self._idle = None
        if self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]
        if self.inbound:
            self.owner.closed(self.peer[0])


class _ServerFactory(protocol.ServerFactory):
    def __init__(self, owner: StreamTransport) -> None:
        self.owner = owner

    def buildProtocol(self, addr: IAddress | None) -> SipStreamProtocol | None:
        host = getattr(addr, "host", "")
        refusal = self.owner.refusal(host)
        if refusal is not None:  # None closes the connection at once
            self.owner.refused += 1
            if self.owner.refused & (self.owner.refused - 1) == 0:
                log.warning("%s connection from %s refused: %s (%d so far)", self.owner.name,
                            host, refusal, self.owner.refused)
            return None
        return SipStreamProtocol(self.owner, inbound=True)


class _ClientFactory(protocol.ClientFactory):
    def __init__(self, owner: StreamTransport, proto: SipStreamProtocol) -> None:
        self.owner = owner
        self.proto = proto

    def buildProtocol(self, addr: IAddress | None) -> SipStreamProtocol:
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        log.info("%s connection to %s failed: %s", self.owner.name,
                 connector.getDestination(), reason.getErrorMessage())


class StreamTransport:
    """TCP or TLS: listens, and reuses one connection per peer address."""

    def __init__(self, endpoint: SipEndpoint, name: str, reactor: Any, host: str, port: int,
                 tls_server: Any = None,
                 tls_trust: Any = None, advertised_host: str | None = None,
                 limits: StreamLimits | None = None) -> None:
        self.endpoint = endpoint
        self.limits = limits if limits is not None else StreamLimits()
        self._inbound: Counter[str] = Counter()  # accepted connections per source host
        self.refused = 0
        self.name = name
        self.reactor = reactor
        self.host = host
        self.port = port
        self.advertised_host = advertised_host or host
        self.tls_server = tls_server
        # outgoing TLS: the peer's certificate chain and name are checked against
        # ``tls_trust`` (a trust root: [tls] ca_file, else the system's), except for the
        # hosts an admin set not to (a gateway's tls_verify = false, warned about)
        platform: Any = ssl.platformTrust  # untyped in Twisted
        self.tls_trust = tls_trust if tls_trust is not None else platform()
        self.unverified_hosts: set[str] = set()
        self.connections: dict[tuple[str, int], SipStreamProtocol] = {}
        self.listening: IListeningPort | None = None

    def listen(self) -> IListeningPort:
        factory = _ServerFactory(self)
        if self.name == "tls":
            assert self.tls_server is not None
            self.listening = self.reactor.listenSSL(self.port, factory, self.tls_server,
                                                    interface=self.host)
        else:
            self.listening = self.reactor.listenTCP(self.port, factory, interface=self.host)
        assert self.listening is not None
        return self.listening

    def send(self, data: bytes, target: Target) -> bool:
        conn = self.connections.get((target.host, target.port))
        if conn is not None and conn.transport is not None:
            conn.transport.write(data)
            return True
        # open a new connection and send once it is up
        proto = SipStreamProtocol(self)
        proto.pending.append(data)
        factory = _ClientFactory(self, proto)
        if self.name == "tls":
            self.reactor.connectSSL(target.host, target.port, factory,
                                    self.client_options(target.host), timeout=10)
        else:
            self.reactor.connectTCP(target.host, target.port, factory, timeout=10)
        return True

    def local_address(self) -> tuple[str, int]:
        return self.advertised_host, self.port

    def client_options(self, host: str) -> Any:
        """How a TLS connection to ``host`` checks the certificate it is shown."""
        if host in self.unverified_hosts:
            return ssl.CertificateOptions()
        return ssl.optionsForClientTLS(host, trustRoot=self.tls_trust)

    def peer_fingerprint(self, host: str, port: int) -> str | None:
        """SHA-256 fingerprint (``AB:CD:...``) of the client certificate the TLS peer
        at ``host:port`` presented, if it did."""
        conn = self.connections.get((host, port))
        transport = conn.transport if conn is not None else None
        get = getattr(transport, "getPeerCertificate", None)
        if get is None:
            return None
        try:
            certificate = get()
        except Exception:  # not TLS after all, or the handshake is not done
            return None
        if certificate is None:
            return None
        return str(certificate.digest("sha256").decode("ascii"))

    def refusal(self, host: str) -> str | None:
        """Why a new connection from ``host`` is refused, or None."""
        if sum(self._inbound.values()) >= self.limits.total:
            return f"{self.limits.total} connections already"
        if self._inbound[host] >= self.limits.per_source:
            return f"{self.limits.per_source} connections from {host} already"
        return None

    def opened(self, host: str) -> None:
        self._inbound[host] += 1

    def closed(self, host: str) -> None:
        self._inbound[host] -= 1
        if self._inbound[host] <= 0:
            del self._inbound[host]

    def close_all(self) -> None:
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.loseConnection()
