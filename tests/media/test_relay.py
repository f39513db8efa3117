"""Relaying payloads untouched (echo, later mediation) and concealing around losses."""

from __future__ import annotations

import numpy as np

from confserver.media.codecs import default_registry
from confserver.media.codecs.g711 import ULAW_ENCODE
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream


def ulaw_tone(seq: int) -> bytes:
    t = (np.arange(160) + 160 * seq) / 8000
    pcm = (8000 * np.sin(2 * np.pi * 310 * t)).astype(np.int32)
    return bytes(ULAW_ENCODE[pcm + 32768])


def test_received_payloads_go_out_byte_for_byte_and_losses_are_concealed() -> None:
    stream = AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=7)
    now, out = 0.0, []
    for seq in range(40):
        if seq not in (20, 21):  # two frames lost
            stream.receive(bytes(RtpPacket(0, seq, seq * 160, 99, ulaw_tone(seq))), now)
        payload, pcm = stream.pull_payload(now)
        out.append((payload, pcm))
        now += 0.02
    relayed = [p for p, _ in out if p is not None]
    # the jitter buffer holds two frames at the start, so relaying ends at 37
    assert relayed == [ulaw_tone(seq) for seq in range(38) if seq not in (20, 21, 22)]
    kinds = ["relay" if p is not None else "pcm" if c is not None else "none" for p, c in out]
    first = kinds.index("relay")
    # two concealed frames, one decoded frame blended after the loss, then relaying again
    assert kinds[first:].count("pcm") == 3 and kinds[-1] == "relay"
    concealed = [c for p, c in out[first:] if c is not None]
    assert all(np.abs(c.astype(np.int32)).max() > 1000 for c in concealed[:1])  # not silence
    packet = RtpPacket.parse(stream.packetize_payload(relayed[0]))
    assert packet.payload == relayed[0] and packet.ssrc == 7 and packet.payload_type == 0


def test_a_queued_digit_goes_before_relayed_audio() -> None:
    stream = AudioStream(default_registry().create("PCMU"), 0, 101)
    stream.send_digit("5", 60)
    first = RtpPacket.parse(stream.packetize_payload(b"\xff" * 160))
    assert first.payload_type == 101


def test_relaying_opus_keeps_the_decoder_in_step() -> None:
    registry = default_registry()
    encoder = registry.create("opus")
    stream = AudioStream(registry.create("opus"), 111, None)
    t = np.arange(960) / 48000
    now = 0.0
    for seq in range(12):
        pcm = (6000 * np.sin(2 * np.pi * 440 * (t + seq * 0.02))).astype(np.int16)
        stream.receive(bytes(RtpPacket(111, seq, seq * 960, 5, encoder.encode(pcm))), now)
        payload, _ = stream.pull_payload(now)
        now += 0.02
    assert payload is not None


def test_concealment_after_relayed_frames_continues_the_signal_in_time() -> None:
    # relayed audio cannot be held back, so the synthetic frame must carry on from
    # the last relayed sample: it should look like the frame that was lost
    codec = default_registry().create("PCMU")
    for seq in range(5):
        codec.keep(ulaw_tone(seq))  # type: ignore[attr-defined]
    concealed = codec.conceal(160).astype(np.float64)
    t = (np.arange(160) + 160 * 5) / 8000
    truth = 8000 * np.sin(2 * np.pi * 310 * t)
    correlation = float(np.dot(concealed[:80], truth[:80]) /
                        np.sqrt(np.dot(concealed[:80], concealed[:80]) * np.dot(truth[:80], truth[:80])))
    assert correlation > 0.9, correlation


def test_mixed_payloads_name_their_contributing_sources() -> None:
    stream = AudioStream(default_registry().create("PCMU"), 0, 101, ssrc=9)
    packet = RtpPacket.parse(stream.packetize_payload(b"\xff" * 160, csrc=(11, 22)))
    assert packet.csrc == (11, 22) and packet.ssrc == 9 and packet.payload == b"\xff" * 160
    later = RtpPacket.parse(stream.packetize_payload(b"\xff" * 160))
    assert later.csrc == () and later.sequence == (packet.sequence + 1) & 0xFFFF


def test_concealing_silence_is_silence_and_skips_the_pitch_search() -> None:
    from confserver.media.plc import WaveformRepetitionPlc

    plc = WaveformRepetitionPlc(8000)
    for _ in range(3):
        plc.good_frame(np.zeros(160, dtype=np.int16))

    def no_pitch(history: np.ndarray) -> int:
        raise AssertionError("pitch search on silence")

    plc._pitch = no_pitch  # type: ignore[method-assign]
    assert not plc.conceal(160).any() and not plc.conceal(160).any()
    # speech after the gap comes through (faded in)
    t = np.arange(160) / 8000
    out = plc.good_frame((8000 * np.sin(2 * np.pi * 310 * t)).astype(np.int16))
    assert np.abs(out.astype(np.int32)).max() > 1000
