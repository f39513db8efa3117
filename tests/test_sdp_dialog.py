"""SDP offer/answer and dialog/session-timer units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserver.sip.dialog import Dialog, SessionTimerTooSmall, negotiate_as_uas
from confserver.sip.sdp import (
    DEFAULT_AUDIO_CODECS,
    MAX_FORMATS,
    MAX_LINES,
    MAX_MEDIA,
    Media,
    Origin,
    SdpError,
    SessionDescription,
    answer_offer,
    make_offer,
)

from .harness import OFFER, make_request


def test_sdp_round_trip() -> None:
    sdp = SessionDescription.parse(OFFER)
    assert SessionDescription.parse(bytes(sdp)) == sdp
    assert sdp.media[0].rtpmap()["101"] == ("telephone-event", 8000, 1)


def test_answer_prefers_our_order_among_common_codecs() -> None:
    offer = make_offer("10.0.0.1", 4000, codecs=DEFAULT_AUDIO_CODECS[::-1])  # PCMA first
    answer, [stream] = answer_offer(offer, "127.0.0.1", [30000])
    assert stream.codec.name == "opus" and stream.codec.clock_rate == 48000
    assert answer.media[0].port == 30000 and stream.remote_port == 4000


def test_an_offered_ptime_starts_the_receiver_and_the_answer_says_what_we_send() -> None:
    offer = SessionDescription.parse(OFFER)
    offer.media[0].attributes.append(("ptime", "30"))
    answer, [stream] = answer_offer(offer, "127.0.0.1", [30000])
    assert stream.ptime == 30  # the jitter buffer starts with the peer's packets
    assert answer.media[0].attribute("ptime") == "20"  # we send the media clock's 20 ms


@pytest.mark.parametrize("offered,answered", [
    ("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"),
    ("inactive", "inactive")])
def test_hold_directions(offered: str, answered: str) -> None:
    offer = SessionDescription.parse(OFFER + f"a={offered}\r\n".encode())
    answer, _ = answer_offer(offer, "127.0.0.1", [30000])
    assert answer.media[0].direction == answered


def test_old_style_hold_c_zero() -> None:
    offer = SessionDescription.parse(OFFER.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0"))
    answer, _ = answer_offer(offer, "127.0.0.1", [30000])
    assert answer.media[0].direction == "recvonly"


def test_video_rejected_with_port_zero_audio_kept() -> None:
    offer = SessionDescription.parse(OFFER + b"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")
    answer, streams = answer_offer(offer, "127.0.0.1", [30000])
    assert [m.port for m in answer.media] == [30000, 0] and len(streams) == 1


def test_video_accepted_with_key_frame_feedback_when_a_port_is_given() -> None:
    offer = SessionDescription.parse(
        OFFER + b"m=video 5000 RTP/AVP 97 96\r\na=rtpmap:97 H264/90000\r\n"
        b"a=fmtp:97 packetization-mode=1\r\na=rtpmap:96 VP8/90000\r\n"
        b"m=video 5002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")
    answer, streams = answer_offer(offer, "127.0.0.1", [30000], video_port=30002)
    assert [m.port for m in answer.media] == [30000, 30002, 0]
    video = answer.media[1]
    assert video.formats == ["96"] and ("rtcp-fb", "96 nack pli") in video.attributes
    assert [s.kind for s in streams] == ["audio", "video"]
    assert (streams[1].codec.name, streams[1].remote_port, streams[1].payload_type) == \
        ("VP8", 5000, 96)
    only_h264 = SessionDescription.parse(
        OFFER + b"m=video 5000 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
        b"a=fmtp:97 profile-level-id=42e01f;packetization-mode=1\r\n")
    answer, streams = answer_offer(only_h264, "127.0.0.1", [30000], video_port=30002)
    assert ("fmtp", "97 profile-level-id=42e01f;packetization-mode=1") in answer.media[1].attributes
    secure = SessionDescription.parse(OFFER + b"m=video 5000 RTP/SAVP 96\r\na=rtpmap:96 VP8/90000\r\n")
    answer, streams = answer_offer(secure, "127.0.0.1", [30000], video_port=30002)
    assert answer.media[1].port == 0 and len(streams) == 1  # no SRTP for video yet


@pytest.mark.parametrize("bad", [b"", b"v=1\r\n", b"v=0\r\no=x\r\n", b"hello",
                                 b"v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 99999 RTP/AVP 0\r\n",
                                 b"v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 5 RTP/AVP 0\r\n"])
def test_bad_sdp_rejected(bad: bytes) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(bad)


def test_dialog_as_uas_and_in_dialog_request_routing() -> None:
    invite = make_request("INVITE", extra=[("Record-Route", "<sip:p1.example.com;lr>, <sip:p2;lr>")])
    dialog = Dialog.as_uas(invite, "ourtag", "<sip:sb@127.0.0.1>")
    bye = dialog.create_request("BYE", "127.0.0.1", 5060, "udp")
    assert str(bye.uri) == "sip:alice@127.0.0.1:5099"
    assert bye.headers.values("Route") == ["<sip:p1.example.com;lr>", "<sip:p2;lr>"]
    assert bye.from_tag == "ourtag" and bye.to_tag == "ft1"
    assert bye.cseq is not None and bye.cseq.number == dialog.local_seq


def test_dialog_strict_router() -> None:
    invite = make_request("INVITE", extra=[("Record-Route", "<sip:strict.example.com>")])
    dialog = Dialog.as_uas(invite, "t", "")
    bye = dialog.create_request("BYE", "127.0.0.1", 5060, "udp")
    assert str(bye.uri) == "sip:strict.example.com"
    assert bye.headers.values("Route") == ["<sip:alice@127.0.0.1:5099>"]


def test_session_timer_negotiation() -> None:
    plain = make_request("INVITE")
    assert negotiate_as_uas(plain, 90, 0) is None
    timer = negotiate_as_uas(plain, 90, 1800)
    assert timer is not None and timer.we_refresh and timer.refresher == "uas"
    asked = make_request("INVITE", extra=[("Supported", "timer"), ("Session-Expires", "300")])
    timer = negotiate_as_uas(asked, 90, 1800)
    assert timer is not None and (timer.interval, timer.refresher) == (300, "uac")
    assert timer.expire_after() == 268
    with pytest.raises(SessionTimerTooSmall):
        negotiate_as_uas(make_request("INVITE", extra=[("Session-Expires", "60")]), 90, 1800)


def test_streams_from_answer_to_our_offer() -> None:
    from confserver.sip.sdp import streams_from_answer

    ours = make_offer("127.0.0.1", 30000)
    answer = SessionDescription.parse(
        b"v=0\r\no=b 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
        b"m=audio 5004 RTP/AVP 8 97\r\na=rtpmap:97 telephone-event/8000\r\na=sendonly\r\n")
    [stream] = streams_from_answer(ours, answer)
    assert (stream.codec.name, stream.payload_type, stream.dtmf_payload_type) == ("PCMA", 8, 97)
    assert (stream.remote_address, stream.remote_port, stream.direction) == ("10.0.0.2", 5004, "recvonly")
    declined = SessionDescription.parse(bytes(answer).replace(b"m=audio 5004", b"m=audio 0"))
    assert streams_from_answer(ours, declined) == []


@pytest.mark.parametrize("policy,proto", [("required", "RTP/SAVP"), ("optional", "RTP/AVP")])
def test_offer_with_srtp_keys_and_the_answer_settles_them(policy: str, proto: str) -> None:
    """Our offer carries SDES keys (RFC 4568) for two suites; the answerer picks one by
    tag and the stream keeps our key of that tag and theirs."""
    from confserver.media.sdes import CryptoAttribute
    from confserver.sip.sdp import answer_offer, streams_from_answer

    ours = make_offer("127.0.0.1", 30000, srtp=policy)
    media = ours.media[0]
    assert media.proto == proto
    offered = [CryptoAttribute.parse(v) for v in media.attribute_values("crypto")]
    assert [(c.tag, c.suite) for c in offered] == [(1, "AES_CM_128_HMAC_SHA1_80"),
                                                  (2, "AES_CM_128_HMAC_SHA1_32")]
    answer, [theirs] = answer_offer(SessionDescription.parse(bytes(ours)), "127.0.0.2", [40000])
    [stream] = streams_from_answer(ours, answer)
    assert stream.local_crypto == str(offered[0])  # ours, tag 1
    assert stream.remote_crypto == theirs.local_crypto  # the key they send with
    assert stream.remote_crypto != stream.local_crypto


def test_srtp_we_require_refused_by_the_answer_leaves_no_stream() -> None:
    from confserver.sip.sdp import answer_offer, streams_from_answer

    required = make_offer("127.0.0.1", 30000, srtp="required")
    plain_answer = make_offer("127.0.0.2", 40000)  # RTP/AVP, no a=crypto
    assert streams_from_answer(required, plain_answer) == []
    # best effort: a peer that ignores the keys gets plain RTP
    optional = make_offer("127.0.0.1", 30000, srtp="optional")
    [stream] = streams_from_answer(optional, plain_answer)
    assert stream.local_crypto is None and stream.remote_crypto is None
    # an a=crypto answering a tag we never offered is refused
    answer, _ = answer_offer(SessionDescription.parse(bytes(optional)), "127.0.0.2", [40000])
    forged = bytes(answer).replace(b"a=crypto:1 ", b"a=crypto:7 ")
    assert streams_from_answer(optional, SessionDescription.parse(forged)) == []
    # and a plain offer answered with keys is not a usable answer either
    plain = make_offer("127.0.0.1", 30000)
    assert streams_from_answer(plain, answer) == []


def test_an_sdp_copy_shares_nothing_that_can_change() -> None:
    import copy

    from confserver.sip.sdp import SessionDescription
    raw = (b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
           b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
    original = SessionDescription.parse(raw)
    duplicate = original.copy()
    assert duplicate == copy.deepcopy(original)
    duplicate.origin.version += 1
    duplicate.media[0].formats.remove("101")
    duplicate.media[0].set_direction("sendonly")
    duplicate.attributes.append(("tool", "x"))
    assert original == SessionDescription.parse(raw)


@pytest.mark.parametrize("extmap,accepted", [
    ("1 urn:ietf:params:rtp-hdrext:ssrc-audio-level", 1),
    ("5/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on", 5),
    ("3/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level", None),  # they will not send it
    ("15 urn:ietf:params:rtp-hdrext:ssrc-audio-level", None),          # reserved ID
    ("2 urn:ietf:params:rtp-hdrext:toffset", None),
])
def test_the_senders_audio_level_extension_is_accepted_for_receiving(extmap: str,
                                                                     accepted: int | None) -> None:
    offer = make_offer("10.0.0.1", 4000)
    offer.media[0].attributes.append(("extmap", extmap))
    answer, [stream] = answer_offer(SessionDescription.parse(bytes(offer)), "127.0.0.1", [30000])
    assert stream.audio_level_id == accepted
    answered = answer.media[0].attribute_values("extmap")
    if accepted is None:
        assert answered == []
    else:
        assert answered == [f"{accepted}/recvonly urn:ietf:params:rtp-hdrext:ssrc-audio-level"]


# ------------------------------------------------------------------ round trip (hypothesis)
_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=12)
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"),
                max_size=20).map(str.strip).filter(bool)
_IP4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ATTRIBUTE = st.tuples(_TOKEN, st.none() | st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=30))


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    """Descriptions as the parser returns them: every media line with a port has an
    address, list fields are lists, and text has no line breaks."""
    connection = draw(st.none() | _IP4)
    media = []
    for _ in range(draw(st.integers(0, 4))):
        port = draw(st.integers(0, 65535))
        own = draw(st.none() | _IP4) if connection else (draw(_IP4) if port else None)
        media.append(Media(draw(st.sampled_from(["audio", "video", "application"])), port,
                           draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"])),
                           draw(st.lists(st.integers(0, 127).map(str), min_size=1, max_size=8)),
                           connection=own, attributes=draw(st.lists(_ATTRIBUTE, max_size=6)),
                           bandwidths=draw(st.lists(st.just("AS:64"), max_size=1)),
                           port_count=draw(st.none() | st.integers(1, 8)),
                           info=draw(st.none() | _TEXT)))
    return SessionDescription(
        origin=Origin(draw(_TOKEN), draw(st.integers(0, 2**62)), draw(st.integers(0, 2**62)),
                      "IN", "IP4", draw(_IP4)),
        name=draw(_TEXT), connection=connection,
        times=draw(st.lists(st.just("0 0"), min_size=1, max_size=2)),
        attributes=draw(st.lists(_ATTRIBUTE, max_size=6)), media=media,
        bandwidths=draw(st.lists(st.just("CT:128"), max_size=1)))


@given(session_descriptions())
def test_sdp_parse_of_serialized_is_the_same_description(sdp: SessionDescription) -> None:
    again = SessionDescription.parse(bytes(sdp))
    assert again == sdp
    assert bytes(again) == bytes(sdp)


def test_an_offer_beyond_the_bounds_is_refused_before_any_work() -> None:
    head = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    many_lines = head + "m=audio 4000 RTP/AVP 0\r\n" * (MAX_MEDIA + 1)
    with pytest.raises(SdpError, match="media lines"):
        SessionDescription.parse(many_lines)
    formats = " ".join(str(96 + (i % 32)) for i in range(MAX_FORMATS + 1))
    with pytest.raises(SdpError, match="formats"):
        SessionDescription.parse(head + f"m=audio 4000 RTP/AVP {formats}\r\n")
    with pytest.raises(SdpError, match="lines"):
        SessionDescription.parse(head + "a=x\r\n" * MAX_LINES)
    # at the bounds, an answer is still found (the last format is the one we take)
    rtpmaps = "".join(f"a=rtpmap:{96 + i} X{i}/8000\r\n" for i in range(MAX_FORMATS - 1))
    offer = SessionDescription.parse(
        head + "m=audio 4000 RTP/AVP " + " ".join(str(96 + i) for i in range(MAX_FORMATS - 1))
        + " 0\r\n" + rtpmaps)
    _answer, [stream] = answer_offer(offer, "127.0.0.1", [30000])
    assert stream.codec.name == "PCMU"
