"""RFC 4475 torture messages: each gets the behaviour its index.json entry describes.

The messages go through the real endpoint, application and registrar (SQLite in
memory); only the wire is replaced, so we see exactly what would be sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from confserver.sip.message import Request, Response, parse_message

from .harness import Harness, authorize

# the RFC's own messages, byte for byte (see tests/corpus/sip-torture/README.md)
CORPUS = Path(__file__).resolve().parent / "corpus" / "sip-torture"
INDEX = json.loads((CORPUS / "index.json").read_text())

# file -> the status we answer with, or None when the message must be dropped silently
EXPECTED: dict[str, int | None] = {
    # 3.1.1 valid
    "wsinv.dat": 481,          # parses; its To tag names no dialog of ours
    "intmeth.dat": 501,
    "esc01.dat": 404,          # escaped user parses; host example.net is not ours
    "escnull.dat": 401,        # well-formed REGISTER: challenged
    "esc02.dat": 501,          # RE%47IST%45R is an unknown method
    "lwsdisp.dat": 200,
    "longreq.dat": 404,        # not our domain, but every long value parsed
    "dblreq.dat": 401,         # only the REGISTER is processed
    "semiuri.dat": 200,
    "transports.dat": 200,
    "mpart01.dat": 501,        # MESSAGE is not implemented; body framed correctly
    "unreason.dat": None,      # a response matching no transaction
    "noreason.dat": None,
    # 3.1.2 invalid
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "scalarlg.dat": None, "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400,
    "lwsstart.dat": 400, "trws.dat": 400, "escruri.dat": 400,
    "baddate.dat": 404,        # the Date is ignored; the request is handled normally
    "regbadct.dat": 400, "badaspec.dat": 400, "baddn.dat": 400, "badvers.dat": 505,
    "mismatch01.dat": 400, "mismatch02.dat": 501, "bigcode.dat": None,
    # 3.2-3.4 parse, decided above the parser
    "badbranch.dat": 400, "insuf.dat": 400, "unkscm.dat": 416, "novelsc.dat": 416,
    "unksm2.dat": 400, "bext01.dat": 420, "invut.dat": 415, "regaut01.dat": 401,
    "multi01.dat": 400, "mcl01.dat": 400, "bcast.dat": None, "zeromf.dat": 200,
    "cparam01.dat": 401, "cparam02.dat": 401, "regescrt.dat": 401, "sdp01.dat": 406,
    "inv2543.dat": 404,
}


def test_every_corpus_message_has_an_expectation() -> None:
    assert sorted(EXPECTED) == sorted(entry["file"] for entry in INDEX)
    assert len(INDEX) == 49


@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_torture_message(entry: dict[str, str]) -> None:
    h = Harness()
    data = (CORPUS / entry["file"]).read_bytes()
    h.feed(data)
    sent = h.take()
    expected = EXPECTED[entry["file"]]
    if expected is None:
        assert sent == []
        return
    finals = [m for m in sent if isinstance(m, Response) and m.status >= 200]
    assert [m.status for m in finals] == [expected], entry["note"]
    response = finals[0]
    if expected == 420:
        assert response.headers.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"
    if expected == 415:
        assert "application/sdp" in (response.headers.get("Accept") or "")
    if expected == 501:
        assert "INVITE" in (response.headers.get("Allow") or "")
    if expected == 401:
        assert response.headers.get_all("WWW-Authenticate")


def test_baddn_errata_copy_is_rejected_for_its_display_names() -> None:
    h = Harness()
    h.feed((CORPUS / "errata" / "baddn.dat").read_bytes())
    [response] = h.responses()
    assert response.status == 400 and "quoted" in response.reason


def test_dblreq_ignores_trailing_invite() -> None:
    msg = parse_message((CORPUS / "dblreq.dat").read_bytes())
    assert isinstance(msg, Request) and msg.method == "REGISTER" and msg.body == b""


def test_mpart01_body_framed_by_content_length() -> None:
    msg = parse_message((CORPUS / "mpart01.dat").read_bytes())
    assert len(msg.body) == 553 and b"\x00" in msg.body


def test_semiuri_user_keeps_semicolon() -> None:
    msg = parse_message((CORPUS / "semiuri.dat").read_bytes())
    assert isinstance(msg, Request)
    assert msg.uri is not None and msg.uri.user == "user;par=u%40example.net"
    assert msg.uri.params == {}


def test_esc01_user_unescapes() -> None:
    msg = parse_message((CORPUS / "esc01.dat").read_bytes())
    assert isinstance(msg, Request)
    assert msg.uri.user_unescaped == "sips:user@example.com"


def test_wsinv_folded_headers() -> None:
    msg = parse_message((CORPUS / "wsinv.dat").read_bytes())
    msg.validate()
    assert isinstance(msg, Request)
    assert msg.to is not None and msg.to.tag == "1918181833n"
    assert msg.from_ is not None and msg.from_.display_name == 'J Rosenberg \\"'
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.vias[2].branch == "z9hG4bK30239"
    assert msg.cseq is not None and (msg.cseq.number, msg.cseq.method) == (9, "INVITE")
    assert msg.max_forwards == 68
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    contacts = msg.contacts()
    assert contacts and contacts[0].params["q"] == "0.33"


def _register_with_auth(h: Harness, name: str, user: str) -> Response:
    h.users.add(f"sip:{user}@example.com", "torture-pw")
    data = (CORPUS / name).read_bytes()
    h.feed(data)
    [challenge] = h.responses()
    assert challenge.status == 401
    request = parse_message(data)
    assert isinstance(request, Request)
    request.validate()
    via = request.top_via
    via.params["branch"] = "z9hG4bKsecond"
    request.headers.set("Via", str(via))
    assert request.cseq is not None
    request.headers.set("CSeq", f"{request.cseq.number + 1} REGISTER")
    request.validate()
    h.feed(authorize(request, challenge, user, "torture-pw"))
    [ok] = h.responses()
    return ok


def test_cparam01_unbracketed_param_is_a_contact_param() -> None:
    h = Harness()
    ok = _register_with_auth(h, "cparam01.dat", "watson")
    assert ok.status == 200
    [binding] = h.bindings.current("sip:watson@example.com", h.clock.seconds())
    assert binding.contact == "sip:+19725552222@gw1.example.net"


def test_cparam02_bracketed_param_stays_in_uri() -> None:
    h = Harness()
    ok = _register_with_auth(h, "cparam02.dat", "watson")
    assert ok.status == 200
    [binding] = h.bindings.current("sip:watson@example.com", h.clock.seconds())
    assert binding.contact == "sip:+19725552222@gw1.example.net;unknownparam"


def test_regescrt_escaped_route_stored_unchanged() -> None:
    h = Harness()
    ok = _register_with_auth(h, "regescrt.dat", "user")
    assert ok.status == 200
    contact = ok.headers.get("Contact") or ""
    assert "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>" in contact
