"""RFC 3263 target selection: SIP URI -> transport, host, port (SRV, then A).

Literal IP addresses and explicit ports skip DNS. The resolver is injected
(``twisted.names`` client in production, an in-memory one in tests).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from twisted.internet import defer
from twisted.names import dns, error

from confserver.adapters.sip.endpoint import Target
from confserver.sip.uri import SipUri, TelUri, Uri

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}


def is_ip(host: str) -> bool:
    """An IPv4 or IPv6 literal (brackets allowed). Asked for every request sent, so
    the C parser goes first; ``ipaddress`` only for what it alone reads (zone IDs)."""
    literal = host.strip("[]")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, literal)
            return True
        except OSError:
            continue
    if "%" not in literal:
        return False
    try:
        ipaddress.ip_address(literal)
        return True
    except ValueError:
        return False


def uri_transport(uri: SipUri, default: str = "udp") -> str:
    if uri.scheme == "sips":
        return "tls"
    return uri.transport or default


class TargetResolver:
    def __init__(self, resolver: Any) -> None:
        self._resolver = resolver

    @defer.inlineCallbacks
    def resolve(self, uri: Uri, default_transport: str = "udp"):  # type: ignore[no-untyped-def]
        """Deferred list of Targets in the order to try them."""
        if isinstance(uri, TelUri) or not isinstance(uri, SipUri):
            raise ValueError(f"cannot route to {uri}")
        host = uri.params.get("maddr") or uri.host
        transport = uri_transport(uri, default_transport)
        if is_ip(host):
            return [Target(transport, host.strip("[]"), uri.port or DEFAULT_PORTS[transport])]
        if uri.port is not None:
            addresses = yield self._addresses(host)
            return [Target(transport, a, uri.port) for a in addresses]
        targets: list[Target] = []
        try:
            answers, _auth, _add = yield self._resolver.lookupService(SRV_PREFIX[transport] + host)
        except (error.DNSNameError, error.DNSQueryRefusedError, error.DNSServerError,
                error.DomainError, defer.TimeoutError):
            answers = []
        records = sorted((a.payload for a in answers if a.type == dns.SRV),
                         key=lambda r: (r.priority, -r.weight))
        for record in records:
            addresses = yield self._addresses(record.target.name.decode())
            targets += [Target(transport, a, record.port) for a in addresses]
        if not targets:
            addresses = yield self._addresses(host)
            targets = [Target(transport, a, DEFAULT_PORTS[transport]) for a in addresses]
        return targets

    @defer.inlineCallbacks
    def _addresses(self, host: str):  # type: ignore[no-untyped-def]
        if is_ip(host):
            return [host]
        try:
            answers, _auth, _add = yield self._resolver.lookupAddress(host)
        except (error.DNSNameError, error.DomainError, defer.TimeoutError):
            return []
        return [a.payload.dottedQuad() for a in answers if a.type == dns.A]
