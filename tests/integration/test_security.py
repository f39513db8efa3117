"""Each security control of docs/security.md, proved against ``switchboard serve`` by an
attacker on a loopback address of its own (127.0.0.x), over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from confserver.sip.message import Request, Response, parse_message
from confserver.sip.transaction import make_response
from confserver.storage.database import open_database
from mediation.gateways import from_profile
from mediation.routing import Route
from mediation.store import MediationStore

from .attacker import RawSip, in_dialog, listener, received, sdp_offer
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


# ------------------------------------------------------------------ toll fraud
@pytest.fixture(scope="module")
def gateway(server: RunningServer) -> Iterator[socket.socket]:
    """A PSTN gateway that trusts the server (127.0.0.3): mediation routes North
    American numbers to it, and alice's voice policy allows only those."""
    sock = listener("127.0.0.3")
    database = open_database(server.db)
    store = MediationStore(database)
    with server.reconfigured():
        store.add_gateway(from_profile("trusting-gw", "generic-sip", {
            "host": "127.0.0.3", "port": sock.getsockname()[1], "probe_interval": 0}))
        store.add_policy("local-only", ("local",), default=True)
        store.add_route(Route("north-america", r"^\+1\d{10}$", ("local",), ("trusting-gw",)))
        store.add_route(Route("world", r"^\+[2-9]\d{6,14}$", ("international",),
                              ("trusting-gw",)))
    database.close()
    yield sock
    sock.close()


def _adhoc_call(alice: RawSip) -> tuple[Request, Response]:
    """alice signs in and starts an ad-hoc meeting: (her INVITE, our 200)."""
    invite = alice.request("INVITE", "sip:adhoc@example.com", from_user="alice",
                           from_host="example.com", body=sdp_offer(alice.host, 40000))
    challenge = alice.final(invite)
    assert challenge is not None and challenge.status in (401, 407)
    signed = alice.authorized(invite, challenge, "alice", ALICE_PW)
    ok = alice.final(signed)
    assert ok is not None and ok.status == 200, ok
    alice.send(in_dialog(alice, signed, ok, "ACK", 2))
    return signed, ok


def test_a_refer_or_dial_out_to_a_host_the_server_does_not_serve_is_refused(
        server: RunningServer, gateway: socket.socket) -> None:
    """The toll fraud of issue 31: a REFER (and a C3P dialOut) asking the meeting to
    call a number at a host that would trust the server. 403, a log line, and the
    host hears nothing."""
    victim = listener("127.0.0.2", 0)
    alice = client(server, "127.0.0.40")
    try:
        invite, ok = _adhoc_call(alice)
        target = f"sip:+442071234567@127.0.0.2:{victim.getsockname()[1]}"
        refer = in_dialog(alice, invite, ok, "REFER", 3, headers=[("Refer-To", f"<{target}>")])
        answer = alice.final(refer)
        assert answer is not None and answer.status == 403, answer
        control = ('<request xmlns="urn:switchboard:params:xml:ns:c3p" requestId="1">'
                   f'<dialOut uri="{target}"/></request>').encode()
        info = in_dialog(alice, invite, ok, "INFO", 4, body=control,
                         content_type="application/cccp+xml")
        answer = alice.final(info)
        assert answer is not None and answer.status == 403, answer
        assert b'code="failure"' in answer.body
        injected = in_dialog(alice, invite, ok, "REFER", 5, headers=[(
            "Refer-To", "<sip:bob@example.com?Replaces=x%0D%0AX-Injected:%201"
                        "%3Bto-tag%3D1%3Bfrom-tag%3D2>")])
        answer = alice.final(injected)
        assert answer is not None and answer.status == 400, answer
        assert received(victim, 2.0) == []
        assert received(gateway, 0.1) == []
        alice.send(in_dialog(alice, invite, ok, "BYE", 6))
    finally:
        alice.close()
        victim.close()
    assert server.log().count("outbound call refused: requester=sip:alice@example.com") >= 2


def test_a_number_referred_goes_through_mediation_with_the_referrers_policy(
        server: RunningServer, gateway: socket.socket) -> None:
    """A number in a REFER is dialed as if alice had dialed it: her voice policy
    refuses London (the NOTIFY says 403, the gateway hears nothing) and allows
    Redmond (the gateway gets the INVITE, with alice's number as the caller)."""
    alice = client(server, "127.0.0.41")
    try:
        invite, ok = _adhoc_call(alice)
        refer = in_dialog(alice, invite, ok, "REFER", 3,
                          headers=[("Refer-To", "<tel:+442071234567>")])
        answer = alice.final(refer)
        assert answer is not None and answer.status == 202, answer
        notifies = [m for m in alice.collect(3.0)
                    if isinstance(m, Request) and m.method == "NOTIFY"]
        assert any(n.body.startswith(b"SIP/2.0 403") for n in notifies), notifies
        assert received(gateway, 0.5) == []
        refer = in_dialog(alice, invite, ok, "REFER", 4,
                          headers=[("Refer-To", "<tel:+14255551234>")])
        answer = alice.final(refer)
        assert answer is not None and answer.status == 202, answer
        [first, *_] = received(gateway, 3.0)
        to_gateway = parse_message(first)
        assert isinstance(to_gateway, Request) and to_gateway.method == "INVITE"
        assert "4255551234" in str(to_gateway.uri)
        assert "+14255550101" in (to_gateway.headers.get("From") or "")
        gateway.sendto(bytes(make_response(to_gateway, 486, "Busy Here", "gw")),
                       ("127.0.0.1", server.port))
        alice.collect(1.0)
        alice.send(in_dialog(alice, invite, ok, "BYE", 5))
    finally:
        alice.close()
