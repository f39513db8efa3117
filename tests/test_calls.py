"""Calls to the built-in services through the real endpoint, driven by task.Clock."""

from __future__ import annotations

from confserver.sip.message import Request, Response
from confserver.sip.sdp import SessionDescription

from .harness import OFFER, Harness, ack, make_request


def invite_echo(h: Harness, extra: list[tuple[str, str]] | None = None,
                user: str = "echo", call_id: str = "c1@test") -> Response:
    h.feed(make_request("INVITE", f"sip:{user}@example.com", body=OFFER, extra=extra,
                        call_id=call_id))
    finals = [r for r in h.responses() if r.status >= 180]
    return finals[-1]




def test_echo_answers_with_sdp_and_hangs_up_on_bye() -> None:
    h = Harness()
    ok = invite_echo(h)
    assert ok.status == 200 and ok.to_tag
    answer = SessionDescription.parse(ok.body)
    assert answer.media[0].formats == ["0", "101"]  # PCMU preferred among offered, plus DTMF
    assert answer.media[0].direction == "sendrecv"
    assert 20000 <= answer.media[0].port <= 20100
    assert h.ports.in_use == 1
    ack(h, ok)
    h.feed(make_request("BYE", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKbye", cseq=2,
                        to="sip:echo@example.com", to_tag=ok.to_tag))
    [bye_ok] = h.responses()
    assert bye_ok.status == 200
    assert h.app.calls == {} and h.ports.in_use == 0


def test_invite_retransmission_is_absorbed() -> None:
    h = Harness()
    request = make_request("INVITE", "sip:echo@example.com", body=OFFER)
    h.feed(request)
    first = h.responses()
    h.feed(request)
    again = h.responses()
    assert [r.status for r in first] == [200]
    assert [r.status for r in again] == []  # 2xx already sent; retransmitted by timer G2xx
    h.clock.advance(0.5)
    assert [r.status for r in h.responses()] == [200]
    assert len(h.app.calls) == 1


def test_2xx_retransmission_stops_on_ack() -> None:
    h = Harness()
    ok = invite_echo(h)
    ack(h, ok)
    h.clock.advance(10)
    assert h.responses() == []


def test_missing_ack_ends_call_with_bye() -> None:
    h = Harness()
    invite_echo(h)
    h.clock.advance(33)
    sent = h.take()
    byes = [m for m in sent if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 1 and h.app.calls == {}


def test_cancel_while_ringing_gives_487_and_200() -> None:
    h = Harness()
    invite = make_request("INVITE", "sip:noanswer@example.com", body=OFFER)
    h.feed(invite)
    assert [r.status for r in h.responses()] == [180]
    cancel = make_request("CANCEL", "sip:noanswer@example.com", contact=False)
    h.feed(cancel)
    statuses = sorted((r.cseq.method if r.cseq else "", r.status) for r in h.responses())
    assert statuses == [("CANCEL", 200), ("INVITE", 487)]
    assert h.app.calls == {} and h.ports.in_use == 0
    h.feed(make_request("ACK", "sip:noanswer@example.com", contact=False))
    h.clock.advance(40)
    assert h.responses() == []  # the 487 was acknowledged: no retransmission


def test_cancel_after_answer_only_gets_200() -> None:
    h = Harness()
    invite_echo(h)
    h.feed(make_request("CANCEL", "sip:echo@example.com", contact=False))
    assert [(r.cseq.method if r.cseq else "", r.status) for r in h.responses()] == [("CANCEL", 200)]
    assert len(h.app.calls) == 1


def test_cancel_without_invite_gets_481() -> None:
    h = Harness()
    h.feed(make_request("CANCEL", "sip:echo@example.com", contact=False, branch="z9hG4bKnone"))
    assert [r.status for r in h.responses()] == [481]


def test_noanswer_times_out_with_480() -> None:
    h = Harness()
    h.feed(make_request("INVITE", "sip:noanswer@example.com", body=OFFER))
    h.responses()
    h.clock.advance(121)
    assert [r.status for r in h.responses()] == [480]
    assert h.app.calls == {}


def test_reinvite_hold_and_resume() -> None:
    h = Harness()
    ok = invite_echo(h)
    ack(h, ok)
    hold = OFFER.replace(b"o=alice 1 1", b"o=alice 1 2") + b"a=sendonly\r\n"
    h.feed(make_request("INVITE", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKre1",
                        cseq=2, to="sip:echo@example.com", to_tag=ok.to_tag, body=hold))
    [held] = h.responses()
    assert held.status == 200
    assert SessionDescription.parse(held.body).media[0].direction == "recvonly"
    call = next(iter(h.app.calls.values()))
    assert call.on_hold
    ack(h, held)
    h.feed(make_request("INVITE", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKre2",
                        cseq=3, to="sip:echo@example.com", to_tag=ok.to_tag, body=OFFER))
    [resumed] = h.responses()
    assert SessionDescription.parse(resumed.body).media[0].direction == "sendrecv"
    assert not call.on_hold
    answer_versions = [SessionDescription.parse(r.body).origin.version for r in (ok, held, resumed)]
    assert answer_versions == [1, 2, 3]


def test_out_of_order_cseq_gets_500() -> None:
    h = Harness()
    ok = invite_echo(h)
    ack(h, ok)
    h.feed(make_request("INFO", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKi1", cseq=5,
                        to="sip:echo@example.com", to_tag=ok.to_tag))
    h.feed(make_request("INFO", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKi2", cseq=4,
                        to="sip:echo@example.com", to_tag=ok.to_tag))
    assert [r.status for r in h.responses()] == [200, 500]


def test_session_timer_uac_refresher_expires_without_refresh() -> None:
    h = Harness()
    ok = invite_echo(h, [("Supported", "timer"), ("Session-Expires", "90;refresher=uac")])
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    ack(h, ok)
    h.clock.advance(59)
    assert h.take() == []
    h.clock.advance(2)  # 90 - min(32, 90/3) = 60 s
    byes = [m for m in h.take() if isinstance(m, Request) and m.method == "BYE"]
    assert len(byes) == 1 and h.app.calls == {}


def test_session_timer_refresh_by_uac_keeps_call() -> None:
    h = Harness()
    ok = invite_echo(h, [("Supported", "timer"), ("Session-Expires", "90;refresher=uac")])
    ack(h, ok)
    h.clock.advance(45)
    h.feed(make_request("UPDATE", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKu1", cseq=2,
                        to="sip:echo@example.com", to_tag=ok.to_tag,
                        extra=[("Supported", "timer"), ("Session-Expires", "90;refresher=uac")]))
    assert [r.status for r in h.responses()] == [200]
    h.clock.advance(45)
    assert len(h.app.calls) == 1


def test_session_interval_too_small_gets_422() -> None:
    h = Harness()
    h.feed(make_request("INVITE", "sip:echo@example.com", body=OFFER,
                        extra=[("Supported", "timer"), ("Session-Expires", "30")]))
    [resp] = h.responses()
    assert resp.status == 422 and resp.headers.get("Min-SE") == "90"


def test_uas_refresher_sends_reinvite_and_acks_it() -> None:
    h = Harness()
    ok = invite_echo(h)  # no timer asked: we run 1800 s and refresh ourselves
    assert ok.headers.get("Session-Expires") == "1800;refresher=uas"
    ack(h, ok)
    h.clock.advance(900)
    [refresh] = [m for m in h.take() if isinstance(m, Request)]
    assert refresh.method == "INVITE" and refresh.to_tag == "ft1"
    assert refresh.uri is not None and str(refresh.uri) == "sip:alice@127.0.0.1:5099"
    reply = Response(headers=refresh.headers.copy(), status=200, reason="OK")
    reply.headers.add("Contact", "<sip:alice@127.0.0.1:5099>")
    h.feed(reply)
    acks = [m for m in h.take() if isinstance(m, Request) and m.method == "ACK"]
    assert len(acks) == 1 and acks[0].cseq == refresh.cseq.__class__(refresh.cseq.number, "ACK")


def test_unknown_user_404_and_existing_user_480() -> None:
    h = Harness()
    h.users.add("sip:bob@example.com", "bob-password")
    h.feed(make_request("INVITE", "sip:nobody@example.com", body=OFFER))
    h.feed(make_request("INVITE", "sip:bob@example.com", body=OFFER, branch="z9hG4bKb",
                        call_id="c2@test"))
    assert [r.status for r in h.responses()] == [404, 480]


def test_offerless_invite_gets_offer_and_answer_in_ack() -> None:
    h = Harness()
    h.feed(make_request("INVITE", "sip:echo@example.com"))
    [ok] = h.responses()
    offer = SessionDescription.parse(ok.body)
    assert offer.media[0].kind == "audio"
    h.feed(make_request("ACK", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKack",
                        to="sip:echo@example.com", to_tag=ok.to_tag, body=OFFER))
    call = next(iter(h.app.calls.values()))
    assert call.state == "confirmed" and call.remote_sdp is not None


def test_bad_sdp_gets_488() -> None:
    h = Harness()
    h.feed(make_request("INVITE", "sip:echo@example.com", body=b"garbage"))
    [resp] = h.responses()
    assert resp.status == 488 and h.ports.in_use == 0


def test_no_common_codec_gets_488() -> None:
    h = Harness()
    g729 = OFFER.replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18")
    h.feed(make_request("INVITE", "sip:echo@example.com", body=g729))
    [resp] = h.responses()
    assert resp.status == 488 and h.ports.in_use == 0


def test_media_ports_exhausted_gives_503() -> None:
    h = Harness()
    for i in range(50):
        h.feed(make_request("INVITE", "sip:echo@example.com", body=OFFER, branch=f"z9hG4bK{i}",
                            call_id=f"c{i}@t"))
    h.responses()
    h.feed(make_request("INVITE", "sip:echo@example.com", body=OFFER, branch="z9hG4bKlast",
                        call_id="last@t"))
    [resp] = h.responses()
    assert resp.status == 503 and resp.headers.get("Retry-After")


def test_transport_failure_does_not_crash() -> None:
    h = Harness()
    h.wire["udp"].fail = True
    h.feed(make_request("OPTIONS", "sip:example.com"))
    h.wire["udp"].fail = False
    assert h.endpoint.transaction_counts["server"] == 0


def test_options_lists_capabilities() -> None:
    h = Harness()
    h.feed(make_request("OPTIONS", "sip:example.com"))
    [resp] = h.responses()
    assert resp.status == 200
    assert "INVITE" in (resp.headers.get("Allow") or "")
    assert "timer" in (resp.headers.get("Supported") or "")


def test_codec_preference_is_configurable() -> None:
    from dataclasses import replace

    from confserver.sip.sdp import codecs_in_order

    h = Harness()
    h.app.call_settings = replace(h.app.call_settings, codecs=codecs_in_order(("PCMA", "PCMU")))
    ok = invite_echo(h)
    assert SessionDescription.parse(ok.body).media[0].formats[0] == "8"  # PCMA first now


def test_dtmf_sent_as_sip_info() -> None:
    h = Harness()
    ok = invite_echo(h)
    ack(h, ok)
    call = next(iter(h.app.calls.values()))
    call.send_dtmf("5", "info")
    [info] = [m for m in h.take() if isinstance(m, Request)]
    assert info.method == "INFO" and info.headers.get("Content-Type") == "application/dtmf-relay"
    assert info.body.startswith(b"Signal=5")


def test_info_dtmf_reaches_the_dtmf_service() -> None:
    h = Harness()
    h.feed(make_request("INVITE", "sip:dtmf@example.com", body=OFFER))
    [ok] = [r for r in h.responses() if r.status == 200]
    ack(h, ok)
    call = next(iter(h.app.calls.values()))
    from confserver.adapters.calls.services import DtmfSinkApp

    call.media_app = DtmfSinkApp("c1")  # the harness runs without a media engine
    h.feed(make_request("INFO", "sip:switchboard@127.0.0.1:5060", branch="z9hG4bKinfo", cseq=2,
                        to="sip:dtmf@example.com", to_tag=ok.to_tag,
                        extra=[("Content-Type", "application/dtmf-relay")],
                        body=b"Signal=#\r\nDuration=160\r\n"))
    assert [r.status for r in h.responses()] == [200]
    assert call.media_app.digits == [("#", "info")]  # type: ignore[union-attr]


def test_the_test_services_are_for_signed_in_users_outside_their_public_networks() -> None:
    """A stranger from outside ``[services] public`` is refused; one of our users is
    challenged first; from a public network anyone is answered."""
    from confserver.adapters.calls.application import AppSettings

    h = Harness()
    h.app.settings = AppSettings("example.com", public_services=("127.0.0.1/32",))
    stranger = make_request("INVITE", "sip:noanswer@example.com", body=OFFER,
                            call_id="s1@test").__bytes__().replace(
        b"sip:alice@example.com", b"sip:mallory@evil.example")
    h.feed(stranger, source=("127.0.0.66", 5099))
    assert [r.status for r in h.responses() if r.status >= 200] == [403]
    h.feed(make_request("INVITE", "sip:echo@example.com", body=OFFER, call_id="s2@test",
                        branch="z9hG4bKs2"), source=("127.0.0.67", 5099))
    assert [r.status for r in h.responses() if r.status >= 200] == [401]
    h.feed(make_request("INVITE", "sip:echo@example.com", body=OFFER, call_id="s3@test",
                        branch="z9hG4bKs3"))  # from 127.0.0.1, public here
    assert [r.status for r in h.responses() if r.status >= 200] == [200]


def test_calls_nobody_vouched_for_are_limited_per_source() -> None:
    h = Harness()
    for n in range(10):
        h.feed(make_request("INVITE", "sip:noanswer@example.com", body=OFFER,
                            call_id=f"n{n}@test", branch=f"z9hG4bKn{n}"))
    assert {r.status for r in h.responses()} == {180}
    h.feed(make_request("INVITE", "sip:noanswer@example.com", body=OFFER, call_id="n10@test",
                        branch="z9hG4bKn10"))
    [refused] = [r for r in h.responses() if r.status >= 200]
    assert refused.status == 503 and refused.headers.get("Retry-After")
    assert h.ports.in_use == 10
    h.feed(make_request("INVITE", "sip:noanswer@example.com", body=OFFER, call_id="o1@test",
                        branch="z9hG4bKo1"), source=("127.0.0.2", 5099))  # another address
    assert [r.status for r in h.responses()] == [180]
    h.clock.advance(121)  # the ring timeout ends them all: the count comes back
    h.take()
    assert h.app.call_limits.unknown == 0 and h.ports.in_use == 0


def test_a_strangers_refusal_is_sent_once_and_kept_nowhere() -> None:
    """Out-of-dialog refusals to an address nobody signed in from are stateless
    (Kamailio's sl_send_reply): one answer per request received, no transaction left
    to retransmit, so a flood with forged sources is neither stored nor amplified."""
    from confserver.adapters.calls.application import AppSettings
    from confserver.limits.buckets import RateLimiter
    from confserver.limits.requests import RequestLimits

    h = Harness()
    h.app.settings = AppSettings("example.com")  # the test services: signed-in users only
    h.endpoint.limits = RequestLimits(RateLimiter(1000, 1000), RateLimiter(1000, 1000))
    invite = make_request("INVITE", "sip:noanswer@example.com", body=OFFER, call_id="x1@test")
    h.feed(invite, source=("127.0.0.66", 5099))
    assert [r.status for r in h.responses()] == [401]
    assert not h.endpoint._server and h.endpoint.stats["stateless"] == 1
    h.clock.advance(40)  # timer G would have retransmitted a stateful 401 six times
    assert h.responses() == []
    h.feed(invite, source=("127.0.0.66", 5099))  # a retransmission is answered afresh
    assert [r.status for r in h.responses()] == [401]
    # an in-dialog request, and anything from a trusted source, keeps its transaction
    h.endpoint.limits = RequestLimits(RateLimiter(1000, 1000), RateLimiter(1000, 1000),
                                      trusted=["127.0.0.66/32"])
    h.feed(make_request("INVITE", "sip:noanswer@example.com", body=OFFER, call_id="x2@test",
                        branch="z9hG4bKx2"), source=("127.0.0.66", 5099))
    assert [r.status for r in h.responses()] == [401]
    h.clock.advance(0.6)
    assert [r.status for r in h.responses()] == [401]  # retransmitted until ACKed
