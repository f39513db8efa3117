"""Mediation's call handling in memory (the real endpoint and application on a
``task.Clock``, a fake wire): forking a PSTN call to every device of a user, gateway
recognition, refusals, cancel, the concurrency limit and OPTIONS health probes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from confserver.adapters.gate.outbound_gate import Placement
from confserver.adapters.sip.endpoint import Target
from confserver.sip.message import Request, Response
from confserver.sip.sdp import SessionDescription
from confserver.sip.transaction import make_response
from confserver.sip.uri import parse_uri
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.errors import StorageUnavailable
from mediation.b2bua import RECORD_DELAY, RECORD_RETRY, Mediation
from mediation.call import RESPONSE_WITHIN
from mediation.models import IN_PROGRESS, RECORD_HEARTBEAT
from mediation.store import MediationStore
from mediation.trunks import GatewayProber
from tests.harness import OFFER, Harness, authorize, make_request

from .b2bua_helpers import (
    ANSWER,
    GATEWAY,
    authenticated_invite,
    established_call,
    mediation_harness,
    reply,
    sent,
)


def test_pstn_call_to_a_users_number_rings_every_device_and_the_first_answer_wins(
        h: Harness) -> None:
    h.feed(make_request("INVITE", "sip:+14255550102@example.com", body=OFFER,
                        via_host="127.0.0.1:5098"), source=GATEWAY)
    invites = [(m, where) for m, where in sent(h) if isinstance(m, Request)]
    assert sorted(where for _m, where in invites) == [("127.0.0.1", 6001), ("127.0.0.1", 6002)]
    for request, _where in invites:
        assert request.headers.get("From").startswith('"+14255550199"') is False
        assert "sip:bob@127.0.0.1" in str(request.uri)
    first, second = invites[0], invites[1]
    reply(h, first[0], 180, first[1])
    assert any(isinstance(m, Response) and m.status == 180 for m, _w in sent(h))
    reply(h, second[0], 200, second[1], ANSWER, tag="winner")
    out = sent(h)
    assert any(isinstance(m, Request) and m.method == "CANCEL" and w == first[1] for m, w in out)
    assert any(isinstance(m, Request) and m.method == "ACK" and w == second[1] for m, w in out)
    answers = [m for m, w in out if isinstance(m, Response) and w == GATEWAY]
    assert answers and answers[-1].status == 200 and b"m=audio" in answers[-1].body


def _call_bob(h: Harness) -> list[tuple[Request, tuple[str, int]]]:
    h.feed(make_request("INVITE", "sip:+14255550102@example.com", body=OFFER,
                        via_host="127.0.0.1:5098"), source=GATEWAY)
    return [(m, where) for m, where in sent(h) if isinstance(m, Request)]


def _to_gateway(h: Harness) -> list[Response]:
    return [m for m, w in sent(h) if isinstance(m, Response) and w == GATEWAY]


def test_when_every_device_refuses_the_caller_gets_their_status_and_who_refused(
        h: Harness) -> None:
    for request, where in _call_bob(h):
        reply(h, request, 486, where)
    final = _to_gateway(h)[-1]
    assert (final.status, final.reason) == (486, "X")  # the device's own phrase, once
    warning = final.headers.get("Warning") or ""
    assert "sip:bob@127.0.0.1:6001 at 127.0.0.1:6001 (486)" in warning
    assert "sip:bob@127.0.0.1:6002 at 127.0.0.1:6002 (486)" in warning


def test_devices_that_never_respond_give_480_without_waiting_for_the_ring_timeout(
        h: Harness) -> None:
    """bob's registrations outlived his phones: neither device sends even a 100."""
    assert len(_call_bob(h)) == 2
    h.clock.advance(RESPONSE_WITHIN - 0.5)
    assert not [m for m in _to_gateway(h) if m.status >= 200]
    h.clock.advance(1.0)
    final = [m for m in _to_gateway(h) if m.status >= 200]
    assert [m.status for m in final] == [480]
    assert "(no response)" in (final[0].headers.get("Warning") or "")


def test_a_device_that_answers_100_is_given_the_whole_ring_time(h: Harness) -> None:
    invites = _call_bob(h)
    reply(h, invites[0][0], 100, invites[0][1])
    h.clock.advance(RESPONSE_WITHIN + 1)
    assert not [m for m in _to_gateway(h) if m.status >= 200]  # 6001 still rings
    reply(h, invites[0][0], 200, invites[0][1], ANSWER)
    assert _to_gateway(h)[-1].status == 200


def test_a_silent_front_end_gives_a_caller_of_an_access_number_504() -> None:
    """In a pool, mediation hands calls for access numbers to the front end
    (``next_hop``); a front end that is down answers nothing."""
    h = mediation_harness(next_hop=Target("udp", "127.0.0.1", 5090))
    AccessNumberDirectory(h.db).add("+14255550100", name="Redmond", language="en-US",
                                    domain="example.com")
    h.feed(make_request("INVITE", "sip:+14255550100@example.com", body=OFFER,
                        via_host="127.0.0.1:5098"), source=GATEWAY)
    assert [w for m, w in sent(h) if isinstance(m, Request)] == [("127.0.0.1", 5090)]
    h.clock.advance(RESPONSE_WITHIN + 0.5)
    final = [m for m in _to_gateway(h) if m.status >= 200]
    assert [(m.status, m.reason) for m in final] == [(504, "Server Time-out")]
    assert "sip:+14255550100@example.com at 127.0.0.1:5090 (no response)" in \
        (final[0].headers.get("Warning") or "")
    h.clock.advance(RECORD_DELAY)
    record = MediationStore(h.db).recent_cdrs()[0]
    assert record["sip_status"] == 504


def test_unknown_number_from_a_gateway_is_404_and_recorded(h: Harness) -> None:
    h.feed(make_request("INVITE", "sip:+14255559999@example.com", body=OFFER,
                        via_host="127.0.0.1:5098"), source=GATEWAY)
    responses = [m for m, _w in sent(h) if isinstance(m, Response)]
    assert responses[-1].status == 404 and "Warning" in responses[-1].headers
    assert not MediationStore(h.db).recent_cdrs()  # records are written together, later
    h.clock.advance(RECORD_DELAY)
    record = MediationStore(h.db).recent_cdrs()[0]
    assert (record["direction"], record["disposition"], record["gateway"]) == \
        ("inbound", "no-destination", "gw")


def test_anonymous_caller_has_no_policy_and_users_must_authenticate(h: Harness) -> None:
    h.feed(make_request("INVITE", "sip:+442079460000@example.com", body=OFFER,
                        extra=[]).__bytes__().replace(b"sip:alice@example.com",
                                                      b"sip:guest@other.invalid"))
    responses = [m for m, _w in sent(h) if isinstance(m, Response)]
    assert responses[-1].status == 403 and "no voice policy" in responses[-1].reason
    h.feed(make_request("INVITE", "sip:+442079460000@example.com", body=OFFER,
                        call_id="c2@test", branch="z9hG4bKt2"))
    responses = [m for m, _w in sent(h) if isinstance(m, Response)]
    assert responses[-1].status == 401  # alice claims our domain: digest first




def test_caller_cancel_stops_the_attempt_and_the_gateway_call_limit_holds(h: Harness) -> None:
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    invite = authenticated_invite(h, "+14255550123", "c1@test")
    out = sent(h)
    to_gateway = [m for m, w in out if isinstance(m, Request) and w == GATEWAY]
    assert len(to_gateway) == 1 and str(to_gateway[0].uri).startswith("sip:+14255550123@")
    assert to_gateway[0].headers.get("P-Asserted-Identity") == \
        "<sip:+14255550101@example.com;user=phone>"
    # the gateway takes one call at a time (max_calls = 1): a second caller is refused
    authenticated_invite(h, "+14255550124", "c2@test")
    refused = [m for m, _w in sent(h) if isinstance(m, Response)][-1]
    assert refused.status == 503 and "no gateway available" in refused.reason
    reply(h, to_gateway[0], 100, GATEWAY)  # a CANCEL waits for a provisional (RFC 3261 9.1)
    # the caller gives up: the gateway's INVITE is cancelled and no other gateway is tried
    cancel = make_request("CANCEL", "sip:+14255550123@example.com", call_id="c1@test",
                          branch=invite.vias[0].params["branch"] or "", cseq=2)
    h.feed(cancel)
    out = sent(h)
    assert any(isinstance(m, Request) and m.method == "CANCEL" and w == GATEWAY for m, w in out)
    assert any(isinstance(m, Response) and m.status == 487 for m, _w in out)
    assert not any(isinstance(m, Request) and m.method == "INVITE" for m, _w in out)
    mediation: Mediation = h.mediation  # type: ignore[attr-defined]
    assert mediation.active["gw"] == 0 and not mediation.calls
    mediation.flush_records()
    record = MediationStore(h.db).recent_cdrs()[0]
    assert record["disposition"] == "cancelled" and record["sip_status"] == 487


def test_options_probes_mark_a_silent_gateway_down_and_an_answer_brings_it_back(
        h: Harness) -> None:
    mediation: Mediation = h.mediation  # type: ignore[attr-defined]
    store = MediationStore(h.db, clock=h.clock.seconds)
    gateway = store.gateway("gw")
    store.update_gateway(replace(gateway, probe_interval=10.0))
    prober = GatewayProber(mediation)
    mediation.on_config.append(prober.reconfigure)
    mediation.config()
    for _ in range(3):  # three probes, each unanswered until its transaction times out
        h.clock.advance(10.5)
        probes = [m for m, w in sent(h) if isinstance(m, Request) and m.method == "OPTIONS"]
        assert probes and probes[0].uri is not None
        for _step in range(70):
            h.clock.advance(0.5)
        sent(h)  # retransmissions
    assert not mediation.health["gw"].up and not mediation.usable("gw")
    # back-off: the next probe comes later; this one is answered
    for _step in range(100):
        h.clock.advance(0.5)
        options = [m for m, w in sent(h) if isinstance(m, Request) and m.method == "OPTIONS"]
        if options:
            reply(h, options[0], 200, GATEWAY)
            break
    assert mediation.health["gw"].up and mediation.usable("gw")
    assert prober.probes_sent >= 4
    prober.stop()


def test_call_records_wait_in_memory_while_the_database_refuses_writes(h: Harness) -> None:
    mediation: Mediation = h.mediation  # type: ignore[attr-defined]
    store = mediation.store
    refused: list[int] = []

    def full_disk(records: list[dict[str, object]]) -> None:
        refused.append(len(records))
        raise StorageUnavailable("database or disk is full")

    real = store.add_cdrs
    store.add_cdrs = full_disk  # type: ignore[method-assign]
    for n in range(2):
        h.feed(make_request("INVITE", f"sip:+1425555999{n}@example.com", body=OFFER,
                            via_host="127.0.0.1:5098", call_id=f"full-{n}",
                            branch=f"z9hG4bKfull{n}"), source=GATEWAY)
    h.clock.advance(RECORD_DELAY)
    assert refused == [2] and not MediationStore(h.db).recent_cdrs()
    store.add_cdrs = real  # type: ignore[method-assign]
    h.clock.advance(RECORD_RETRY)
    rows = MediationStore(h.db).recent_cdrs()
    assert sorted(r["call_id"] for r in rows) == ["full-0", "full-1"]


def test_early_media_from_the_gateway_reaches_the_caller_before_the_answer(h: Harness) -> None:
    """A 183 with SDP (the network's ring-back or an announcement) becomes a 183 with
    our answer toward the caller; the 200 that follows repeats the same answer."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "early@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    reply(h, to_gateway, 183, GATEWAY, ANSWER)
    progress = [m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY]
    assert [m.status for m in progress] == [183]
    early_sdp = progress[0].body
    assert b"m=audio" in early_sdp and b"RTP/AVP 0" in early_sdp  # the gateway's codec
    assert progress[0].headers.get("Content-Type") == "application/sdp"
    reply(h, to_gateway, 200, GATEWAY, ANSWER)
    final = [m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY]
    assert final[-1].status == 200 and final[-1].body == early_sdp


class _Session:
    """What the bridge reads of a media session, for pulling frames by hand (no app
    of the bridge's: never paired to relay)."""

    dtmf_in_burst = False
    closed = False
    app = None
    listens_inband = False
    relay_peer = None

    def __init__(self, stream: object) -> None:
        self.stream = stream

    def relay_with(self, peer: object) -> None:
        raise AssertionError("not a bridge's session")

    def end_relay(self) -> None:
        pass


def test_a_plain_180_gives_the_caller_a_local_ring_back_until_the_answer(h: Harness) -> None:
    """No media from the far end while it rings: the caller gets a 183 with our answer
    (the gateway's codec first, so the call can relay) and hears the gateway's ring-back
    (US: 440 + 480 Hz); the answer stops it and the 200 repeats the same SDP."""
    from confserver.media.codecs.g711 import Pcmu
    from confserver.media.stream import AudioStream
    from mediation.media_bridge import INTERNAL

    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "ring@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    reply(h, to_gateway, 180, GATEWAY)
    reply(h, to_gateway, 180, GATEWAY)  # a repeated 180 changes nothing
    ringing = [m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY]
    assert [m.status for m in ringing] == [183]
    assert b"RTP/AVP 0" in ringing[0].body  # PCMU, the generic gateway's first codec
    (call,) = h.mediation.calls  # type: ignore[attr-defined]
    side = call.bridge.sides[INTERNAL]
    session = _Session(AudioStream(Pcmu(), 0, None, 20))
    heard = np.concatenate([side.on_frame(session, None, 0.0) for _ in range(50)])
    spectrum = np.abs(np.fft.rfft(heard))
    freqs = np.fft.rfftfreq(len(heard), 1 / 8000)
    assert sorted(freqs[np.argsort(spectrum)[-2:]]) == pytest.approx([440, 480], abs=2)
    reply(h, to_gateway, 200, GATEWAY, ANSWER)
    final = [m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY]
    assert final[-1].status == 200 and final[-1].body == ringing[0].body
    assert call.bridge.ringback[INTERNAL] is None


def test_with_ring_back_off_a_plain_180_rings_the_caller_without_media(h: Harness) -> None:
    store = MediationStore(h.db)
    store.update_gateway(replace(store.gateway("gw"), ringback="off"))
    h.mediation.reload()  # type: ignore[attr-defined]
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "ring@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    reply(h, to_gateway, 180, GATEWAY)
    ringing = [m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY]
    assert [m.status for m in ringing] == [180] and not ringing[0].body


def test_a_trunk_that_requires_srtp_gets_keys_and_a_plain_answer_ends_the_attempt(
        h: Harness) -> None:
    """srtp=required: the INVITE to the trunk offers RTP/SAVP with SDES keys; a 200
    that answers plain RTP is ACKed and ended with a BYE at once, and the caller gets
    the 488 (a 4xx: no failover), recorded as the gateway's attempt."""
    store = MediationStore(h.db)
    # over UDP the keys cross the network readable: the admin must say so
    store.update_gateway(replace(store.gateway("gw"), srtp="required", srtp_keys_in_clear=True))
    h.mediation.reload()  # type: ignore[attr-defined]
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "srtp@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert b"m=audio" in to_gateway.body and b"RTP/SAVP" in to_gateway.body
    assert b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in to_gateway.body
    reply(h, to_gateway, 200, GATEWAY, ANSWER)
    out = sent(h)
    to_trunk = [m.method for m, w in out if isinstance(m, Request) and w == GATEWAY]
    assert to_trunk == ["ACK", "BYE"]
    final = [m for m, w in out if isinstance(m, Response) and w != GATEWAY]
    assert final[-1].status == 488
    h.clock.advance(RECORD_DELAY)
    record = MediationStore(h.db).recent_cdrs()[0]
    assert record["attempts"] == "gw:488" and record["disposition"] == "failed"
    assert not record["gateway_srtp"]




def test_a_hold_and_a_resume_cross_to_the_other_leg(h: Harness) -> None:
    """alice holds (a=sendonly): she gets recvonly back and the gateway is re-INVITEd
    with sendonly, offering only the agreed codec; she resumes and so does the gateway
    leg. Then the gateway holds (inactive) and alice is re-INVITEd with inactive."""
    _invite, ok, to_gateway = established_call(h, "hold@test")
    to_tag = ok.to.params["tag"] if ok.to else None
    for cseq, direction, answered in ((3, "sendonly", b"a=recvonly"),
                                      (4, "sendrecv", b"a=sendrecv")):
        body = OFFER.replace(b"o=alice 1 1", f"o=alice 1 {cseq}".encode()) \
            + f"a={direction}\r\n".encode()
        h.feed(make_request("INVITE", "sip:+14255550123@example.com", call_id="hold@test",
                            cseq=cseq, to_tag=to_tag, branch=f"z9hG4bKre{cseq}", body=body))
        out = sent(h)
        to_alice = [m for m, w in out if isinstance(m, Response) and w != GATEWAY]
        assert to_alice[-1].status == 200 and answered in to_alice[-1].body
        reinvite = next(m for m, w in out if isinstance(m, Request) and w == GATEWAY)
        assert reinvite.method == "INVITE" and reinvite.call_id == to_gateway.call_id
        assert f"a={direction}".encode() in reinvite.body
        assert b"RTP/AVP 0 96\r\n" in reinvite.body and b"PCMA" not in reinvite.body
        h.feed(make_request("ACK", "sip:+14255550123@example.com", call_id="hold@test",
                            cseq=cseq, to_tag=to_tag, branch=f"z9hG4bKack{cseq}"))
        reply(h, reinvite, 200, GATEWAY, ANSWER.replace(b"41000 RTP/AVP 0 101\r\n",
              b"41000 RTP/AVP 0 101\r\n" + (b"a=recvonly\r\n" if direction == "sendonly"
                                            else b"")))
        assert [m.method for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY] \
            == ["ACK"]
    # now the gateway holds: our From/To swap in its request
    our_from = to_gateway.headers.get("From")
    their_to = to_gateway.headers.get("To")
    hold = (f"INVITE {to_gateway.headers.get('Contact').strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKgwhold\r\nMax-Forwards: 70\r\n"
            f"From: {their_to};tag=dev\r\nTo: {our_from}\r\nCall-ID: {to_gateway.call_id}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:dev@127.0.0.1:5098>\r\n"
            f"Content-Type: application/sdp\r\n").encode()
    body = ANSWER.replace(b"o=dev 1 1", b"o=dev 1 2") + b"a=inactive\r\n"
    h.feed(hold + f"Content-Length: {len(body)}\r\n\r\n".encode() + body, source=GATEWAY)
    out = sent(h)
    to_gateway_answer = [m for m, w in out if isinstance(m, Response) and w == GATEWAY]
    assert to_gateway_answer[-1].status == 200 and b"a=inactive" in to_gateway_answer[-1].body
    to_alice = [m for m, w in out if isinstance(m, Request) and w != GATEWAY]
    assert [m.method for m in to_alice] == ["INVITE"] and b"a=inactive" in to_alice[0].body
    assert to_alice[0].call_id == "hold@test"


def test_a_hold_refused_with_491_is_offered_again_after_a_random_wait(h: Harness) -> None:
    _invite, ok, _to_gateway = established_call(h, "glare@test")
    to_tag = ok.to.params["tag"] if ok.to else None
    body = OFFER.replace(b"o=alice 1 1", b"o=alice 1 3") + b"a=sendonly\r\n"
    h.feed(make_request("INVITE", "sip:+14255550123@example.com", call_id="glare@test",
                        cseq=3, to_tag=to_tag, branch="z9hG4bKre3", body=body))
    first = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    reply(h, first, 491, GATEWAY)
    assert [m.method for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY] == ["ACK"]
    h.clock.advance(2.0)
    assert not [m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY]
    h.clock.advance(2.1)  # RFC 3261 14.1: between 2.1 and 4 s for the dialog's owner
    again = [m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY]
    assert [m.method for m in again] == ["INVITE"] and b"a=sendonly" in again[0].body
    assert again[0].cseq is not None and first.cseq is not None
    assert again[0].cseq.number > first.cseq.number


def _answer_with(h: Harness, request: Request, status: int, headers: list[tuple[str, str]],
                 body: bytes = b"") -> None:
    response = make_response(request, status, "X", "dev")
    response.headers.add("Contact", f"<sip:dev@{GATEWAY[0]}:{GATEWAY[1]}>")
    for name, value in headers:
        response.headers.add(name, value)
    if body:
        response.headers.add("Content-Type", "application/sdp")
    response.body = body
    h.feed(bytes(response), source=GATEWAY)


def _ack_alice(h: Harness, call_id: str) -> None:
    ok = next(m for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY
              and m.status == 200)
    h.feed(make_request("ACK", "sip:+14255550123@example.com", call_id=call_id, cseq=2,
                        to_tag=ok.to.params["tag"] if ok.to else None, branch="z9hG4bKack1"))


def test_the_trunk_leg_refreshes_the_session_the_trunk_asked_us_to(h: Harness) -> None:
    """RFC 4028 toward a trunk: our INVITE asks for the gateway's interval; the 2xx
    makes us the refresher at 120 s, so an UPDATE goes out every 60 s (the trunk
    allows UPDATE), each answered; the call stays up."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "timer@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert to_gateway.headers.get("Session-Expires") == "1800"
    assert "timer" in to_gateway.headers.tokens("Supported")
    _answer_with(h, to_gateway, 200, [("Session-Expires", "120;refresher=uac"),
                                      ("Require", "timer"), ("Allow", "INVITE, BYE, UPDATE")],
                 ANSWER)
    _ack_alice(h, "timer@test")
    for _round in range(2):
        h.clock.advance(59)
        assert not [m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY]
        h.clock.advance(1)
        (refresh,) = [m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY]
        assert refresh.method == "UPDATE"
        assert refresh.headers.get("Session-Expires") == "120;refresher=uac"
        _answer_with(h, refresh, 200, [("Session-Expires", "120;refresher=uac")])
    assert len(h.mediation.calls) == 1  # type: ignore[attr-defined]


def test_a_call_the_trunk_stops_refreshing_ends_on_both_legs(h: Harness) -> None:
    """The trunk is the refresher (refresher=uas in its 2xx) and falls silent: at
    the interval less a third (§10) both legs get a BYE."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "expire@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    _answer_with(h, to_gateway, 200, [("Session-Expires", "90;refresher=uas")], ANSWER)
    _ack_alice(h, "expire@test")
    h.clock.advance(59)
    assert not [m for m, _w in sent(h) if isinstance(m, Request) and m.method == "BYE"]
    h.clock.advance(1)
    byes = sorted(w for m, w in sent(h) if isinstance(m, Request) and m.method == "BYE")
    assert GATEWAY in byes and len(byes) == 2


def test_a_422_from_the_trunk_is_asked_again_with_its_minimum(h: Harness) -> None:
    store = MediationStore(h.db)
    store.update_gateway(replace(store.gateway("gw"), session_expires=600))
    h.mediation.reload()  # type: ignore[attr-defined]
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "small@test")
    first = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert first.headers.get("Session-Expires") == "600"
    _answer_with(h, first, 422, [("Min-SE", "1800")])
    again = [m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY
             and m.method == "INVITE"]
    assert len(again) == 1 and again[0].headers.get("Session-Expires") == "1800"
    assert again[0].cseq is not None and first.cseq is not None
    assert again[0].cseq.number == first.cseq.number + 1


def _refer(h: Harness, ok: Response, call_id: str, cseq: int, refer_to: str | None
           ) -> list[tuple[Request | Response, tuple[str, int]]]:
    """alice sends a REFER in her call's dialog; what went out in reply."""
    extra = [("Refer-To", refer_to)] if refer_to else []
    h.feed(make_request("REFER", "sip:+14255550123@example.com", call_id=call_id, cseq=cseq,
                        to_tag=ok.to.params["tag"] if ok.to else None,
                        branch=f"z9hG4bKrefer{cseq}", extra=extra))
    return sent(h)


def _notified(out: list[tuple[Request | Response, tuple[str, int]]]) -> list[bytes]:
    return [m.body.strip() for m, w in out if isinstance(m, Request) and m.method == "NOTIFY"
            and w != GATEWAY]


def test_a_handled_transfer_to_a_user_rings_their_devices_and_swaps_them_in(
        h: Harness) -> None:
    """alice, on a call to a phone, transfers it to bob (REFER, RFC 5589): 202 and a
    100 Trying NOTIFY; bob's two devices are called from the phone's number; the
    180 and the answer are NOTIFYed; alice's BYE leaves the phone and bob talking;
    bob's BYE ends the gateway leg; the record says where the call went."""
    _invite, ok, to_gateway = established_call(h, "xfer@test")
    out = _refer(h, ok, "xfer@test", 3, "<sip:bob@example.com>")
    responses = [m for m, w in out if isinstance(m, Response) and w != GATEWAY]
    assert [r.status for r in responses] == [202]
    assert _notified(out) == [b"SIP/2.0 100 Trying"]
    invites = [(m, w) for m, w in out if isinstance(m, Request) and m.method == "INVITE"]
    assert sorted(w for _m, w in invites) == [("127.0.0.1", 6001), ("127.0.0.1", 6002)]
    assert all(m.headers.get("From").startswith('"+14255550123"') for m, _w in invites)
    reply(h, invites[0][0], 180, invites[0][1])
    assert _notified(sent(h)) == [b"SIP/2.0 180 Ringing"]
    reply(h, invites[1][0], 200, invites[1][1], ANSWER, tag="bobdev")
    out = sent(h)
    assert _notified(out) == [b"SIP/2.0 200 OK"]
    notify = next(m for m, _w in out if isinstance(m, Request) and m.method == "NOTIFY")
    assert (notify.headers.get("Subscription-State") or "").startswith("terminated")
    assert any(isinstance(m, Request) and m.method == "CANCEL" and w == invites[0][1]
               for m, w in out)
    assert not [m for m, w in out if isinstance(m, Request) and w == GATEWAY]
    h.feed(make_request("BYE", "sip:+14255550123@example.com", call_id="xfer@test", cseq=4,
                        to_tag=ok.to.params["tag"] if ok.to else None, branch="z9hG4bKbye4"))
    out = sent(h)
    assert [m.status for m, w in out if isinstance(m, Response) and w != GATEWAY] == [200]
    assert not [m for m, w in out if isinstance(m, Request) and m.method == "BYE"]
    assert len(h.mediation.calls) == 1  # type: ignore[attr-defined]
    h.clock.advance(10)  # no BYE of ours either: alice left on her own
    assert not [m for m, _w in sent(h) if isinstance(m, Request) and m.method == "BYE"]
    winner = invites[1][0]
    bye = (f"BYE sip:+14255550123@127.0.0.1 SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:6002;branch=z9hG4bKbobbye\r\nMax-Forwards: 70\r\n"
           f"From: {winner.headers.get('To')};tag=bobdev\r\nTo: {winner.headers.get('From')}\r\n"
           f"Call-ID: {winner.call_id}\r\nCSeq: 9 BYE\r\nContent-Length: 0\r\n\r\n").encode()
    h.feed(bye, source=("127.0.0.1", 6002))
    byes = [(m, w) for m, w in sent(h) if isinstance(m, Request) and m.method == "BYE"]
    assert [w for _m, w in byes] == [GATEWAY] and byes[0][0].call_id == to_gateway.call_id
    h.clock.advance(RECORD_DELAY)
    record = MediationStore(h.db).recent_cdrs()[0]
    assert record["transferred_to"] == "sip:bob@example.com"
    assert record["disposition"] == "completed"


def test_a_transfer_the_target_cannot_take_after_the_transferor_left_ends_the_call(
        h: Harness) -> None:
    """A transfer to a number whose only gateway is at its limit fails (202, then a
    final 503 NOTIFY) and the call goes on. Then alice transfers the phone to bob
    and hangs up at once (a blind transfer); both of bob's devices are busy, so
    the transfer fails and the phone party, with nobody left, gets a BYE."""
    _invite, ok, _to_gateway = established_call(h, "blind@test")
    out = _refer(h, ok, "blind@test", 3, "<sip:+14255550177@example.com;user=phone>")
    assert [m.status for m, w in out if isinstance(m, Response) and w != GATEWAY] == [202]
    assert _notified(out) == [b"SIP/2.0 100 Trying", b"SIP/2.0 503 Service Unavailable"]
    out = _refer(h, ok, "blind@test", 4, "<sip:bob@example.com>")
    assert [m.status for m, w in out if isinstance(m, Response) and w != GATEWAY] == [202]
    invites = [(m, w) for m, w in out if isinstance(m, Request) and m.method == "INVITE"]
    h.feed(make_request("BYE", "sip:+14255550123@example.com", call_id="blind@test", cseq=5,
                        to_tag=ok.to.params["tag"] if ok.to else None, branch="z9hG4bKbye5"))
    assert not [m for m, w in sent(h) if isinstance(m, Request) and m.method == "BYE"]
    for request, where in invites:
        reply(h, request, 486, where)
    byes = [w for m, w in sent(h) if isinstance(m, Request) and m.method == "BYE"]
    assert byes == [GATEWAY]  # the transfer failed: the phone party is released
    h.clock.advance(RECORD_DELAY)
    record = MediationStore(h.db).recent_cdrs()[0]
    assert record["transferred_to"] == ""
    assert record["attempts"].endswith("transfer:503,transfer:486")
    assert not h.mediation.calls  # type: ignore[attr-defined]


def test_a_trunk_set_to_pass_refer_gets_the_refer_and_its_notifies_reach_the_transferor(
        h: Harness) -> None:
    store = MediationStore(h.db)
    store.update_gateway(replace(store.gateway("gw"), refer="pass"))
    h.mediation.reload()  # type: ignore[attr-defined]
    _invite, ok, to_gateway = established_call(h, "pass@test")
    out = _refer(h, ok, "pass@test", 3, "<sip:+14255550177@example.com>")
    assert [m.status for m, w in out if isinstance(m, Response) and w != GATEWAY] == [202]
    (refer,) = [m for m, w in out if isinstance(m, Request) and w == GATEWAY]
    assert refer.method == "REFER" and refer.call_id == to_gateway.call_id
    assert (refer.headers.get("Refer-To") or "").startswith("<sip:+14255550177@127.0.0.1:5098")
    assert refer.headers.get("Referred-By") == "<sip:+14255550101@example.com>"
    _answer_with(h, refer, 202, [])
    our_from, their_to = to_gateway.headers.get("From"), to_gateway.headers.get("To")
    for cseq, state, frag in ((1, "active;expires=60", b"SIP/2.0 180 Ringing"),
                              (2, "terminated;reason=noresource", b"SIP/2.0 200 OK")):
        notify = (f"NOTIFY {to_gateway.headers.get('Contact').strip('<>')} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKgwn{cseq}\r\n"
                  f"Max-Forwards: 70\r\nFrom: {their_to};tag=dev\r\nTo: {our_from}\r\n"
                  f"Call-ID: {to_gateway.call_id}\r\nCSeq: {cseq} NOTIFY\r\n"
                  f"Event: refer\r\nSubscription-State: {state}\r\n"
                  f"Content-Type: message/sipfrag\r\nContent-Length: {len(frag) + 2}\r\n\r\n"
                  ).encode() + frag + b"\r\n"
        h.feed(notify, source=GATEWAY)
        out = sent(h)
        assert [m.status for m, w in out if isinstance(m, Response) and w == GATEWAY] == [200]
        assert _notified(out) == [frag]
    h.clock.advance(RECORD_DELAY)
    # the call goes on until the trunk's BYE: its record says so
    assert [r["disposition"] for r in MediationStore(h.db).recent_cdrs()] == [IN_PROGRESS]


def test_transfers_that_cannot_be_done_are_refused_with_the_reason(h: Harness) -> None:
    _invite, ok, to_gateway = established_call(h, "refuse@test")
    for refer_to, status in ((None, 400), ("<sip:carol@elsewhere.invalid>", 403),
                             ("<sip:nobody@example.com>", 404),
                             ("<mailto:bob@example.com>", 416)):
        out = _refer(h, ok, "refuse@test", 3 + status, refer_to)
        assert [m.status for m, w in out if isinstance(m, Response) and w != GATEWAY] == \
            [status], refer_to
        assert not _notified(out)
    # the phone party cannot transfer our user anywhere
    our_from, their_to = to_gateway.headers.get("From"), to_gateway.headers.get("To")
    refer = (f"REFER {to_gateway.headers.get('Contact').strip('<>')} SIP/2.0\r\n"
             f"Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKgwrefer\r\nMax-Forwards: 70\r\n"
             f"From: {their_to};tag=dev\r\nTo: {our_from}\r\nCall-ID: {to_gateway.call_id}\r\n"
             f"CSeq: 5 REFER\r\nContact: <sip:dev@127.0.0.1:5098>\r\n"
             f"Refer-To: <sip:+19005550100@127.0.0.1>\r\nContent-Length: 0\r\n\r\n").encode()
    h.feed(refer, source=GATEWAY)
    assert [m.status for m, w in sent(h) if isinstance(m, Response) and w == GATEWAY] == [403]
    assert len(h.mediation.calls) == 1  # type: ignore[attr-defined]


def test_a_gateway_that_changes_codec_in_a_reinvite_gets_an_answer_in_the_new_one(
        h: Harness) -> None:
    """The gateway re-INVITEs offering only PCMA (one of its profile's codecs): the
    answer moves to PCMA on the same port, alice's leg is left alone (the bridge
    transcodes); a re-offer with nothing we take gets 488 and the call goes on."""
    _invite, _ok, to_gateway = established_call(h, "recodec@test")
    our_from = to_gateway.headers.get("From")
    their_to = to_gateway.headers.get("To")

    def gateway_reinvite(cseq: int, media: bytes) -> Response:
        head = (f"INVITE {to_gateway.headers.get('Contact').strip('<>')} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKgwcodec{cseq}\r\n"
                f"Max-Forwards: 70\r\nFrom: {their_to};tag=dev\r\nTo: {our_from}\r\n"
                f"Call-ID: {to_gateway.call_id}\r\nCSeq: {cseq} INVITE\r\n"
                f"Contact: <sip:dev@127.0.0.1:5098>\r\nContent-Type: application/sdp\r\n")
        body = ANSWER.replace(b"o=dev 1 1", f"o=dev 1 {cseq}".encode()) \
            .replace(b"m=audio 41000 RTP/AVP 0 101\r\n", media)
        h.feed(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body,
               source=GATEWAY)
        out = sent(h)
        assert not [m for m, w in out if isinstance(m, Request) and w != GATEWAY]  # alice: nothing
        return next(m for m, w in out if isinstance(m, Response) and w == GATEWAY
                    and m.status >= 200)

    first = SessionDescription.parse(to_gateway.body).media[0].port
    moved = gateway_reinvite(2, b"m=audio 41000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n")
    assert moved.status == 200
    answer = SessionDescription.parse(moved.body)
    assert answer.media[0].formats[0] == "8" and answer.media[0].port == first
    (call,) = h.mediation.calls  # type: ignore[attr-defined]
    (leg,) = call.dialing
    assert leg.call.streams[0].codec.name == "PCMA"
    refused = gateway_reinvite(3, b"m=audio 41000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
    assert refused.status == 488
    assert leg.call.streams[0].codec.name == "PCMA"


def test_a_transfer_targets_early_media_replaces_our_ring_back_until_it_fails(
        h: Harness) -> None:
    """While bob's devices ring, one answers 183 with SDP (its own ring-back or an
    announcement): the phone party hears that device instead of our ring-back and
    alice is parked. That device then refuses (486): our ring-back and alice come
    back while the other device rings; its answer completes the transfer."""
    from mediation.media_bridge import GATEWAY as GATEWAY_SIDE
    from mediation.media_bridge import INTERNAL

    _invite, ok, _to_gateway = established_call(h, "early-xfer@test")
    (call,) = h.mediation.calls  # type: ignore[attr-defined]
    out = _refer(h, ok, "early-xfer@test", 3, "<sip:bob@example.com>")
    invites = [(m, w) for m, w in out if isinstance(m, Request) and m.method == "INVITE"]
    assert call.bridge.ringback[GATEWAY_SIDE] is not None  # our ring-back to the phone
    reply(h, invites[0][0], 183, invites[0][1], ANSWER, tag="dev1")
    sent(h)
    early = next(leg for leg in call.transfer.legs if leg.call.early_media)
    assert call.bridge.ringback[GATEWAY_SIDE] is None
    assert early.app is call.bridge.sides[INTERNAL]
    reply(h, invites[0][0], 486, invites[0][1], tag="dev1")
    sent(h)
    assert call.bridge.ringback[GATEWAY_SIDE] is not None and call.transfer.early is None
    reply(h, invites[1][0], 200, invites[1][1], ANSWER, tag="bobdev")
    assert _notified(sent(h)) == [b"SIP/2.0 200 OK"]
    assert call.transfer is None and call.bridge.ringback[GATEWAY_SIDE] is None


def test_reliable_provisionals_from_the_gateway_are_pracked_once_each_in_order(
        h: Harness) -> None:
    """RFC 3262 toward a gateway: our INVITE says Supported: 100rel; each reliable 1xx
    gets one PRACK in its early dialog (RAck = RSeq, the INVITE's CSeq); resends and a
    response that overtook a missing one are dropped (no PRACK, nothing to the caller);
    the call's later requests go above the PRACKs' CSeqs."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "prack@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert "100rel" in to_gateway.headers.tokens("Supported")
    assert to_gateway.cseq is not None
    invite_cseq = to_gateway.cseq.number

    def reliable(status: int, rseq: int, body: bytes = b"") -> list[
            tuple[Request | Response, tuple[str, int]]]:
        _answer_with(h, to_gateway, status, [("Require", "100rel"), ("RSeq", str(rseq))],
                     body)
        return sent(h)

    out = reliable(183, 7, ANSWER)
    pracks = [m for m, w in out if isinstance(m, Request) and w == GATEWAY]
    assert [p.method for p in pracks] == ["PRACK"]
    prack = pracks[0]
    assert prack.headers.get("RAck") == f"7 {invite_cseq} INVITE"
    assert prack.cseq is not None and prack.cseq.number == invite_cseq + 1
    assert prack.to is not None and prack.to.tag == "dev"
    assert str(prack.uri) == f"sip:dev@{GATEWAY[0]}:{GATEWAY[1]}"  # the 183's Contact
    assert [m.status for m, w in out if isinstance(m, Response) and w != GATEWAY] == [183]
    h.feed(bytes(make_response(prack, 200, "OK")), source=GATEWAY)

    assert reliable(183, 7, ANSWER) == []  # the gateway resent it: already taken
    assert reliable(180, 9) == []  # 8 is missing: not taken, the gateway resends it
    out = reliable(180, 8)
    second = [m for m, w in out if isinstance(m, Request) and w == GATEWAY]
    assert [p.headers.get("RAck") for p in second] == [f"8 {invite_cseq} INVITE"]
    assert second[0].cseq is not None and second[0].cseq.number == invite_cseq + 2

    _answer_with(h, to_gateway, 200, [], ANSWER)
    out = sent(h)
    ack = next(m for m, w in out if isinstance(m, Request) and m.method == "ACK")
    assert ack.cseq is not None and ack.cseq.number == invite_cseq
    ok = next(m for m, w in out if isinstance(m, Response) and w != GATEWAY
              and m.status == 200)
    to_tag = ok.to.params["tag"] if ok.to else None
    h.feed(make_request("ACK", "sip:+14255550123@example.com", call_id="prack@test", cseq=2,
                        to_tag=to_tag, branch="z9hG4bKack1"))
    h.feed(make_request("BYE", "sip:+14255550123@example.com", call_id="prack@test", cseq=3,
                        to_tag=to_tag, branch="z9hG4bKbye1"))
    bye = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert bye.method == "BYE" and bye.cseq is not None
    assert bye.cseq.number == invite_cseq + 3  # above both PRACKs


def _alice_hangs_up(h: Harness, ok: Response, call_id: str) -> None:
    h.feed(make_request("BYE", "sip:+14255550123@example.com", call_id=call_id, cseq=9,
                        to_tag=ok.to.params["tag"] if ok.to else None, branch="z9hG4bKbye9"))


def test_an_answered_call_is_on_record_while_it_lasts_and_its_end_completes_that_row(
        h: Harness) -> None:
    """A process killed mid-call must not lose the call: its record is written at the
    answer (in progress), its last-seen time kept fresh, and the end replaces it."""
    mediation: Mediation = h.mediation  # type: ignore[attr-defined]
    store = MediationStore(h.db)
    _invite, ok, _to_gateway = established_call(h, "long@test")
    h.clock.advance(RECORD_DELAY)
    (row,) = store.recent_cdrs()
    assert row["disposition"] == IN_PROGRESS and row["answered_at"] is not None
    assert row["ended_at"] == row["answered_at"]
    h.clock.advance(RECORD_HEARTBEAT)
    mediation.touch_records()  # what the role's heartbeat runs
    h.clock.advance(RECORD_DELAY)
    (row,) = store.recent_cdrs()
    assert row["disposition"] == IN_PROGRESS
    assert row["ended_at"] == pytest.approx(row["answered_at"] + RECORD_HEARTBEAT + RECORD_DELAY)
    _alice_hangs_up(h, ok, "long@test")
    h.clock.advance(RECORD_DELAY)
    (row,) = store.recent_cdrs()  # the same row, completed
    assert row["disposition"] == "completed" and row["sip_status"] == 200
    mediation.touch_records()
    h.clock.advance(RECORD_DELAY)
    (row,) = store.recent_cdrs()
    assert row["disposition"] == "completed"  # an ended call is not touched


def test_a_call_ended_before_its_answer_was_written_is_written_once(h: Harness) -> None:
    mediation: Mediation = h.mediation  # type: ignore[attr-defined]
    store = mediation.store
    real = store.add_cdrs
    tried: list[list[str]] = []

    def refused(records: list[dict[str, object]]) -> None:
        tried.append([str(r["disposition"]) for r in records])
        raise StorageUnavailable("database or disk is full")

    store.add_cdrs = refused  # type: ignore[method-assign]
    _invite, ok, _to_gateway = established_call(h, "short@test")
    h.clock.advance(RECORD_DELAY)
    assert tried == [[IN_PROGRESS]]
    _alice_hangs_up(h, ok, "short@test")  # ends while the answer's row waits
    store.add_cdrs = real  # type: ignore[method-assign]
    h.clock.advance(RECORD_RETRY)
    rows = MediationStore(h.db).recent_cdrs()
    assert [r["disposition"] for r in rows] == ["completed"]


def _gateway_request(to_gateway: Request, method: str, cseq: int, branch: str,
                     body: bytes = b"") -> bytes:
    """A request the gateway sends in its dialog with us (our From and To swapped)."""
    head = (f"{method} {to_gateway.headers.get('Contact').strip('<>')} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5098;branch={branch}\r\nMax-Forwards: 70\r\n"
            f"From: {to_gateway.headers.get('To')};tag=dev\r\n"
            f"To: {to_gateway.headers.get('From')}\r\nCall-ID: {to_gateway.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContact: <sip:dev@127.0.0.1:5098>\r\n")
    if body:
        head += "Content-Type: application/sdp\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_reinvites_that_cross_ours_get_491_on_either_leg(h: Harness) -> None:
    """RFC 3261 §14.2: while our re-INVITE waits for its answer, the peer's own
    re-INVITE in that dialog is refused with 491 Request Pending, on the leg we placed
    (the gateway's) and on the leg we answered (alice's)."""
    _invite, ok, to_gateway = established_call(h, "cross@test")
    to_tag = ok.to.params["tag"] if ok.to else None
    hold = OFFER.replace(b"o=alice 1 1", b"o=alice 1 3") + b"a=sendonly\r\n"
    h.feed(make_request("INVITE", "sip:+14255550123@example.com", call_id="cross@test",
                        cseq=3, to_tag=to_tag, branch="z9hG4bKx3", body=hold))
    ours = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert ours.method == "INVITE"
    theirs = ANSWER.replace(b"o=dev 1 1", b"o=dev 1 2") + b"a=inactive\r\n"
    h.feed(_gateway_request(to_gateway, "INVITE", 1, "z9hG4bKgwx1", theirs), source=GATEWAY)
    [refused] = [m for m, w in sent(h) if isinstance(m, Response) and w == GATEWAY]
    assert refused.status == 491
    reply(h, ours, 200, GATEWAY, ANSWER + b"a=recvonly\r\n")
    sent(h)
    h.feed(make_request("ACK", "sip:+14255550123@example.com", call_id="cross@test", cseq=3,
                        to_tag=to_tag, branch="z9hG4bKxack3"))
    # the gateway holds now: we re-INVITE alice, and her re-INVITE crosses ours
    h.feed(_gateway_request(to_gateway, "INVITE", 2, "z9hG4bKgwx2", theirs), source=GATEWAY)
    to_alice = next(m for m, w in sent(h) if isinstance(m, Request) and w != GATEWAY)
    assert to_alice.method == "INVITE"
    resume = OFFER.replace(b"o=alice 1 1", b"o=alice 1 4")
    h.feed(make_request("INVITE", "sip:+14255550123@example.com", call_id="cross@test",
                        cseq=4, to_tag=to_tag, branch="z9hG4bKx4", body=resume))
    assert [m.status for m, w in sent(h) if isinstance(m, Response) and w != GATEWAY] == [491]


def test_a_method_the_placed_leg_does_not_take_gets_405_with_allow(h: Harness) -> None:
    _invite, _ok, to_gateway = established_call(h, "allow@test")
    h.feed(_gateway_request(to_gateway, "SUBSCRIBE", 2, "z9hG4bKsub"), source=GATEWAY)
    [answer] = [m for m, w in sent(h) if isinstance(m, Response) and w == GATEWAY]
    assert answer.status == 405
    assert "INVITE" in (answer.headers.get("Allow") or "")


def test_either_kind_of_call_answers_in_dialog_requests_alike(h: Harness) -> None:
    """One dispatcher for the call we answered (alice's) and the call we placed (the
    gateway's): the same answer to OPTIONS, an empty INFO, an INFO that is not DTMF,
    and a method neither takes."""
    _invite, ok, to_gateway = established_call(h, "alike@test")
    to_tag = ok.to.params["tag"] if ok.to else None
    sent(h)
    tried = (("OPTIONS", b"", None), ("INFO", b"", None),
             ("INFO", b"hello", "text/plain"), ("SUBSCRIBE", b"", None))
    answers: dict[str, list[tuple[int, str]]] = {"answered": [], "placed": []}
    for n, (method, body, ctype) in enumerate(tried):
        extra = [("Content-Type", ctype)] if ctype else []
        h.feed(make_request(method, "sip:+14255550123@example.com", call_id="alike@test",
                            cseq=10 + n, to_tag=to_tag, branch=f"z9hG4bKal{n}", body=body,
                            extra=extra))
        raw = _gateway_request(to_gateway, method, 10 + n, f"z9hG4bKgal{n}")
        if body:
            raw = raw.replace(b"Content-Length: 0\r\n\r\n", (
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                + body)
        h.feed(raw, source=GATEWAY)
        for message, where in sent(h):
            if isinstance(message, Response):
                side = "placed" if where == GATEWAY else "answered"
                answers[side].append((message.status, message.headers.get("Allow") or ""))
    assert answers["answered"] == answers["placed"]
    assert [status for status, _ in answers["placed"]] == [200, 200, 415, 405]
    assert "INVITE" in answers["placed"][-1][1]


def test_a_call_the_server_places_for_a_user_gets_that_users_policy_unchallenged(
        h: Harness) -> None:
    """A meeting dials a number for alice: the INVITE comes from the meeting (From
    conf-...) with the outbound gate's vouching header, and mediation routes it with
    alice's policy and records her as the caller; without that header, or with one
    that does not verify, the same INVITE is challenged like anyone's."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    placement = h.app.gate.place("sip:alice@example.com", parse_uri("tel:+14255550123"),
                                 "dialOut in meeting 7654321")
    assert isinstance(placement, Placement) and placement.vouch is not None

    def from_the_meeting(call_id: str, vouched: bool, forged: bool = False) -> None:
        request = make_request("INVITE", str(placement.uri), body=OFFER, call_id=call_id,
                               branch=f"z9hG4bK{call_id.split('@')[0]}")
        request.headers.set("From", "<sip:conf-7654321@example.com>;tag=meet")
        request.validate()
        if vouched:
            name, value = placement.vouch(request)  # type: ignore[misc]
            request.headers.add(name, value[:-4] + "beef" if forged else value)
        h.feed(request)

    from_the_meeting("vouched@test", vouched=True)
    out = sent(h)
    assert [m.method for m, w in out if isinstance(m, Request) and w == GATEWAY] == ["INVITE"]
    assert not [m for m, _w in out if isinstance(m, Response) and m.status >= 400]
    call = next(iter(h.mediation.calls))  # type: ignore[attr-defined]
    assert call.record.caller == "sip:alice@example.com"
    for call_id, forged in (("plain@test", False), ("forged@test", True)):
        from_the_meeting(call_id, vouched=forged, forged=forged)
        statuses = [m.status for m, _w in sent(h) if isinstance(m, Response)]
        assert statuses[-1] == 401


def test_no_media_port_for_the_gateway_leg_is_our_shortage_not_the_gateways(
        h: Harness) -> None:
    """With one RTP port left, alice's own leg takes it and the gateway leg finds none:
    alice gets 503 with Retry-After, nothing is sent to the gateway, and the gateway's
    health is untouched (a flood of calls must not mark a healthy gateway down)."""
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    while h.ports.in_use < 49:
        h.ports.allocate()
    mediation = h.mediation  # type: ignore[attr-defined]
    mediation.reload()
    before = vars(mediation.health["gw"]).copy()
    authenticated_invite(h, "+14255550123", "short@test")
    out = sent(h)
    assert not [m for m, w in out if isinstance(m, Request) and w == GATEWAY]
    final = [m for m, _w in out if isinstance(m, Response) and m.status >= 200][-1]
    assert final.status == 503 and final.headers.get("Retry-After") == "5"
    assert vars(mediation.health["gw"]) == before
    assert mediation.active.get("gw", 0) == 0


def test_sdes_keys_go_over_udp_only_when_the_gateway_is_set_to_allow_it(h: Harness) -> None:
    store = MediationStore(h.db)
    store.update_gateway(replace(store.gateway("gw"), srtp="optional"))
    h.mediation.reload()  # type: ignore[attr-defined]
    h.users.add("sip:alice@example.com", "alice-secret", "Alice", phone="+14255550101")
    authenticated_invite(h, "+14255550123", "clear@test")
    to_gateway = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY)
    assert b"a=crypto" not in to_gateway.body and b"RTP/AVP" in to_gateway.body


def test_a_gateway_is_its_transport_address_and_port(h: Harness) -> None:
    """The gateway's address on another port, or over another transport, is not the
    gateway: its INVITE is an ordinary caller's (here, one who did not sign in)."""
    m = h.mediation  # type: ignore[attr-defined]
    assert m.gateway_for(Target("udp", *GATEWAY)) is not None
    assert m.gateway_for(Target("udp", GATEWAY[0], GATEWAY[1] + 1)) is None
    assert m.gateway_for(Target("tcp", *GATEWAY)) is None
    store = MediationStore(h.db)
    store.update_gateway(replace(store.gateway("gw"), transport="tcp"))
    m.reload()
    # a TCP connection the gateway opened itself comes from a port of its choosing:
    # the address alone does not make it the gateway...
    assert m.gateway_for(Target("tcp", GATEWAY[0], 41234)) is None
    store.update_gateway(replace(store.gateway("gw"), transport="tcp", inbound_auth="digest",
                                 inbound_username="gw", inbound_password="gw-secret-1"))
    m.reload()
    # ... unless something else proves it (here digest, challenged first)
    assert m.gateway_for(Target("tcp", GATEWAY[0], 41234)) is not None


def test_a_gateway_set_to_digest_must_answer_the_challenge(h: Harness) -> None:
    store = MediationStore(h.db)
    store.update_gateway(replace(store.gateway("gw"), inbound_auth="digest",
                                 inbound_username="gw", inbound_password="gw-secret-1"))
    h.mediation.reload()  # type: ignore[attr-defined]
    invite = make_request("INVITE", "sip:+14255550102@example.com", body=OFFER,
                          call_id="gwauth@test", via_host="127.0.0.1:5098")
    h.feed(invite, source=GATEWAY)
    [challenge] = [m for m, _w in sent(h) if isinstance(m, Response) and m.status >= 200]
    assert challenge.status == 401
    wrong = authorize(make_request("INVITE", "sip:+14255550102@example.com", body=OFFER,
                                   call_id="gwauth@test", cseq=2, branch="z9hG4bKgw2",
                                   via_host="127.0.0.1:5098"), challenge, "gw", "not-it")
    h.feed(wrong, source=GATEWAY)
    assert [m.status for m, _w in sent(h) if isinstance(m, Response) and m.status >= 200] \
        == [403]
    right = authorize(make_request("INVITE", "sip:+14255550102@example.com", body=OFFER,
                                   call_id="gwauth2@test", cseq=3, branch="z9hG4bKgw3",
                                   via_host="127.0.0.1:5098"), challenge, "gw", "gw-secret-1")
    h.feed(right, source=GATEWAY)
    forked = [m for m, w in sent(h) if isinstance(m, Request) and m.method == "INVITE"]
    assert len(forked) == 2  # bob's two devices ring: the gateway's call went through
