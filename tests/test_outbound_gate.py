"""The outbound gate: where a call placed for someone may go (pure rule, then the
server's adapter with registrations and the vouching header)."""

from __future__ import annotations

import logging

import pytest

from confserver.adapters.gate.outbound_gate import Placement
from confserver.gate.destination import (
    GateRules,
    Refused,
    ToDevice,
    ToFederated,
    ToNumber,
    ToUser,
    destination,
)
from confserver.sip.assertion import HEADER, verify
from confserver.sip.uri import parse_uri
from confserver.storage.bindings import BindingRecord

from .harness import Harness, make_request

RULES = GateRules("example.com", frozenset({("127.0.0.1", 5060)}), frozenset({"partner.example"}))
ALICE = "sip:alice@example.com"


@pytest.mark.parametrize("uri,expected", [
    ("tel:+44-20-7123-4567", ToNumber("+442071234567")),
    ("sip:+442071234567@example.com", ToNumber("+442071234567")),
    ("sip:4002@EXAMPLE.com", ToNumber("4002")),
    ("sip:+14255550100@127.0.0.1;user=phone", ToNumber("+14255550100")),
    ("sip:bob@127.0.0.1:5072", ToDevice(parse_uri("sip:bob@127.0.0.1:5072"))),  # type: ignore[arg-type]
    ("sip:bob@example.com", ToUser("sip:bob@example.com")),
    ("sip:carol@partner.example", ToFederated(parse_uri("sip:carol@partner.example"))),  # type: ignore[arg-type]
    ("sip:+442071234567@127.0.0.2:5070", ToDevice(parse_uri("sip:+442071234567@127.0.0.2:5070"))),  # type: ignore[arg-type]
    ("mailto:bob@example.com", Refused(416, "mailto: URIs cannot be called")),
    ("sip:example.com", Refused(404, "no user named in the address")),
])
def test_where_a_call_may_go(uri: str, expected: object) -> None:
    assert destination(parse_uri(uri), ALICE, RULES) == expected


def test_nobody_who_did_not_sign_in_may_have_a_call_placed() -> None:
    assert destination(parse_uri("sip:bob@example.com"), None, RULES) == \
        Refused(403, "only signed-in users may have the server place calls")


def _with_bob(h: Harness, source: str = "127.0.0.1:6001") -> None:
    now = h.clock.seconds()
    h.users.add("sip:bob@example.com", "bob-password", "Bob")
    h.bindings.apply("sip:bob@example.com", [BindingRecord(
        "sip:bob@example.com", "<sip:bob@192.168.1.20:5060>", now + 3600, "r1", 1, None, "udp",
        source)], [], now)


def test_a_number_goes_to_mediation_with_the_requester_vouched_for() -> None:
    h = Harness()
    placement = h.app.gate.place(ALICE, parse_uri("tel:+14255551234"), "refer")
    assert isinstance(placement, Placement)
    assert str(placement.uri) == "sip:+14255551234@example.com;user=phone"
    assert placement.target == h.app.own_target() and placement.vouch is not None
    invite = make_request("INVITE", str(placement.uri))
    name, value = placement.vouch(invite)
    invite.headers.add(name, value)
    assert name == HEADER
    vouched = verify(h.app.secret, invite, h.clock.seconds())
    assert vouched is not None and vouched.identity == ALICE and vouched.origin == "refer"
    # the header is bound to its request, to the secret and to the time
    assert verify(b"another secret" * 3, invite, h.clock.seconds()) is None
    assert verify(h.app.secret, invite, h.clock.seconds() + 60) is None
    other = make_request("INVITE", "sip:+442071234567@example.com")
    other.headers.add(name, value)
    assert verify(h.app.secret, other, h.clock.seconds()) is None


def test_a_user_is_called_on_the_device_they_registered_from() -> None:
    h = Harness()
    _with_bob(h, "203.0.113.9:41234")
    placement = h.app.gate.place(ALICE, parse_uri("sip:bob@example.com"), "refer")
    assert isinstance(placement, Placement)
    assert str(placement.uri) == "sip:bob@192.168.1.20:5060"
    assert (placement.target.host, placement.target.port) == ("203.0.113.9", 41234)  # type: ignore[union-attr]
    assert placement.identity == "sip:bob@example.com" and placement.vouch is None
    signed_out = h.app.gate.place(ALICE, parse_uri("sip:carol@example.com"), "refer")
    assert signed_out == Refused(480, "sip:carol@example.com is not signed in")


def test_another_host_is_called_only_when_one_of_our_users_registered_it(
        caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    _with_bob(h, "127.0.0.1:6001")
    device = h.app.gate.place(ALICE, parse_uri("sip:bob@127.0.0.1:6001"), "refer")
    assert isinstance(device, Placement) and device.identity == "sip:bob@example.com"
    by_contact = h.app.gate.place(ALICE, parse_uri("sip:bob@192.168.1.20"), "refer")
    assert isinstance(by_contact, Placement)
    caplog.set_level(logging.WARNING, "switchboard.gate")
    refused = h.app.gate.place(ALICE, parse_uri("sip:+442071234567@127.0.0.2:5070"),
                               "dialOut in meeting 7654321")
    assert isinstance(refused, Refused) and refused.status == 403
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("outbound call refused: requester=sip:alice@example.com "
                           "target=sip:+442071234567@127.0.0.2:5070 via=dialOut in meeting")
    assert h.app.gate.place(None, parse_uri("sip:bob@example.com"), "refer") == \
        Refused(403, "only signed-in users may have the server place calls")
