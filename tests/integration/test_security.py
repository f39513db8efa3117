"""Each security control of docs/security.md, proved against ``switchboard serve`` by an
attacker on a loopback address of its own (127.0.0.x), over real sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from confserver.media.rtp import RtpPacket
from confserver.sip.message import Request, Response, parse_message
from confserver.sip.sdp import SessionDescription
from confserver.sip.transaction import make_response
from confserver.storage.database import open_database
from mediation.profiles import from_profile
from mediation.routing import Route
from mediation.store import MediationStore

from ..ports import EXPOSED_RTP, SECURITY_RTP, server_range
from .attacker import RawSip, in_dialog, listener, received, sdp_offer
from .server import RunningServer, cli, free_port

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
def _challenged_register(alice: RawSip) -> tuple[Request, Response]:
    register = alice.request("REGISTER", "sip:example.com", from_user="alice",
                             from_host="example.com", to="sip:alice@example.com")
    challenge = alice.final(register)
    assert challenge is not None and challenge.status == 401
    return register, challenge


def test_credentials_for_one_uri_are_refused_on_another(server: RunningServer) -> None:
    """alice's credentials for her call to sip:echo, seen on the wire, do not place a
    call to a number: the digest names the Request-URI it was computed for."""
    alice, thief = client(server, "127.0.0.30"), client(server, "127.0.0.31")
    try:
        register, challenge = _challenged_register(alice)
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
        register, challenge = _challenged_register(alice)
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


# ------------------------------------------------------------------ meetings
MEETING, PASSCODE = "7654321", "13579"
ACCESS_NUMBER = "+14255550100"


@pytest.fixture(scope="module")
def dialin(tmp_path_factory: pytest.TempPathFactory, prompt_audio: Path
           ) -> Iterator[RunningServer]:
    """A server with the attendant: alice (extension 4001, PIN 24680), an anonymous
    meeting with a passcode, an access number; PINs lock after three failures."""
    workdir = tmp_path_factory.mktemp("security-dialin")
    srv = RunningServer(workdir, rtp_ports=server_range(SECURITY_RTP),
                        extra_config=f'[dialin]\nprompts = "{prompt_audio}"\n'
                                     f'custom_prompts = "{workdir / "custom"}"\n')
    srv.write_config()
    for args in (("user", "add", "sip:alice@example.com", "--password", ALICE_PW,
                  "--extension", "4001", "--phone", "+14255550101"),
                 ("user", "set-pin", "sip:alice@example.com", "--pin", "24680"),
                 ("meeting", "create", "--organizer", "sip:alice@example.com", "--access",
                  "anonymous", "--passcode", PASSCODE, "--id", MEETING),
                 ("access-number", "add", ACCESS_NUMBER, "--name", "Redmond", "--language",
                  "en-US"),
                 ("pin-policy", "set", "--max-failures", "3")):
        result = cli(*args, db=srv.db)
        assert result.returncode == 0, result.stderr
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log()[-3000:]


def _answered(caller: RawSip, uri: str, user: str) -> tuple[Request, Response] | Response:
    """An anonymous call (From another domain) to ``uri``: (INVITE, 200) once answered
    and ACKed, or the final refusal."""
    invite = caller.request("INVITE", uri, from_user=user, from_host="guest.invalid",
                            body=sdp_offer(caller.host, 40000))
    final = caller.final(invite, timeout=5.0)
    assert final is not None
    if final.status != 200:
        return final
    caller.send(in_dialog(caller, invite, final, "ACK", 1))
    return invite, final


def _key(caller: RawSip, invite: Request, ok: Response, cseq: int, keys: str) -> int:
    """Key ``keys`` by SIP INFO (application/dtmf-relay), one request per key."""
    for key in keys:
        info = in_dialog(caller, invite, ok, "INFO", cseq, content_type="application/dtmf-relay",
                         body=f"Signal={key}\r\nDuration=160\r\n".encode())
        answer = caller.final(info)
        assert answer is not None and answer.status == 200, answer
        cseq += 1
    return cseq


def _hung_up_on(caller: RawSip, timeout: float) -> bool:
    return any(isinstance(m, Request) and m.method == "BYE" for m in caller.collect(timeout))


def test_a_stranger_without_the_passcode_gets_the_attendant_not_the_meeting(
        dialin: RunningServer) -> None:
    """A caller from another domain dials the meeting's own address: the attendant
    answers and asks for the passcode (the meeting is not told about them), three
    wrong ones end the call, and a meeting that does not exist sounds the same."""
    stranger = client(dialin, "127.0.0.60")
    try:
        for conference in (MEETING, "1111111"):
            answered = _answered(stranger, f"sip:conf-{conference}@example.com", "mallory")
            assert not isinstance(answered, Response), answered
            invite, ok = answered
            cseq = 2
            for wrong in ("11111#", "22222#", "33333#"):
                cseq = _key(stranger, invite, ok, cseq, wrong)
                time.sleep(0.3)
            assert _hung_up_on(stranger, 12.0)
    finally:
        stranger.close()
    log = dialin.log()
    assert f"dial-in conf-{MEETING}: call from mallory" in log
    assert f"dial-in conf-{MEETING}: goodbye (wrong-passcode)" in log
    assert "dial-in conf-1111111: goodbye (wrong-passcode)" in log
    assert "joins as anonymous" not in log  # never in the meeting, not even its lobby


def test_the_roster_is_not_for_strangers(dialin: RunningServer) -> None:
    stranger = client(dialin, "127.0.0.61")
    try:
        for conference in (MEETING, "1111111"):
            subscribe = stranger.request(
                "SUBSCRIBE", f"sip:conf-{conference}@example.com", from_user="mallory",
                from_host="guest.invalid", headers=[("Event", "conference"),
                                                    ("Expires", "600")])
            answer = stranger.final(subscribe)
            assert answer is not None and answer.status == 403, answer
    finally:
        stranger.close()


def test_wrong_passcodes_from_one_source_are_refused_for_a_while(dialin: RunningServer) -> None:
    """Ten wrong passcodes in ten minutes from one address, whatever the caller ID:
    the next call is refused (403 with Retry-After) before anything is answered;
    another caller elsewhere is still answered."""
    sweeper, other = client(dialin, "127.0.0.62"), client(dialin, "127.0.0.63")
    try:
        failures = 0
        for attempt in range(4):
            answered = _answered(sweeper, f"sip:conf-{7654300 + attempt}@example.com",
                                 f"caller{attempt}")
            if isinstance(answered, Response):
                break
            invite, ok = answered
            cseq = 2
            for _ in range(3):
                if failures == 10:
                    break
                cseq = _key(sweeper, invite, ok, cseq, "99999#")
                failures += 1
                time.sleep(0.3)
            _hung_up_on(sweeper, 8.0)
        refused = _answered(sweeper, f"sip:conf-{MEETING}@example.com", "someone")
        assert isinstance(refused, Response) and refused.status == 403, refused
        assert refused.headers.get("Retry-After")
        answered = _answered(other, f"sip:conf-{MEETING}@example.com", "visitor")
        assert not isinstance(answered, Response), answered
        other.send(in_dialog(other, answered[0], answered[1], "BYE", 2))
    finally:
        sweeper.close()
        other.close()
    assert "dial-in refused: too many failed attempts from source:127.0.0.62" in dialin.log()


def test_a_leaders_pin_works_after_a_stranger_failed_five_times(dialin: RunningServer) -> None:
    """PIN lockout counts per caller: the stranger's wrong PINs lock their own tries
    (and sound exactly like wrong ones), not alice's."""
    stranger, alice = client(dialin, "127.0.0.64"), client(dialin, "127.0.0.65")
    access = f"sip:{ACCESS_NUMBER}@example.com"
    try:
        wrong = 0
        while wrong < 5:
            answered = _answered(stranger, access, "mallory")
            assert not isinstance(answered, Response), answered
            invite, ok = answered
            cseq = _key(stranger, invite, ok, 2, MEETING + "#")
            time.sleep(0.3)
            cseq = _key(stranger, invite, ok, cseq, "*")
            for pin in ("11357", "22468", "33579")[: 5 - wrong]:
                time.sleep(0.3)
                cseq = _key(stranger, invite, ok, cseq, "4001#")
                time.sleep(0.3)
                cseq = _key(stranger, invite, ok, cseq, pin + "#")
                wrong += 1
            _hung_up_on(stranger, 10.0)
        answered = _answered(alice, access, "+14255550101")
        assert not isinstance(answered, Response), answered
        invite, ok = answered
        cseq = _key(alice, invite, ok, 2, MEETING + "#")
        time.sleep(0.3)
        cseq = _key(alice, invite, ok, cseq, "*")
        time.sleep(0.3)
        cseq = _key(alice, invite, ok, cseq, "4001#")
        time.sleep(0.3)
        _key(alice, invite, ok, cseq, "24680#")
        time.sleep(2.0)
        alice.send(in_dialog(alice, invite, ok, "BYE", cseq + 10))
    finally:
        stranger.close()
        alice.close()
    log = dialin.log()
    assert "PIN sign-in for sip:alice@example.com: locked" in log
    ok_lines = [line for line in log.splitlines()
                if "PIN sign-in for sip:alice@example.com: ok" in line]
    assert ok_lines, log[-3000:]


# ------------------------------------------------------------------ media
def _rtp_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def test_an_injected_rtp_packet_neither_moves_the_stream_nor_enters_it(
        server: RunningServer) -> None:
    """alice (signed in) talks to the echo service; a stranger on another address sends
    junk first, then valid RTP of the agreed payload type at the call's port. alice
    hears only her own audio back, the stranger gets nothing, and it is logged."""
    alice, audio, stranger = client(server, "127.0.0.80"), _rtp_socket("127.0.0.80"), \
        _rtp_socket("127.0.0.81")
    try:
        invite = alice.request("INVITE", "sip:echo@example.com", from_user="alice",
                               from_host="example.com",
                               body=sdp_offer("127.0.0.80", audio.getsockname()[1]))
        challenge = alice.final(invite)
        assert challenge is not None and challenge.status == 401
        signed = alice.authorized(invite, challenge, "alice", ALICE_PW)
        ok = alice.final(signed)
        assert ok is not None and ok.status == 200, ok
        alice.send(in_dialog(alice, signed, ok, "ACK", 2))
        answer = SessionDescription.parse(ok.body)
        port = answer.media[0].port
        target = (answer.connection or "127.0.0.1", port)
        stranger.sendto(b"\x80\x00junk", target)
        stranger.sendto(bytes(RtpPacket(96, 1, 160, 0x66, b"\x77" * 160)), target)
        for seq in range(150):  # three seconds of alice, a stranger's packet beside each
            audio.sendto(bytes(RtpPacket(0, seq, seq * 160, 0xA11CE, b"\x11" * 160)), target)
            stranger.sendto(bytes(RtpPacket(0, seq, seq * 160, 0x66, b"\x77" * 160)), target)
            time.sleep(0.02)
        heard = [RtpPacket.parse(data) for data in received(audio, 0.5)]
        assert received(stranger, 0.2) == []
        echoed = [p for p in heard if p.payload_type == 0]
        assert len(echoed) > 100
        assert not any(b"\x77" in p.payload for p in echoed)
        alice.send(in_dialog(alice, signed, ok, "BYE", 3))
    finally:
        alice.close()
        audio.close()
        stranger.close()
    log = server.log()
    assert "packets from 127.0.0.81:" in log and "dropped (the peer is 127.0.0.80:" in log


# ------------------------------------------------------------------ floods
@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory, prompt_audio: Path
            ) -> Iterator[RunningServer]:
    """A server whose test services answer anyone (as a careless admin might set it),
    with an access number a gateway (127.0.0.3) sends PSTN callers to."""
    workdir = tmp_path_factory.mktemp("security-exposed")
    srv = RunningServer(workdir, rtp_ports=server_range(EXPOSED_RTP),
                        extra_config=f'[dialin]\nprompts = "{prompt_audio}"\n',
                        limits='[services]\npublic = true\n')
    srv.write_config()
    srv.add_user("alice", ALICE_PW, "+14255550101")
    for args in (("meeting", "create", "--organizer", "sip:alice@example.com", "--access",
                  "closed", "--id", MEETING),
                 ("access-number", "add", ACCESS_NUMBER, "--name", "Redmond", "--language",
                  "en-US")):
        result = cli(*args, db=srv.db)
        assert result.returncode == 0, result.stderr
    srv.gateway_port = free_port()  # type: ignore[attr-defined]
    database = open_database(srv.db)
    MediationStore(database).add_gateway(from_profile("pstn", "generic-sip", {
        "host": "127.0.0.3", "port": srv.gateway_port, "probe_interval": 0}))  # type: ignore[attr-defined]
    database.close()
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log()[-3000:]


def test_an_invite_flood_leaves_signed_in_users_and_gateways_working(
        exposed: RunningServer) -> None:
    """6,000 INVITEs to sip:noanswer from one address as fast as they go, then five a
    piece from 100 addresses: the first are mostly dropped unread, the rest refused
    503 once the limits on calls nobody vouched for are reached, and the RTP ports
    kept in reserve stay free. Meanwhile alice joins her meeting and a PSTN caller
    reaches the attendant through the gateway."""
    flooder = _rtp_socket("127.0.0.90")
    target = ("127.0.0.1", exposed.port)
    try:
        for n in range(6000):
            flooder.sendto(_flood_invite("127.0.0.90", flooder.getsockname()[1], n), target)
        for source in range(100):
            sock = _rtp_socket(f"127.0.1.{source + 1}")
            for n in range(5):
                sock.sendto(_flood_invite(sock.getsockname()[0], sock.getsockname()[1], n),
                            target)
            sock.close()
        time.sleep(1.0)
        alice = client(exposed, "127.0.0.91")
        try:
            invite = alice.request("INVITE", f"sip:conf-{MEETING}@example.com",
                                   from_user="alice", from_host="example.com",
                                   body=sdp_offer("127.0.0.91", 40000))
            challenge = alice.final(invite)
            assert challenge is not None and challenge.status == 401, challenge
            ok = alice.final(alice.authorized(invite, challenge, "alice", ALICE_PW))
            assert ok is not None and ok.status == 200, ok
        finally:
            alice.close()
        gateway = RawSip("127.0.0.3", target, exposed.gateway_port)  # type: ignore[attr-defined]
        try:
            pstn = gateway.request("INVITE", f"sip:{ACCESS_NUMBER}@127.0.0.1",
                                   from_user="+14255559876", from_host="127.0.0.3",
                                   body=sdp_offer("127.0.0.3", 41000))
            answered = gateway.final(pstn, timeout=8.0)
            assert answered is not None and answered.status == 200, answered
        finally:
            gateway.close()
    finally:
        flooder.close()
    log = exposed.log()
    assert "SIP flood:" in log
    assert "too many calls from callers who did not sign in" in log
    assert "conference 7654321: sip:alice@example.com joins as organizer" in log
    assert f"dial-in {ACCESS_NUMBER}: call from" in log


def _flood_invite(host: str, port: int, n: int) -> bytes:
    body = sdp_offer(host, 50000)
    return (f"INVITE sip:noanswer@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bKfl{n}x{port}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:x{n}@flood.invalid>;tag={n}\r\n"
            f"To: <sip:noanswer@example.com>\r\nCall-ID: fl{n}-{host}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:x@{host}:{port}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_a_display_name_of_control_bytes_keeps_the_roster_flowing_and_is_recorded(
        dialin: RunningServer) -> None:
    """A caller named "\\x01\\xff…" (a control character and a byte that is not UTF-8)
    joins: alice's roster subscription still gets every NOTIFY, valid against the
    RFC 4575 schema, and the dial-in record is written with the name cleaned."""
    from confserver.focus.conference_info import ConferenceInfo, ConferenceInfoSchema

    alice, guest = client(dialin, "127.0.0.70"), client(dialin, "127.0.0.71")
    conference = f"sip:conf-{MEETING}@example.com"
    try:
        invite = alice.request("INVITE", conference, from_user="alice", from_host="example.com",
                               body=sdp_offer("127.0.0.70", 40000))
        challenge = alice.final(invite)
        assert challenge is not None
        signed = alice.authorized(invite, challenge, "alice", ALICE_PW)
        ok = alice.final(signed)
        assert ok is not None and ok.status == 200, ok
        alice.send(in_dialog(alice, signed, ok, "ACK", 2))
        subscribe = alice.request("SUBSCRIBE", conference, from_user="alice",
                                  from_host="example.com",
                                  headers=[("Event", "conference"), ("Expires", "600")])
        challenge = alice.final(subscribe)
        assert challenge is not None and challenge.status == 401
        subscribe = alice.authorized(subscribe, challenge, "alice", ALICE_PW)
        subscribe.headers.add("Event", "conference")
        subscribe.headers.add("Expires", "600")
        assert (alice.final(subscribe) or challenge).status == 200
        alice.collect(1.0)  # the full document
        weird = b"\x01\xff".decode("utf-8", "surrogateescape") + "Eve"
        joined = guest.request("INVITE", conference, from_user="eve", from_host="guest.invalid",
                               display=weird, body=sdp_offer("127.0.0.71", 41000))
        answer = guest.final(joined, timeout=5.0)
        assert answer is not None and answer.status == 200, answer
        guest.send(in_dialog(guest, joined, answer, "ACK", 1))
        _key(guest, joined, answer, 2, PASSCODE + "#")
        notifies = [m for m in alice.collect(6.0)
                    if isinstance(m, Request) and m.method == "NOTIFY" and m.body]
        schema = ConferenceInfoSchema()
        assert notifies and all(schema.errors(n.body) == [] for n in notifies)
        names = [u.display_text for n in notifies for u in ConferenceInfo.parse(n.body).users or ()]
        assert "\ufffdEve" in names, names
        guest.send(in_dialog(guest, joined, answer, "BYE", 20))
        alice.send(in_dialog(alice, signed, ok, "BYE", 3))
        time.sleep(0.5)
    finally:
        alice.close()
        guest.close()
    records = cli("dialin", "cdrs", "--json", db=dialin.db)
    assert '"caller_id": "\\ufffdEve"' in records.stdout, records.stdout


# ------------------------------------------------------------------ gateways and TLS
def _fingerprint(cert: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert.read_bytes()).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def _over_tls(server: RunningServer, host: str, message: bytes,
              cert: tuple[Path, Path] | None) -> str:
    """Send ``message`` over a TLS connection of its own from ``host`` (presenting
    ``cert``, if given); the status line of the final answer."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=5,
                                  source_address=(host, 0)) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(message)
        data = b""
        while True:
            data += tls.recv(65535)
            for line in data.split(b"\r\n"):
                if line.startswith(b"SIP/2.0 ") and not line.startswith(b"SIP/2.0 1"):
                    return line.decode()


def test_a_tls_gateway_is_known_by_its_pinned_certificate_not_its_address(
        server: RunningServer, tmp_path: Path) -> None:
    """A gateway at 127.0.0.4 over TLS with a pinned client certificate: a connection
    from that address presenting it is the gateway (a number nobody has: its 404);
    presenting another certificate, or none, it is refused (403)."""
    from confserver.tls import generate_self_signed

    pinned, other = tmp_path / "gw", tmp_path / "other"
    generate_self_signed(str(pinned / "cert.pem"), str(pinned / "key.pem"), "gw.example")
    generate_self_signed(str(other / "cert.pem"), str(other / "key.pem"), "gw.example")
    with server.reconfigured():
        database = open_database(server.db)
        MediationStore(database).add_gateway(from_profile("tls-gw", "generic-sip", {
            "host": "127.0.0.4", "port": 5061, "transport": "tls", "probe_interval": 0,
            "tls_fingerprint": _fingerprint(pinned / "cert.pem")}))
        database.close()
    def invite(n: int) -> bytes:
        return (f"INVITE sip:+15555550199@example.com SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS 127.0.0.4:5061;branch=z9hG4bKtlsgw{n}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:+14255550000@127.0.0.4>;tag=g{n}\r\n"
                f"To: <sip:+15555550199@example.com>\r\nCall-ID: tlsgw{n}\r\n"
                f"CSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.4:5061;transport=tls>\r\n"
                f"Content-Length: 0\r\n\r\n").encode()
    pinned_cert = (pinned / "cert.pem", pinned / "key.pem")
    other_cert = (other / "cert.pem", other / "key.pem")
    assert _over_tls(server, "127.0.0.4", invite(1), pinned_cert).startswith("SIP/2.0 404")
    assert _over_tls(server, "127.0.0.4", invite(2), other_cert) == \
        "SIP/2.0 403 Forbidden (not the certificate configured for this gateway)"
    assert _over_tls(server, "127.0.0.4", invite(3), None).startswith("SIP/2.0 403")
    assert "gateway tls-gw: a request from tls:127.0.0.4:" in server.log()


def test_outgoing_tls_checks_the_gateways_certificate_unless_told_not_to(
        server: RunningServer, gateway: socket.socket) -> None:
    """A trunk over TLS whose certificate is self-signed (the server's own TLS port):
    the call does not go through, and the log says why; with tls_verify = false it
    does, and the start of that is logged as a warning."""
    with server.reconfigured():
        database = open_database(server.db)
        store = MediationStore(database)
        store.add_gateway(from_profile("tls-trunk", "generic-sip", {
            "host": "127.0.0.1", "port": server.tls_port, "transport": "tls",
            "probe_interval": 0, "failover_timer": 3, "called_translations": [[".*", "echo"]]}))
        store.add_route(Route("tls-test", r"^\+7\d{9}$", ("local",), ("tls-trunk",),
                              priority=-1))
        database.close()

    def call(host: str) -> Response | None:
        alice = client(server, host)
        try:
            invite = alice.request("INVITE", "sip:+7005550100@example.com", from_user="alice",
                                   from_host="example.com", body=sdp_offer(host, 40000))
            challenge = alice.final(invite)
            assert challenge is not None and challenge.status == 401
            return alice.final(alice.authorized(invite, challenge, "alice", ALICE_PW),
                               timeout=10.0)
        finally:
            alice.close()

    refused = call("127.0.0.85")
    assert refused is not None and refused.status >= 400, refused
    assert "tls connection with 127.0.0.1:" in server.log()
    with server.reconfigured():
        result = cli("gateway", "set", "tls-trunk", "tls_verify=false", db=server.db)
        assert result.returncode == 0, result.stderr
    answered = call("127.0.0.86")
    assert answered is not None and answered.status == 200, answered
    assert "gateway tls-trunk: its TLS certificate is not checked" in server.log()
