"""Digest (RFC 2617 / RFC 8760) server and client, both algorithms."""

from __future__ import annotations

import pytest

from confserver.sip.digest import (
    DigestClient,
    DigestServer,
    _response_digest,
    compute_ha1,
    parse_auth_header,
)
from confserver.sip.uri import parse_uri


def lookup(password: str = "secret"):  # type: ignore[no-untyped-def]
    return lambda user, alg: compute_ha1(alg, user, "example.com", password) if user == "alice" else None


def check(server: DigestServer, header: str, method: str, now: float, uri: str = "sip:e",
          password: str = "secret"):  # type: ignore[no-untyped-def]
    """``header`` on a ``method`` request to ``uri``."""
    return server.verify(header, method, parse_uri(uri), uri, now, lookup(password))


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_round_trip(algorithm: str) -> None:
    server = DigestServer("example.com", b"s" * 32, algorithms=(algorithm,))
    [challenge] = server.challenge(100.0)
    auth = DigestClient.create("alice", "secret").authorization([challenge], "INVITE", "sip:x@y")
    assert f"algorithm={algorithm}" in auth and "qop=auth" in auth
    assert check(server, auth, "INVITE", 101.0, "sip:x@y").ok
    assert not check(server, auth, "BYE", 101.0, "sip:x@y").ok  # method is covered


def test_client_prefers_sha256() -> None:
    server = DigestServer("example.com", b"s" * 32, algorithms=("MD5", "SHA-256"))
    auth = DigestClient.create("alice", "secret").authorization(server.challenge(0), "REGISTER", "sip:e")
    assert "algorithm=SHA-256" in auth


def test_nonce_from_another_secret_is_unknown() -> None:
    a = DigestServer("example.com", b"a" * 32)
    b = DigestServer("example.com", b"b" * 32)
    auth = DigestClient.create("alice", "secret").authorization(a.challenge(0), "REGISTER", "sip:e")
    assert check(b, auth, "REGISTER", 1).reason == "unknown nonce"


def test_stale_only_when_password_right() -> None:
    server = DigestServer("example.com", b"s" * 32, nonce_lifetime=60)
    challenge = server.challenge(0)
    good = DigestClient.create("alice", "secret").authorization(challenge, "REGISTER", "sip:e")
    bad = DigestClient.create("alice", "nope").authorization(challenge, "REGISTER", "sip:e")
    assert check(server, good, "REGISTER", 61).stale
    result = check(server, bad, "REGISTER", 61)
    assert not result.stale and result.reason == "wrong password"
    assert "stale=true" in server.challenge(61, stale=True)[0]


def test_nonce_count_must_increase() -> None:
    server = DigestServer("example.com", b"s" * 32)
    client = DigestClient.create("alice", "secret")
    challenge = server.challenge(0)
    first = client.authorization(challenge, "REGISTER", "sip:e")
    cnonce = parse_auth_header(first)[1]["cnonce"]
    second = client.authorization(challenge, "REGISTER", "sip:e", cnonce=cnonce)
    assert check(server, first, "REGISTER", 1).ok
    assert check(server, second, "REGISTER", 1).ok
    assert check(server, first, "REGISTER", 1).reason == "replayed nonce-count"


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz", "Digest", 'Digest username="alice"', 'Digest realm="other"',
    'Digest username="alice", realm="example.com", nonce="x", uri="sip:e", response="0"',
    'Digest username="alice, realm="example.com"',
])
def test_malformed_credentials_refused_cleanly(header: str) -> None:
    server = DigestServer("example.com", b"s" * 32)
    assert not check(server, header, "REGISTER", 0).ok


def test_rfc2617_no_qop_challenge_answered() -> None:
    client = DigestClient.create("alice", "secret")
    auth = client.authorization(['Digest realm="trunk", nonce="abc"'], "INVITE", "sip:1@t")
    params = parse_auth_header(auth)[1]
    assert "qop" not in params and params["algorithm"] == "MD5"


def test_credentials_name_the_request_uri_they_came_with() -> None:
    """A response computed for one Request-URI is refused on a request to another
    (someone who saw alice's INVITE to echo cannot reuse it to dial a number)."""
    server = DigestServer("example.com", b"s" * 32)
    auth = DigestClient.create("alice", "secret").authorization(
        server.challenge(0), "INVITE", "sip:echo@example.com")
    assert check(server, auth, "INVITE", 1, "sip:+442071234567@example.com").reason == \
        "credentials for another Request-URI"
    # the same URI written with another case of host or an explicit port of its own
    again = DigestClient.create("alice", "secret").authorization(
        server.challenge(0), "INVITE", "sip:echo@EXAMPLE.com")
    assert check(server, again, "INVITE", 1, "sip:echo@example.com").ok


def test_credentials_without_qop_are_refused() -> None:
    """Without qop there is no nonce-count, so nothing stops a replay."""
    server = DigestServer("example.com", b"s" * 32)
    params = parse_auth_header(server.challenge(0)[0])[1]
    ha1 = compute_ha1("MD5", "alice", "example.com", "secret")
    response = _response_digest("MD5", ha1, params["nonce"], "REGISTER", "sip:e", None, None,
                                None)
    header = (f'Digest username="alice", realm="example.com", nonce="{params["nonce"]}", '
              f'uri="sip:e", algorithm=MD5, response="{response}"')
    assert check(server, header, "REGISTER", 1).reason == "qop=auth with nc and cnonce required"


def test_a_replay_is_caught_by_another_server_sharing_the_table() -> None:
    """Two processes of a pool: a response one accepted is a replay to the other."""
    from confserver.sip.digest import MemoryNonceUses

    shared = MemoryNonceUses()
    one = DigestServer("example.com", b"s" * 32, nonce_uses=shared)
    two = DigestServer("example.com", b"s" * 32, nonce_uses=shared)
    auth = DigestClient.create("alice", "secret").authorization(one.challenge(0), "REGISTER",
                                                                "sip:e")
    assert check(one, auth, "REGISTER", 1).ok
    assert check(two, auth, "REGISTER", 1).reason == "replayed nonce-count"
