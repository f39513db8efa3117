"""Switched video: key frames, following the speaker, pinning, continuous rewritten streams."""

from __future__ import annotations

import itertools

from confserver.mcu.video import VideoSwitch, is_keyframe
from confserver.media.rtp import RtpPacket

VP8_KEY = bytes([0x90, 0x80, 0x05, 0x10, 0x02, 0x00]) + b"\x9d\x01\x2a"  # X, I, S; P=0
VP8_DELTA = bytes([0x90, 0x80, 0x06, 0x11]) + b"\x00\x00"                # P=1
VP8_MIDDLE = bytes([0x80, 0x80, 0x06, 0x10]) + b"\x00"                   # not a start


def test_keyframe_detection() -> None:
    assert is_keyframe("VP8", VP8_KEY)
    assert not is_keyframe("VP8", VP8_DELTA) and not is_keyframe("VP8", VP8_MIDDLE)
    assert is_keyframe("VP8", bytes([0x10, 0x10]))                       # no extension
    assert not is_keyframe("VP8", b"") and not is_keyframe("VP8", bytes([0x90]))
    assert is_keyframe("H264", bytes([0x65, 0x88]))                      # IDR slice
    assert is_keyframe("H264", bytes([0x67, 0x42]))                      # SPS
    assert not is_keyframe("H264", bytes([0x41, 0x9A]))                  # non-IDR slice
    stap = bytes([0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    assert is_keyframe("H264", stap)
    assert is_keyframe("H264", bytes([0x7C, 0x85, 0x88]))                # FU-A start of IDR
    assert not is_keyframe("H264", bytes([0x7C, 0x05, 0x88]))            # FU-A middle
    assert not is_keyframe("H264", bytes([0x18, 0x00, 0x09, 0x67]))      # truncated STAP-A
    assert not is_keyframe("G722", VP8_KEY)


def packets(ssrc: int, start_seq: int, start_ts: int, keyframe_at: set[int], count: int,
            payload_type: int = 96) -> list[RtpPacket]:
    return [RtpPacket(payload_type, (start_seq + i) & 0xFFFF, (start_ts + 3000 * i) & 0xFFFFFFFF,
                      ssrc, VP8_KEY if i in keyframe_at else VP8_DELTA, True)
            for i in range(count)]


def test_everyone_sees_the_speaker_and_the_speaker_the_previous_one() -> None:
    switch = VideoSwitch()
    requests = set()
    for pid in ("a", "b", "viewer"):
        requests |= switch.add(pid, "VP8", 100, sends=pid != "viewer")
    assert "a" in requests                            # a sender is asked for a key frame
    switch.set_speaker("a")
    a = packets(0xA, 100, 1000, {0}, 5)
    b = packets(0xB, 60000, 5_000_000, {3}, 8)
    for packet in a:
        switch.on_packet("a", packet)
    assert switch.source_of("viewer") == "a" and switch.source_of("b") == "a"
    assert switch.keyframe_for("a") == "b"           # a is to see the only other sender
    requests = switch.set_speaker("b")
    assert "b" in requests
    received: list[RtpPacket] = []
    for i, packet in enumerate(b):
        # b's key frame is its fourth packet: until then the viewer keeps seeing a
        if i < 3:
            assert switch.source_of("viewer") == "a"
        result = switch.on_packet("b", packet)
        received += [RtpPacket.parse(f.data) for f in result.forwards if f.receiver == "viewer"]
    assert switch.source_of("viewer") == "b" and switch.source_of("b") == "a"
    assert len(received) == 5 and is_keyframe("VP8", received[0].payload)


def test_rewritten_stream_is_continuous_across_a_switch() -> None:
    switch = VideoSwitch()
    for pid in ("a", "b", "viewer"):
        switch.add(pid, "VP8", 100, sends=pid != "viewer")
    switch.set_speaker("a")
    out: list[RtpPacket] = []
    for packet in packets(0xA, 65530, 4_294_960_000, {0}, 10):   # wraps both counters
        out += [RtpPacket.parse(f.data) for f in switch.on_packet("a", packet).forwards
                if f.receiver == "viewer"]
    switch.set_speaker("b")
    for packet in packets(0xB, 7, 123, {0}, 10):
        out += [RtpPacket.parse(f.data) for f in switch.on_packet("b", packet).forwards
                if f.receiver == "viewer"]
    assert len(out) == 20
    assert {p.ssrc for p in out} == {out[0].ssrc} and {p.payload_type for p in out} == {100}
    for before, after in itertools.pairwise(out):
        assert (after.sequence - before.sequence) & 0xFFFF == 1
        assert 0 < (after.timestamp - before.timestamp) & 0xFFFFFFFF <= 3000


def test_pinning_and_leaving_and_codec_mismatch() -> None:
    switch = VideoSwitch()
    switch.add("a", "VP8", 100)
    switch.add("b", "VP8", 100)
    switch.add("h", "H264", 102)                      # can only see H.264 senders
    switch.add("viewer", "VP8", 100, sends=False)
    switch.set_speaker("a")
    assert switch.pin("b") == {"b"}
    for packet in packets(0xB, 1, 1, {0}, 2):
        switch.on_packet("b", packet)
    assert switch.source_of("viewer") == "b" and switch.source_of("a") == "b"
    assert switch.source_of("h") is None              # no other H.264 sender
    assert switch.keyframe_for("viewer") == "b"
    switch.remove("b")
    assert switch.pinned is None and switch.source_of("viewer") is None
    for packet in packets(0xA, 1, 1, {0}, 2):
        switch.on_packet("a", packet)
    assert switch.source_of("viewer") == "a"
    assert switch.on_packet("ghost", packets(1, 1, 1, {0}, 1)[0]).forwards == []
