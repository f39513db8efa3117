"""Each security control of docs/security.md, proved against ``switchboard serve`` by an
attacker on a loopback address of its own (127.0.0.x), over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .attacker import RawSip
from .server import RunningServer

pytestmark = pytest.mark.integration

ALICE_PW = "alice-secret-pw"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = RunningServer(tmp_path_factory.mktemp("security"))
    srv.write_config()
    srv.add_user("alice", ALICE_PW, "+14255550101")
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log()[-3000:]


def client(server: RunningServer, host: str) -> RawSip:
    return RawSip(host, ("127.0.0.1", server.port))


# ------------------------------------------------------------------ digest
def test_credentials_for_one_uri_are_refused_on_another(server: RunningServer) -> None:
    """alice's credentials for her call to sip:echo, seen on the wire, do not place a
    call to a number: the digest names the Request-URI it was computed for."""
    alice, thief = client(server, "127.0.0.30"), client(server, "127.0.0.31")
    try:
        register = alice.request("REGISTER", "sip:example.com", from_user="alice",
                                 from_host="example.com", to="sip:alice@example.com")
        challenge = alice.final(register)
        assert challenge is not None and challenge.status == 401
        seen = alice.authorized(register, challenge, "alice", ALICE_PW,
                                uri="sip:echo@example.com")
        stolen = seen.headers.get("Authorization")
        assert stolen is not None
        call = thief.request("INVITE", "sip:+442071234567@example.com", from_user="alice",
                             from_host="example.com", headers=[("Authorization", stolen)])
        refused = thief.final(call)
        assert refused is not None and refused.status in (401, 403), refused
    finally:
        alice.close()
        thief.close()
    assert 'reason="credentials for another Request-URI"' in server.log()


def test_a_replayed_digest_response_is_challenged_again(server: RunningServer) -> None:
    alice, replayer = client(server, "127.0.0.32"), client(server, "127.0.0.33")
    try:
        register = alice.request("REGISTER", "sip:example.com", from_user="alice",
                                 from_host="example.com", to="sip:alice@example.com")
        challenge = alice.final(register)
        assert challenge is not None and challenge.status == 401
        signed = alice.authorized(register, challenge, "alice", ALICE_PW)
        ok = alice.final(signed)
        assert ok is not None and ok.status == 200
        value = signed.headers.get("Authorization")
        assert value is not None
        replay = replayer.request("REGISTER", "sip:example.com", from_user="alice",
                                  from_host="example.com", to="sip:alice@example.com",
                                  headers=[("Authorization", value)])
        answer = replayer.final(replay)
        assert answer is not None and answer.status == 401, answer
    finally:
        alice.close()
        replayer.close()
    assert 'source=127.0.0.33 method=REGISTER reason="replayed nonce-count"' in server.log()


def test_a_guessing_source_is_made_to_wait_and_alice_still_signs_in(server: RunningServer,
                                                                    tmp_path: Path) -> None:
    guesser, alice = client(server, "127.0.0.34"), client(server, "127.0.0.35")
    try:
        statuses = []
        for n in range(8):
            register = guesser.request("REGISTER", "sip:example.com", from_user="alice",
                                       from_host="example.com", to="sip:alice@example.com")
            challenge = guesser.final(register)
            assert challenge is not None
            if challenge.status == 401:
                answer = guesser.final(guesser.authorized(register, challenge, "alice",
                                                          f"guess-{n}"))
                assert answer is not None
                statuses.append((answer.status, answer.headers.get("Retry-After")))
            else:
                statuses.append((challenge.status, challenge.headers.get("Retry-After")))
        assert statuses[:6] == [(403, None)] * 6
        assert all(status == 403 and wait for status, wait in statuses[6:]), statuses
        register = alice.request("REGISTER", "sip:example.com", from_user="alice",
                                 from_host="example.com", to="sip:alice@example.com")
        challenge = alice.final(register)
        assert challenge is not None and challenge.status == 401
        ok = alice.final(alice.authorized(register, challenge, "alice", ALICE_PW))
        assert ok is not None and ok.status == 200
    finally:
        guesser.close()
        alice.close()
    failures = [line for line in server.log().splitlines()
                if "auth failure:" in line and "source=127.0.0.34 " in line]
    assert len(failures) == 6
