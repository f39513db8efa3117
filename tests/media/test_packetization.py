"""A peer whose packets are not 20 ms (a gateway set to 30 ms that does not say so in
its SDP, a 10 ms or 60 ms sender): the jitter buffer follows the sender's real
packetization and the stream still hands out 20 ms frames of the same audio."""

from __future__ import annotations

import numpy as np
import pytest

from confserver.media.codecs.g711 import Pcmu
from confserver.media.jitter import JitterBuffer
from confserver.media.rtp import RtpPacket
from confserver.media.stream import AudioStream


def signal(seconds: float) -> np.ndarray:
    """Noise at a speaking level: any stretch of it is found in one place only."""
    rng = np.random.default_rng(7)
    return (rng.standard_normal(int(8000 * seconds)) * 3000).clip(-32768, 32767) \
        .astype(np.int16)


def packets_of(pcm: np.ndarray, packet_ms: int) -> list[RtpPacket]:
    size = 8 * packet_ms
    codec = Pcmu()
    return [RtpPacket(0, (40000 + i) & 0xFFFF, 5000 + i * size, 9,
                      codec.encode(pcm[i * size:(i + 1) * size]))
            for i in range(len(pcm) // size)]


def decoded(packets: list[RtpPacket]) -> np.ndarray:
    """What the packets carry, decoded straight (no jitter buffer, no concealment)."""
    return Pcmu().decode_table[np.frombuffer(b"".join(p.payload for p in packets), np.uint8)]


def pulled(stream: AudioStream, arrivals: list[tuple[float, RtpPacket]],
           seconds: float) -> list[np.ndarray | None]:
    """Packets go in at their arrival times; a frame is pulled every 20 ms."""
    out: list[np.ndarray | None] = []
    arrivals = sorted(arrivals, key=lambda a: a[0])
    i = 0
    for tick in range(int(seconds / 0.02)):
        now = tick * 0.02
        while i < len(arrivals) and arrivals[i][0] <= now:
            stream.receive(bytes(arrivals[i][1]), arrivals[i][0])
            i += 1
        out.append(stream.pull(now))
    return out


@pytest.mark.parametrize("packet_ms", [10, 30, 40, 60])
def test_every_pull_is_one_20ms_frame_of_the_senders_audio(packet_ms: int) -> None:
    packets = packets_of(signal(3.0), packet_ms)
    sent = decoded(packets)
    stream = AudioStream(Pcmu(), 0, None)  # the SDP said nothing, so 20 ms was assumed
    frames = pulled(stream, [(i * packet_ms / 1000, p) for i, p in enumerate(packets)], 3.4)
    audio = [f for f in frames if f is not None]
    assert all(len(f) == 160 for f in audio)
    assert stream.jitter.frame_ts == 8 * packet_ms and stream.jitter.stats.repacketized == 1
    heard = np.concatenate(audio)
    # past the first packets (before the sender's packetization was known), the audio
    # is the sender's, sample for sample (the concealment's look-ahead delays it)
    probe = sent[8000:8400]
    at = [k for k in range(len(heard) - 400) if np.array_equal(heard[k:k + 400], probe)]
    assert len(at) == 1, "a stretch of the sent audio is not heard intact"
    lag = at[0] - 8000
    assert np.array_equal(heard[lag + 2000:lag + 20000], sent[2000:20000])


def test_a_30ms_sender_announced_by_its_sdp_is_read_from_the_start() -> None:
    sent = signal(1.0)
    stream = AudioStream(Pcmu(), 0, None, remote_ptime_ms=30)
    frames = pulled(stream, [(i * 0.03, p) for i, p in enumerate(packets_of(sent, 30))], 1.2)
    assert stream.jitter.stats.repacketized == 0 and stream.jitter.stats.lost == 0
    assert all(len(f) == 160 for f in frames if f is not None)


def test_the_frame_follows_a_sender_that_changes_packetization_mid_call() -> None:
    source = signal(4.0)
    first = packets_of(source[:16000], 20)
    later = [RtpPacket(0, (first[-1].sequence + 1 + i) & 0xFFFF,
                       first[-1].timestamp + 160 + i * 240, 9, p.payload)
             for i, p in enumerate(packets_of(source[16000:], 30))]
    sent = decoded(first + later)
    arrivals = [(i * 0.02, p) for i, p in enumerate(first)] + \
        [(2.0 + i * 0.03, p) for i, p in enumerate(later)]
    stream = AudioStream(Pcmu(), 0, None)
    frames = pulled(stream, arrivals, 4.3)
    assert all(len(f) == 160 for f in frames if f is not None)
    assert stream.jitter.frame_ts == 240
    heard = np.concatenate([f for f in frames if f is not None])
    probe = sent[24000:24400]  # a second into the 30 ms part
    assert any(np.array_equal(heard[k:k + 400], probe) for k in range(len(heard) - 400))


def test_silence_gaps_and_losses_are_not_taken_for_another_packetization() -> None:
    jb = JitterBuffer(8000)
    seq, ts, now = 0, 0, 0.0
    for i in range(300):
        if i % 50 == 49:
            ts += 8000 + 7 * i  # a sender resuming after a silence: next number, later time
        if i % 7 == 3:
            seq, ts, now = seq + 1, ts + 160, now + 0.02  # lost on the way
        jb.put(RtpPacket(0, seq & 0xFFFF, ts, 1, b"\xff" * 160), now)
        jb.get(now)
        seq, ts, now = seq + 1, ts + 160, now + 0.02
    assert jb.frame_ts == 160 and jb.stats.repacketized == 0


@pytest.mark.parametrize("phase", [0.003, 0.009, 0.021, 0.027])
def test_a_30ms_sender_whose_packets_are_each_played_before_the_next_is_heard(
        phase: float) -> None:
    """Packets arriving a few ms after our pulls, each played before the next comes:
    when the sender's packetization is recognised no packet is held, and the playout
    point must move onto the sender's grid (it stayed on the 20 ms one, and every
    later packet was taken for late: a 30 ms gateway's early media was all silence)."""
    packets = packets_of(signal(3.0), 30)
    stream = AudioStream(Pcmu(), 0, None)
    arrivals = [(phase + i * 0.03, p) for i, p in enumerate(packets)]
    frames = pulled(stream, arrivals, 3.4)
    stats = stream.jitter.stats
    assert stream.jitter.frame_ts == 240 and stats.played >= len(packets) - 3, stats
    heard = np.concatenate([f for f in frames if f is not None])
    sent = decoded(packets)
    probe = sent[8000:8400]
    assert any(np.array_equal(heard[k:k + 400], probe) for k in range(len(heard) - 400))
