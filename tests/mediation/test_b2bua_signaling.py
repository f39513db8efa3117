"""Mediation's call handling in memory (the real endpoint and application on a
``task.Clock``, a fake wire): forking a PSTN call to every device of a user, gateway
recognition, refusals, cancel, the concurrency limit and OPTIONS health probes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sqlalchemy.exc import OperationalError

from confserver.sip.message import Request, Response
from confserver.sip.transaction import make_response
from confserver.storage.access_numbers import AccessNumberDirectory
from confserver.storage.bindings import BindingRecord
from mediation.b2bua import RECORD_DELAY, RECORD_RETRY, GatewayRouter, Mediation, OutboundRouter
from mediation.gateways import from_profile
from mediation.rates import ALWAYS
from mediation.routing import Route
from mediation.store import MediationStore
from mediation.trunks import GatewayProber
from tests.harness import OFFER, Harness, authorize, make_request

GATEWAY = ("127.0.0.1", 5098)
ANSWER = (b"v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
          b"m=audio 41000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.users.add("sip:bob@example.com", "bob-secret-1", "Bob", phone="+14255550102",
                      extension="4002")
    now = harness.clock.seconds()
    harness.bindings.apply("sip:bob@example.com", [
        BindingRecord("sip:bob@example.com", f"<sip:bob@127.0.0.1:{port}>", now + 3600,
                      f"reg{port}", 1, None, "udp", f"127.0.0.1:{port}")
        for port in (6001, 6002)], [], now)
    store = MediationStore(harness.db, clock=harness.clock.seconds)
    store.add_gateway(from_profile("gw", "generic-sip", {
        "host": GATEWAY[0], "port": GATEWAY[1], "max_calls": 1, "probe_interval": 0}))
    store.add_policy("local", ("local",), default=True)
    store.add_route(Route("all", r"\+.*", ("local",), ("gw",)))
    store.import_rates("gw", [("1", 0.01, ALWAYS)])
    mediation = Mediation(harness.app, store, harness.users, AccessNumberDirectory(harness.db),
                          harness.bindings, harness.registrar,
                          wall_clock=harness.clock.seconds)
    harness.app.routers.insert(0, GatewayRouter(mediation))
    harness.app.routers.append(OutboundRouter(mediation))
    harness.mediation = mediation  # type: ignore[attr-defined]
    return harness


def sent(h: Harness) -> list[tuple[Request | Response, tuple[str, int]]]:
    from confserver.sip.message import parse_message

    out = []
    for data, target in h.wire["udp"].sent:
        message = parse_message(data)
        message.validate()
        out.append((message, (target.host, target.port)))
    h.wire["udp"].sent.clear()
    return out


def reply(h: Harness, request: Request, status: int, source: tuple[str, int],
          body: bytes = b"", tag: str = "dev") -> None:
    response = make_response(request, status, "X", tag)
    response.headers.add("Contact", f"<sip:dev@{source[0]}:{source[1]}>")
    if body:
        response.headers.add("Content-Type", "application/sdp")
    response.body = body
    h.feed(bytes(response), source=source)


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


def authenticated_invite(h: Harness, number: str, call_id: str) -> Request:
    request = make_request("INVITE", f"sip:{number}@example.com", body=OFFER, call_id=call_id,
                           branch=f"z9hG4bK{call_id.split('@')[0]}a")
    h.feed(request)
    challenge = [m for m, _w in sent(h) if isinstance(m, Response)][-1]
    assert challenge.status == 401
    again = make_request("INVITE", f"sip:{number}@example.com", body=OFFER, call_id=call_id,
                         branch=f"z9hG4bK{call_id.split('@')[0]}b", cseq=2)
    again = authorize(again, challenge, "alice", "alice-secret")
    h.feed(again)
    return again


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
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

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
    """What the bridge reads of a media session, for pulling frames by hand."""

    dtmf_in_burst = False

    def __init__(self, stream: object) -> None:
        self.stream = stream


def test_a_plain_180_gives_the_caller_a_local_ring_back_until_the_answer(h: Harness) -> None:
    """No media from the far end while it rings: the caller gets a 183 with our answer
    (the gateway's codec first, so the call can relay) and hears the gateway's ring-back
    (US: 440 + 480 Hz); the answer stops it and the 200 repeats the same SDP."""
    from confserver.media.codecs.g711 import Pcmu
    from confserver.media.stream import AudioStream
    from mediation.b2bua import INTERNAL

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
