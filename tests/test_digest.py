"""Digest (RFC 2617 / RFC 8760) server and client, both algorithms."""

from __future__ import annotations

import pytest

from confserver.sip.digest import DigestClient, DigestServer, compute_ha1, parse_auth_header


def lookup(password: str = "secret"):  # type: ignore[no-untyped-def]
    return lambda user, alg: compute_ha1(alg, user, "example.com", password) if user == "alice" else None


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_round_trip(algorithm: str) -> None:
    server = DigestServer("example.com", b"s" * 32, algorithms=(algorithm,))
    [challenge] = server.challenge(100.0)
    auth = DigestClient.create("alice", "secret").authorization([challenge], "INVITE", "sip:x@y")
    assert f"algorithm={algorithm}" in auth and "qop=auth" in auth
    assert server.verify(auth, "INVITE", 101.0, lookup()).ok
    assert not server.verify(auth, "BYE", 101.0, lookup()).ok  # method is covered


def test_client_prefers_sha256() -> None:
    server = DigestServer("example.com", b"s" * 32, algorithms=("MD5", "SHA-256"))
    auth = DigestClient.create("alice", "secret").authorization(server.challenge(0), "REGISTER", "sip:e")
    assert "algorithm=SHA-256" in auth


def test_nonce_from_another_secret_is_unknown() -> None:
    a = DigestServer("example.com", b"a" * 32)
    b = DigestServer("example.com", b"b" * 32)
    auth = DigestClient.create("alice", "secret").authorization(a.challenge(0), "REGISTER", "sip:e")
    assert b.verify(auth, "REGISTER", 1, lookup()).reason == "unknown nonce"


def test_stale_only_when_password_right() -> None:
    server = DigestServer("example.com", b"s" * 32, nonce_lifetime=60)
    challenge = server.challenge(0)
    good = DigestClient.create("alice", "secret").authorization(challenge, "REGISTER", "sip:e")
    bad = DigestClient.create("alice", "nope").authorization(challenge, "REGISTER", "sip:e")
    assert server.verify(good, "REGISTER", 61, lookup()).stale
    result = server.verify(bad, "REGISTER", 61, lookup())
    assert not result.stale and result.reason == "wrong password"
    assert "stale=true" in server.challenge(61, stale=True)[0]


def test_nonce_count_must_increase() -> None:
    server = DigestServer("example.com", b"s" * 32)
    client = DigestClient.create("alice", "secret")
    challenge = server.challenge(0)
    first = client.authorization(challenge, "REGISTER", "sip:e")
    cnonce = parse_auth_header(first)[1]["cnonce"]
    second = client.authorization(challenge, "REGISTER", "sip:e", cnonce=cnonce)
    assert server.verify(first, "REGISTER", 1, lookup()).ok
    assert server.verify(second, "REGISTER", 1, lookup()).ok
    assert server.verify(first, "REGISTER", 1, lookup()).reason == "replayed nonce-count"


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz", "Digest", 'Digest username="alice"', 'Digest realm="other"',
    'Digest username="alice", realm="example.com", nonce="x", uri="sip:e", response="0"',
    'Digest username="alice, realm="example.com"',
])
def test_malformed_credentials_refused_cleanly(header: str) -> None:
    server = DigestServer("example.com", b"s" * 32)
    assert not server.verify(header, "REGISTER", 0, lookup()).ok


def test_rfc2617_no_qop_challenge_answered() -> None:
    client = DigestClient.create("alice", "secret")
    auth = client.authorization(['Digest realm="trunk", nonce="abc"'], "INVITE", "sip:1@t")
    params = parse_auth_header(auth)[1]
    assert "qop" not in params and params["algorithm"] == "MD5"
