"""RFC 3263 target selection with an in-memory DNS (no network)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.names import dns, error

from confserver.adapters.sip.endpoint import Target
from confserver.adapters.sip.resolver import TargetResolver
from confserver.sip.uri import SipUri


class MemoryDns:
    def __init__(self, srv: dict[str, list[tuple[int, int, int, str]]],
                 a: dict[str, list[str]]) -> None:
        self.srv = srv
        self.a = a
        self.queries: list[str] = []

    def lookupService(self, name: str) -> defer.Deferred[Any]:
        self.queries.append(f"SRV {name}")
        if name not in self.srv:
            return defer.fail(error.DNSNameError(name))
        answers = [dns.RRHeader(name=name, type=dns.SRV,
                                payload=dns.Record_SRV(p, w, port, target))
                   for p, w, port, target in self.srv[name]]
        return defer.succeed((answers, [], []))

    def lookupAddress(self, name: str) -> defer.Deferred[Any]:
        self.queries.append(f"A {name}")
        if name not in self.a:
            return defer.fail(error.DNSNameError(name))
        answers = [dns.RRHeader(name=name, type=dns.A, payload=dns.Record_A(addr))
                   for addr in self.a[name]]
        return defer.succeed((answers, [], []))


def resolve(resolver: TargetResolver, uri: str, transport: str = "udp") -> list[Target]:
    result: list[list[Target]] = []
    resolver.resolve(SipUri.parse(uri), transport).addCallback(result.append)
    return result[0]


DNS = MemoryDns(
    srv={"_sip._udp.trunk.example": [(20, 0, 5070, "b.trunk.example"), (10, 0, 5060, "a.trunk.example")],
         "_sips._tcp.trunk.example": [(10, 0, 5061, "a.trunk.example")]},
    a={"a.trunk.example": ["127.0.0.10"], "b.trunk.example": ["127.0.0.11"],
       "plain.example": ["127.0.0.12"]})


def test_ip_literal_needs_no_dns() -> None:
    dns_ = MemoryDns({}, {})
    assert resolve(TargetResolver(dns_), "sip:gw@127.0.0.5:5080;transport=tcp") == \
        [Target("tcp", "127.0.0.5", 5080)]
    assert dns_.queries == []


def test_srv_in_priority_order() -> None:
    assert resolve(TargetResolver(DNS), "sip:trunk.example") == \
        [Target("udp", "127.0.0.10", 5060), Target("udp", "127.0.0.11", 5070)]


def test_sips_uses_sips_tcp_srv() -> None:
    assert resolve(TargetResolver(DNS), "sips:trunk.example") == [Target("tls", "127.0.0.10", 5061)]


def test_explicit_port_skips_srv() -> None:
    dns_ = MemoryDns(DNS.srv, DNS.a)
    assert resolve(TargetResolver(dns_), "sip:a.trunk.example:5099") == \
        [Target("udp", "127.0.0.10", 5099)]
    assert not any(q.startswith("SRV") for q in dns_.queries)


def test_no_srv_falls_back_to_a_with_default_port() -> None:
    assert resolve(TargetResolver(DNS), "sip:plain.example;transport=tcp") == \
        [Target("tcp", "127.0.0.12", 5060)]


def test_unknown_name_gives_no_targets() -> None:
    assert resolve(TargetResolver(DNS), "sip:nowhere.example") == []


def test_ip_literals_are_told_from_host_names() -> None:
    from confserver.adapters.sip.resolver import is_ip

    for literal in ("127.0.0.1", "[::1]", "::1", "[2001:db8::1]", "fe80::1%eth0"):
        assert is_ip(literal), literal
    for name in ("example.com", "1.2.3", "256.1.1.1", "", "[example.com]", "fe80::1%"):
        assert not is_ip(name), name
