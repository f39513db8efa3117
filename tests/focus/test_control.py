"""C3P-style control requests: parsing, refusals with reasons, and their effects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from confserver.focus.conference import Conference, MeetingInfo
from confserver.focus.control import (
    COMMANDS,
    NAMESPACE,
    NEEDS_USER,
    ControlError,
    ControlRequest,
    ControlResponse,
    apply,
    parse_request,
    response_body,
)

ALICE, DAVE = "sip:alice@example.com", "sip:dave@example.com"


def body(command: str, request_id: str = "7") -> bytes:
    return (f'<?xml version="1.0"?><request xmlns="{NAMESPACE}" requestId="{request_id}">'
            f"{command}</request>").encode()


def meeting() -> Conference:
    conf = Conference(MeetingInfo("7654321", ALICE, "open", domain="example.com"))
    for pid, identity in (("p1", ALICE), ("p2", DAVE), ("p3", "sip:erin@example.com")):
        conf.add(pid, identity, pid, conf.admit(identity), 0.0)
        conf.connected(pid)
    return conf


def test_leader_commands_by_identity_or_entity() -> None:
    conf = meeting()
    assert apply(conf, "p1", parse_request(body(f'<mute user="{DAVE}"/>'))).ok
    assert conf.participants["p2"].muted_by_leader
    assert apply(conf, "p1", parse_request(body('<unmute user="p2"/>'))).ok
    assert apply(conf, "p1", parse_request(body("<lock/>"))).ok and conf.locked
    assert apply(conf, "p1", parse_request(body(f'<setRole user="{DAVE}" role="presenter"/>'))).ok
    assert conf.participants["p2"].role == "presenter"
    assert apply(conf, "p1", parse_request(body("<muteAudience/>"))).ok
    assert conf.participants["p3"].muted and not conf.participants["p2"].muted
    ejected = apply(conf, "p2", parse_request(body('<eject user="sip:erin@example.com"/>')))
    assert ejected.ejected == ("p3",)
    ended = apply(conf, "p1", parse_request(body("<endConference/>")))
    assert ended.ended and set(ended.ejected) == {"p1", "p2", "p3"}


def test_refusals_carry_reasons_and_render_as_failure_responses() -> None:
    conf = meeting()
    outcome = apply(conf, "p3", parse_request(body("<lock/>")))
    assert not outcome.ok and not conf.locked
    rendered = etree.fromstring(response_body("7", outcome))
    assert rendered.get("code") == "failure" and rendered.get("requestId") == "7"
    assert rendered.get("reason") == "only the organizer and presenters may do this"
    missing = apply(conf, "p1", parse_request(body('<eject user="sip:nobody@example.com"/>')))
    assert missing.reason == "no participant sip:nobody@example.com in this meeting"
    ok = etree.fromstring(response_body("8", apply(conf, "p1", parse_request(body("<unlock/>")))))
    assert ok.get("code") == "success" and ok.get("reason") is None


@pytest.mark.parametrize(("data", "message"), [
    (b"<request", "not well-formed"),
    (b'<request xmlns="urn:other"><lock/></request>', "root element must be <request>"),
    (body("<lock/><unlock/>"), "exactly one command"),
    (body("<explode/>"), "unknown command <explode>"),
    (body("<mute/>"), "<mute> needs a user attribute"),
    (body('<setRole user="x"/>'), "<setRole> needs a role attribute"),
    (b"x" * 20000, "over 16384 bytes"),
    (b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
     b'<request xmlns="' + NAMESPACE.encode() + b'"><mute user="&e;"/></request>',
     "external entity"),
    (b'<!DOCTYPE request []><request xmlns="' + NAMESPACE.encode() + b'"><lock/></request>',
     "document type declaration is not allowed"),
])
def test_bad_bodies_are_rejected_clearly(data: bytes, message: str) -> None:
    with pytest.raises(ControlError, match=message):
        parse_request(data)


def test_recording_is_for_leaders_and_toggles_once() -> None:
    conf = meeting()
    assert not apply(conf, "p3", parse_request(body("<startRecording/>"))).ok
    started = apply(conf, "p1", parse_request(body("<startRecording/>")))
    assert started.ok and started.recording is True and conf.recording
    assert apply(conf, "p1", parse_request(body("<startRecording/>"))).reason == \
        "the meeting is already being recorded"
    stopped = apply(conf, "p1", parse_request(body("<stopRecording/>")))
    assert stopped.recording is False and not conf.recording


def test_dial_out_is_for_leaders_and_needs_a_sip_or_tel_uri() -> None:
    conf = meeting()
    asked = apply(conf, "p1", parse_request(body('<dialOut uri="sip:dave@127.0.0.1:5080"/>')))
    assert asked.ok and asked.dial_out == "sip:dave@127.0.0.1:5080"
    assert not apply(conf, "p3", parse_request(body('<dialOut uri="sip:dave@x"/>'))).ok
    assert apply(conf, "p1", parse_request(body('<dialOut uri="tel:+14255550100"/>'))).ok
    assert apply(conf, "p1", parse_request(body('<dialOut uri="http://x/"/>'))).reason == \
        "'http://x/' is not a SIP or tel URI"
    conf.set_lock("p1", True)
    assert apply(conf, "p1", parse_request(body('<dialOut uri="sip:d@x"/>'))).reason == \
        "the meeting is locked"
    with pytest.raises(ControlError, match="needs a uri"):
        parse_request(body("<dialOut/>"))


CLEAN = st.text(st.characters(blacklist_categories=("Cc", "Cs"),
                              blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066"
                                                   "\u2067\u2068\u2069\ufffe\uffff"),
                max_size=30)


@st.composite
def control_requests(draw: st.DrawFn) -> ControlRequest:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    needed = CLEAN.filter(bool)
    return ControlRequest(
        draw(CLEAN), command,
        user=draw(needed) if command in NEEDS_USER else draw(st.none() | needed),
        role=draw(needed) if command == "setRole" else draw(st.none() | needed),
        uri=draw(needed) if command == "dialOut" else draw(st.none() | needed))


@given(control_requests())
def test_control_request_round_trip(request: ControlRequest) -> None:
    assert ControlRequest.parse(bytes(request)) == request


@given(st.builds(ControlResponse, CLEAN, st.booleans(), CLEAN))
def test_control_response_round_trip(response: ControlResponse) -> None:
    if response.ok:
        response = ControlResponse(response.request_id, True)
    assert ControlResponse.parse(bytes(response)) == response
