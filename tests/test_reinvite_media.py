"""A re-INVITE that changes the codec or the SRTP keys changes the media session over;
one that only holds or refreshes keeps our key and the session as they were."""

from __future__ import annotations

from confserver.adapters.media.session import MediaSession
from confserver.media.rtp import RtpPacket
from confserver.media.sdes import CryptoAttribute, new_crypto
from confserver.media.srtp import SrtpContext
from confserver.sip.message import Response
from confserver.sip.sdp import SessionDescription

from .harness import Harness, ack, make_request

PHONE = ("127.0.0.1", 40000)
TALK = b"\x2a" * 160  # what the phone says (echoed back byte for byte)


def offer(version: int, key: CryptoAttribute | None = None, formats: str = "0 8 101",
          direction: str = "") -> bytes:
    proto = "RTP/SAVP" if key is not None else "RTP/AVP"
    lines = ["v=0", f"o=alice 1 {version} IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             f"m=audio 40000 {proto} {formats}", "a=rtpmap:101 telephone-event/8000",
             "a=fmtp:101 0-16"]
    if key is not None:
        lines.append(f"a=crypto:{key}")
    if direction:
        lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def our_key(answer: Response) -> CryptoAttribute:
    [value] = SessionDescription.parse(answer.body).media[0].attribute_values("crypto")
    return CryptoAttribute.parse(value)


def reinvite(h: Harness, ok: Response, cseq: int, body: bytes) -> Response:
    h.feed(make_request("INVITE", "sip:switchboard@127.0.0.1:5060", branch=f"z9hG4bKre{cseq}",
                        cseq=cseq, to="sip:echo@example.com", to_tag=ok.to_tag, body=body))
    [answer] = [r for r in h.responses() if r.status >= 200]
    assert answer.status == 200, answer.reason
    ack(h, answer)
    return answer


def echoed(h: Harness, session: MediaSession, peer: SrtpContext | None, pt: int,
           first_seq: int) -> list[RtpPacket]:
    """Talk for 200 ms into the echo call; what came back, decrypted with ``peer``."""
    assert h.media is not None
    sockets = h.media.sockets
    sockets.sent.clear()  # type: ignore[attr-defined]
    for i in range(10):
        data = bytes(RtpPacket(pt, first_seq + i, (first_seq + i) * 160, 0x5150, TALK))
        session.datagram(peer.protect(data) if peer else data, PHONE, rtcp_port=False)
        h.clock.advance(0.02)
    h.clock.advance(0.1)
    out = []
    for data, _addr in sockets.sent:  # type: ignore[attr-defined]
        if 192 <= data[1] <= 223:
            continue  # RTCP
        out.append(RtpPacket.parse(peer.unprotect(data) if peer else data))
    return out


def start(h: Harness, body: bytes) -> tuple[Response, MediaSession]:
    h.feed(make_request("INVITE", "sip:echo@example.com", body=body))
    [ok] = [r for r in h.responses() if r.status >= 200]
    assert ok.status == 200
    ack(h, ok)
    call = next(iter(h.app.calls.values()))
    assert call.media is not None
    return ok, call.media


def test_a_hold_keeps_our_srtp_key_and_a_new_key_of_theirs_is_taken() -> None:
    h = Harness(media=True)
    theirs = new_crypto()
    ok, session = start(h, offer(1, theirs))
    ours = our_key(ok)
    peer = SrtpContext(theirs, ours)
    assert TALK in [p.payload for p in echoed(h, session, peer, 0, 1)]
    context = session.stream.srtp

    held = reinvite(h, ok, 2, offer(2, theirs, direction="sendonly"))
    assert our_key(held) == ours  # RFC 4568 §7.1.4: the answerer may keep its key
    assert session.stream.srtp is context and session.direction == "recvonly"

    rekeyed = new_crypto()
    resumed = reinvite(h, ok, 3, offer(3, rekeyed))
    assert our_key(resumed) == ours
    assert session.stream.srtp is not context  # their new key decrypts from now on
    back = echoed(h, session, SrtpContext(rekeyed, ours), 0, 100)
    assert TALK in [p.payload for p in back]


def test_a_reinvite_that_changes_the_codec_changes_the_session_over() -> None:
    h = Harness(media=True)
    ok, session = start(h, offer(1))
    assert session.stream.codec.name == "PCMU"
    assert echoed(h, session, None, 0, 1)[-1].payload_type == 0
    changed = reinvite(h, ok, 2, offer(2, formats="8 101"))  # PCMA only now
    assert SessionDescription.parse(changed.body).media[0].formats[0] == "8"
    assert session.stream.codec.name == "PCMA" and session.stream.payload_type == 8
    back = echoed(h, session, None, 8, 50)
    assert back and {p.payload_type for p in back} == {8}
    assert back[-1].ssrc == session.stream.ssrc and TALK in [p.payload for p in back]


def test_an_srtp_call_whose_reinvite_drops_the_keys_is_answered_in_plain_rtp() -> None:
    """Our policy is "optional": a re-offer in plain RTP is answered in plain RTP, and
    the session stops encrypting (the peer asked for it in its own offer)."""
    h = Harness(media=True)
    theirs = new_crypto()
    ok, session = start(h, offer(1, theirs))
    plain = reinvite(h, ok, 2, offer(2))
    assert not SessionDescription.parse(plain.body).media[0].attribute_values("crypto")
    assert session.stream.srtp is None
    assert TALK in [p.payload for p in echoed(h, session, None, 0, 1)]


def test_a_call_we_placed_takes_the_peers_new_key_and_refuses_dropped_keys() -> None:
    """The re-offer path of calls we placed (a gateway's re-INVITE): our answer repeats
    our key, the stream takes theirs; a re-offer without the agreed suite gets 488."""
    import pytest

    from confserver.adapters.calls.reoffer import answer_reoffer
    from confserver.sip.sdp import SdpError, make_offer, narrowed, streams_from_answer

    ours_sdp = make_offer("127.0.0.1", 30000, srtp="required")
    ours = CryptoAttribute.parse(ours_sdp.media[0].attribute_values("crypto")[0])
    theirs = CryptoAttribute(ours.tag, ours.suite, new_crypto().key)
    answer = SessionDescription.parse(offer(1, theirs))
    streams = streams_from_answer(ours_sdp, answer)

    class Placed:
        host = source = dialog = None
        state = "confirmed"

        def __init__(self) -> None:
            self.local_sdp = narrowed(ours_sdp, streams[0])  # as the answer settles it
            self.streams = streams

    call = Placed()
    rekeyed = CryptoAttribute(ours.tag, ours.suite, new_crypto().key)
    reply = answer_reoffer(call, SessionDescription.parse(offer(2, rekeyed)))  # type: ignore[arg-type]
    assert reply.media[0].attribute_values("crypto") == [str(ours)]
    assert call.streams[0].remote_crypto == str(rekeyed)
    with pytest.raises(SdpError, match="SRTP"):
        answer_reoffer(call, SessionDescription.parse(offer(3)))  # type: ignore[arg-type]
