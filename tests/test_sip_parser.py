"""Parser and serializer units, plus a brief property-based fuzz of the parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confserver.sip.address import NameAddr, Via
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import (
    FramingError,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    parse_message,
)
from confserver.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri

from .harness import make_request

BASIC = (b"INVITE sip:bob@example.com SIP/2.0\r\n"
         b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1, SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2\r\n"
         b"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK3\r\n"
         b"f: \"Alice \\\"A\\\"\" <sip:alice@example.com>;tag=1\r\n"
         b"t: Bob <sip:bob@example.com>\r\n"
         b"i: abc@10.0.0.1\r\n"
         b"CSeq: 7 INVITE\r\n"
         b"m: <sip:alice@10.0.0.1>;expires=60, \"X\" <sip:x@10.0.0.2>\r\n"
         b"Subject: folded\r\n  line\r\n"
         b"l: 4\r\n\r\nbody")


def test_compact_forms_folding_and_comma_lists() -> None:
    msg = parse_message(BASIC)
    msg.validate()
    assert isinstance(msg, Request)
    assert [v.branch for v in msg.vias] == ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3"]
    assert msg.from_ is not None and msg.from_.display_name == 'Alice "A"'
    assert msg.to is not None and msg.to.display_name == "Bob"
    assert msg.call_id == "abc@10.0.0.1"
    assert msg.headers.get("Subject") == "folded line"
    contacts = msg.contacts()
    assert contacts is not None and len(contacts) == 2
    assert contacts[0].params == {"expires": "60"}
    assert msg.body == b"body"


def test_serialize_round_trip_and_content_length_recomputed() -> None:
    msg = parse_message(BASIC)
    msg.body = b"longer body"
    data = bytes(msg)
    assert b"Content-Length: 11\r\n\r\nlonger body" in data
    again = parse_message(data)
    again.validate()
    assert again.body == b"longer body"
    assert again.headers.get("Call-ID") == "abc@10.0.0.1"


def test_response_round_trip() -> None:
    data = (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
            b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    msg = parse_message(data)
    assert isinstance(msg, Response) and msg.status == 180 and msg.reason == "Ringing"
    assert bytes(msg) == data


@pytest.mark.parametrize("text,scheme", [
    ("sip:alice@example.com:5070;transport=tcp;lr", "sip"),
    ("sips:[2001:db8::1]:5061", "sips"),
    ("sip:alice:pw@10.0.0.1", "sip"),
    ("tel:+1-425-555-0100;phone-context=example.com", "tel"),
    ("urn:service:sos", "urn"),
])
def test_uri_round_trip(text: str, scheme: str) -> None:
    uri = parse_uri(text)
    assert uri.scheme == scheme and str(uri) == text


def test_uri_details() -> None:
    uri = SipUri.parse("sip:al%69ce@Example.COM:5070;transport=TCP;lr?Subject=hi")
    assert uri.user_unescaped == "alice" and uri.port == 5070 and uri.transport == "tcp"
    assert uri.params["lr"] is None and uri.headers == "Subject=hi"
    assert uri.aor() == "sip:alice@example.com"
    tel = TelUri.parse("tel:+1-425-555-0100")
    assert tel.digits == "+14255550100"
    assert isinstance(parse_uri("isbn:2983792873"), AbsoluteUri)


@pytest.mark.parametrize("bad", ["sip:", "sip:a@", "sip:a b@c", "sip:a@c:99999", "sip:a@[::1",
                                 "sip:a@c;=x", "sip:a@c%zz", "tel:xyz", "sip:a@c:5060x"])
def test_bad_uris_rejected(bad: str) -> None:
    with pytest.raises(SipSyntaxError):
        parse_uri(bad)


@pytest.mark.parametrize("bad", ['"unterminated <sip:a@b>', "<sip:a@b", "a,b <sip:a@b>",
                                 "< sip:a@b>", "sip:a@b?x=y", '"x" sip:a@b'])
def test_bad_name_addrs_rejected(bad: str) -> None:
    with pytest.raises(SipSyntaxError):
        NameAddr.parse(bad)


def test_name_addr_forms() -> None:
    assert NameAddr.parse("Bob Smith<sip:b@c>").display_name == "Bob Smith"
    bare = NameAddr.parse("sip:b@c;tag=9")
    assert bare.tag == "9" and str(bare.uri) == "sip:b@c"
    assert str(NameAddr.parse('"Q \\"x\\"" <sip:b@c>;tag=1')) == '"Q \\"x\\"" <sip:b@c>;tag=1'


def test_via_with_ipv6_rport_and_received() -> None:
    via = Via.parse("SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKa;rport;received=192.0.2.1")
    assert via.host == "[2001:db8::9]" and via.port == 5061 and via.params["rport"] is None
    assert str(via) == "SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKa;rport;received=192.0.2.1"


@pytest.mark.parametrize("data,status", [
    (b"", 400), (b"\r\n\r\n", 400), (b"GARBAGE\r\n\r\n", 400),
    (b"INVITE sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n", 505),
    (b"INVITE sip:a@b SIP/2.0\r\nBad Header Line\r\n\r\n", 400),
    (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n", 400),
    (b"x" * 70000, 513),
])
def test_parse_errors_carry_status(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as info:
        msg = parse_message(data)
        msg.validate()
    assert info.value.status == status


def test_stream_framer_cuts_by_content_length_and_skips_keepalives() -> None:
    framer = StreamFramer()
    one = bytes(make_request("OPTIONS", "sip:example.com"))
    two = bytes(make_request("INFO", "sip:example.com", body=b"v=0\r\n"))
    stream = b"\r\n\r\n" + one + two
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += framer.feed(stream[i:i + 7])
    assert out == [one, two]


@pytest.mark.parametrize("head", [b"Content-Length: -1", b"Content-Length: 5\r\nl: 6",
                                  b"Content-Length: 999999"])
def test_stream_framer_loses_framing_on_bad_length(head: bytes) -> None:
    with pytest.raises(FramingError):
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\n" + head + b"\r\n\r\n")


def test_stream_framer_bounds_header_size() -> None:
    with pytest.raises(FramingError):
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"a" * 40000)


# ------------------------------------------------------------------- fuzz

SEED = bytes(make_request("INVITE", "sip:echo@example.com", body=b"v=0\r\n",
                          extra=[("Supported", "timer"), ("Session-Expires", "90")]))


def _check_no_crash(data: bytes) -> None:
    try:
        msg = parse_message(data)
        msg.validate()
        bytes(msg)
    except SipParseError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_never_crash(data: bytes) -> None:
    _check_no_crash(data)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.binary(min_size=0, max_size=4)),
                max_size=6))
def test_fuzz_mutated_messages_never_crash(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(SEED)
    for pos, replacement in edits:
        data[pos:pos + len(replacement) or pos + 1] = replacement
    _check_no_crash(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 50))
def test_fuzz_stream_framer(data: bytes, chunk: int) -> None:
    framer = StreamFramer()
    try:
        for i in range(0, len(data), chunk):
            for message in framer.feed(data[i:i + chunk]):
                _check_no_crash(message)
    except FramingError:
        pass


def test_header_lookups_stay_right_after_the_fields_change() -> None:
    from confserver.sip.message import Headers
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("X-Thing", "1")])
    assert headers.get("v") == "SIP/2.0/UDP a" and headers.get("x-thing") == "1"
    headers.prepend("Via", "SIP/2.0/UDP b")
    headers.add("x-THING", "2")
    assert headers.get_all("VIA") == ["SIP/2.0/UDP b", "SIP/2.0/UDP a"]
    assert headers.count("X-Thing") == 2 and "x-thing" in headers
    headers.set("X-Thing", "3")
    assert headers.get_all("X-Thing") == ["3"]
    headers.remove("Via")
    assert headers.get("Via") is None and "via" not in headers and headers.count("Via") == 0
    assert [name for name, _ in headers] == ["X-Thing"]


@pytest.mark.parametrize("value", ["x\r\nVia: SIP/2.0/UDP evil", "x\nX-Forged: 1", "x\rY",
                                   "abc\0def"])
def test_a_request_with_a_line_break_or_nul_in_a_value_is_never_serialized(value: str) -> None:
    request = parse_message(SEED)
    assert isinstance(request, Request)
    request.headers.add("Replaces", value)
    with pytest.raises(SipSyntaxError, match="CR, LF or NUL"):
        bytes(request)
