"""What an ended mediation call leaves behind: nothing.

A busy server ends hundreds of calls a second. Anything that keeps an ended call
reachable is a leak that grows without bound; anything that ties its objects into
reference cycles leaves them for the cyclic garbage collector, whose full
collections then stop the whole process (media clock included) for a time that
grows with the heap: over a second at 300 calls/s before these tests existed.
So an ended call must be freed by reference counting alone, the moment its last
transaction timer has run."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream
from confserver.sip.message import Request, Response
from mediation.b2bua import Mediation
from tests.harness import Harness, make_request
from tests.mediation.b2bua_helpers import (
    GATEWAY,
    established_call,
    mediation_harness,
    reply,
    sent,
)

ALICE_RTP = ("127.0.0.1", 40000)    # where OFFER receives
GATEWAY_RTP = ("127.0.0.1", 41000)  # where ANSWER receives

AFTER_EVERY_TIMER = 64 * 0.5 + 5  # s: Timer J / L / M (64·T1) and then some


@pytest.fixture
def no_cyclic_collector() -> Iterator[None]:
    """Only reference counting frees objects while the test runs."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _live_calls(h: Harness) -> list[weakref.ref[object]]:
    mediation: Mediation = h.mediation  # type: ignore[attr-defined]
    calls: list[weakref.ref[object]] = [weakref.ref(c) for c in h.app.calls.values()]
    calls += [weakref.ref(c) for c in mediation.calls]
    return calls


def _end_by_caller(h: Harness, call_id: str, ok: Response, to_gateway: Request) -> None:
    to_tag = ok.to.params["tag"] if ok.to else None
    h.feed(make_request("BYE", "sip:+14255550123@example.com", call_id=call_id, cseq=3,
                        to_tag=to_tag, branch="z9hG4bKbye1"))
    bye = next(m for m, w in sent(h) if isinstance(m, Request) and w == GATEWAY
               and m.method == "BYE")
    reply(h, bye, 200, GATEWAY)
    h.clock.advance(AFTER_EVERY_TIMER)


def test_an_answered_call_is_forgotten_once_it_ends(h: Harness) -> None:
    """The INVITE of a mediation call is answered when the gateway answers, after its
    handler returned; the ACK settles it. Nothing of the call stays reachable."""
    _invite, ok, to_gateway = established_call(h, "gone@test")
    calls = _live_calls(h)
    assert calls and all(r() is not None for r in calls)
    _end_by_caller(h, "gone@test", ok, to_gateway)
    assert not h.app.calls and not h.app._pending
    gc.collect()
    assert [r() for r in calls if r() is not None] == []


def _talk(h: Harness, frames: int) -> list[weakref.ref[object]]:
    """Both parties send G.711 for ``frames`` frames: the legs' sessions pair up and
    relay each other's packets. The sessions and their streams, weakly."""
    assert h.media is not None
    sessions = list(h.media.sessions.values())
    assert len(sessions) == 2
    sockets = h.media.sockets.bound  # type: ignore[attr-defined]
    for seq in range(frames):
        for session, source in zip(sessions, (ALICE_RTP, GATEWAY_RTP), strict=True):
            packet = RtpPacket(0, seq, seq * 160, 0x1000 + session.local_port, b"\x55" * 160)
            sockets[session.local_port].on_datagram(bytes(packet), source)
        h.clock.advance(0.02)
    assert sessions[0].relay_peer is sessions[1]
    # the streams are compiled (confserver/native.py) and take no weak references:
    # they are counted among the collector's objects instead (_streams_alive)
    return [weakref.ref(s) for s in sessions]


def _streams_alive() -> int:
    """AudioStream objects in existence (the collector tracks every one of them)."""
    return sum(1 for o in gc.get_objects() if type(o) is AudioStream)


@pytest.mark.parametrize("media", [False, True], ids=["signalling", "with-media"])
def test_an_ended_call_is_freed_by_reference_counting_alone(
        media: bool, no_cyclic_collector: None) -> None:
    streams_before = _streams_alive()
    h = mediation_harness(media=media)
    _invite, ok, to_gateway = established_call(h, "refcount@test")
    calls = _live_calls(h)
    if media:
        calls += _talk(h, 10)
        assert _streams_alive() == streams_before + 2
    _end_by_caller(h, "refcount@test", ok, to_gateway)
    left = [type(r()).__name__ for r in calls if r() is not None]
    assert left == []
    assert _streams_alive() == streams_before
