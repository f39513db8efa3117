"""RFC 3262 on the caller's side: which provisional responses get a PRACK."""

from __future__ import annotations

from confserver.sip.message import Response
from confserver.sip.reliable import Provisional, ProvisionalTracker, reliable_rseq
from confserver.sip.transaction import make_response
from tests.harness import make_request

INVITE = make_request("INVITE", "sip:+14255550123@example.com", cseq=7)


def provisional(status: int = 183, rseq: str | None = "1", tag: str = "gw",
                require: str | None = "100rel") -> Response:
    response = make_response(INVITE, status, "X", tag)
    if require is not None:
        response.headers.add("Require", require)
    if rseq is not None:
        response.headers.add("RSeq", rseq)
    response.validate()  # as a parsed response: To and CSeq read
    return response


def test_only_a_1xx_requiring_100rel_with_a_valid_rseq_is_reliable() -> None:
    assert reliable_rseq(provisional()) == 1
    assert reliable_rseq(provisional(require="timer, 100rel", rseq="2147483647")) == 2**31 - 1
    assert reliable_rseq(provisional(require=None)) is None  # an ordinary 183
    assert reliable_rseq(provisional(status=100)) is None  # a 100 is never reliable
    for bad in (None, "", "0", "-1", "x1", "2147483648", "99999999999999"):
        assert reliable_rseq(provisional(rseq=bad)) is None, bad


def test_each_reliable_response_is_acknowledged_once_and_in_order() -> None:
    tracker = ProvisionalTracker()
    first = tracker.classify(provisional(180, "41"))
    assert first.kind is Provisional.NEW and first.rack == "41 7 INVITE"
    assert tracker.classify(provisional(180, "41")).kind is Provisional.DUPLICATE
    assert tracker.classify(provisional(183, "43")).kind is Provisional.OUT_OF_ORDER
    assert tracker.classify(provisional(183, "40")).kind is Provisional.DUPLICATE
    second = tracker.classify(provisional(183, "42"))
    assert second.kind is Provisional.NEW and second.rack == "42 7 INVITE"
    # the one that overtook 42 is taken when the far end sends it again
    assert tracker.classify(provisional(183, "43")).kind is Provisional.NEW
    # an unreliable 1xx in between changes nothing
    assert tracker.classify(provisional(180, None, require=None)).kind is Provisional.UNRELIABLE


def test_each_early_dialog_of_a_forked_invite_counts_on_its_own() -> None:
    tracker = ProvisionalTracker()
    assert tracker.classify(provisional(rseq="900", tag="a")).kind is Provisional.NEW
    assert tracker.classify(provisional(rseq="5", tag="b")).kind is Provisional.NEW
    assert tracker.classify(provisional(rseq="901", tag="a")).kind is Provisional.NEW
    assert tracker.classify(provisional(rseq="5", tag="b")).kind is Provisional.DUPLICATE
    # without a To tag there is no dialog to PRACK in
    untagged = make_response(INVITE, 183, "X")
    untagged.headers.add("Require", "100rel")
    untagged.headers.add("RSeq", "1")
    untagged.validate()
    assert tracker.classify(untagged).kind is Provisional.UNRELIABLE


def test_an_invite_that_requires_100rel_is_refused_with_420() -> None:
    """The server sends only unreliable provisionals, so it says so (RFC 3261 §8.2.2.3)."""
    from tests.harness import OFFER, Harness

    h = Harness()
    h.feed(make_request("INVITE", body=OFFER, extra=[("Require", "100rel")]))
    replies = [m for m in h.take() if isinstance(m, Response)]
    assert [r.status for r in replies] == [420]
    assert replies[0].headers.get("Unsupported") == "100rel"
