"""What a REFER's Refer-To asks for: the target, Replaces and what it requires."""

from __future__ import annotations

import pytest

from confserver.adapters.calls.transfer import ReferRefused, read_refer
from confserver.sip.message import Request, parse_message


def refer(refer_to: str) -> Request:
    message = parse_message(
        ("REFER sip:focus@example.com SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKrt1\r\n"
         "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:focus@example.com>;tag=f\r\n"
         "Call-ID: rt1\r\nCSeq: 2 REFER\r\nMax-Forwards: 70\r\n"
         f"Refer-To: {refer_to}\r\nReferred-By: <sip:alice@example.com>\r\n"
         "Content-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def test_replaces_and_its_requirement_are_taken_and_other_embedded_headers_dropped() -> None:
    target = read_refer(refer("<sip:bob@127.0.0.1:5080?Replaces=c1%40h%3Bto-tag%3D2%3Bfrom-tag%3D3"
                              "&Require=replaces%2C100rel&Subject=hi>"))
    assert str(target.uri) == "sip:bob@127.0.0.1:5080"
    assert target.replaces == "c1@h;to-tag=2;from-tag=3"
    assert target.require == ("replaces",)  # 100rel and Subject are not ours to pass on
    assert target.referred_by == "<sip:alice@example.com>"


def test_a_requirement_without_replaces_is_not_passed_on() -> None:
    target = read_refer(refer("<sip:bob@example.com?Require=replaces>"))
    assert target.replaces is None and target.require == ()


def test_a_refer_to_that_is_not_a_sip_uri_is_refused() -> None:
    with pytest.raises(ReferRefused) as refused:
        read_refer(refer("<mailto:bob@example.com>"))
    assert refused.value.status == 416
