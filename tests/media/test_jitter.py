"""The jitter buffer under scripted arrival patterns (no clock but the numbers we pass)."""

from __future__ import annotations

import random

from confserver.media.jitter import FrameKind, JitterBuffer
from confserver.media.rtp import RtpPacket

FRAME = 160  # 20 ms at 8 kHz


def packet(i: int, ssrc: int = 1, ts0: int = 1000, seq0: int = 0) -> RtpPacket:
    return RtpPacket(0, (seq0 + i) & 0xFFFF, (ts0 + i * FRAME) & 0xFFFFFFFF, ssrc, b"\xff" * 160)


def run(arrivals: list[tuple[float, RtpPacket]], duration: float,
        jb: JitterBuffer | None = None) -> tuple[JitterBuffer, list[tuple[FrameKind, int | None]]]:
    """Feed packets at their arrival times, pull a frame every 20 ms."""
    jb = jb or JitterBuffer(8000)
    pending = sorted(arrivals, key=lambda a: a[0])
    out: list[tuple[FrameKind, int | None]] = []
    t = 0.0
    i = 0
    while t < duration:
        while i < len(pending) and pending[i][0] <= t:
            jb.put(pending[i][1], pending[i][0])
            i += 1
        frame = jb.get(t)
        out.append((frame.kind, frame.packet.sequence if frame.packet else None))
        t = round(t + 0.02, 6)
    return jb, out


def played(out: list[tuple[FrameKind, int | None]]) -> list[int]:
    return [seq for kind, seq in out if kind is FrameKind.AUDIO and seq is not None]


def test_steady_stream_starts_after_initial_delay_and_plays_everything() -> None:
    jb, out = run([(i * 0.02, packet(i)) for i in range(100)], 2.2)
    assert out[0][0] is FrameKind.SILENCE
    assert played(out) == list(range(100))
    assert jb.stats.lost == 0 and 0.02 <= jb.delay <= 0.04


def test_first_packet_waits_the_target_on_average_whatever_the_tick_phase() -> None:
    """It plays at the first tick at least the target less half a frame after it
    came: between 30 and 50 ms with the 40 ms start-up target, 40 on average."""
    waits = []
    for phase_ms in range(0, 20, 2):
        phase = phase_ms / 1000
        jb = JitterBuffer(8000)
        first_audio = None
        for i in range(10):
            arrival = phase + i * 0.02
            jb.put(packet(i), arrival)
            tick = (i + 1) * 0.02  # ticks fall at whole multiples of 20 ms
            for t in (tick,) if first_audio is None else ():
                if jb.get(t).kind is FrameKind.AUDIO:
                    first_audio = t
        assert first_audio is not None
        waits.append(first_audio - phase)
    assert all(0.03 - 1e-9 <= w < 0.05 for w in waits), waits
    assert abs(sum(waits) / len(waits) - 0.04) < 0.002, waits


def test_reordered_packets_play_in_order() -> None:
    arrivals = [(i * 0.02, packet(i)) for i in range(50)]
    arrivals[10], arrivals[11] = (0.22, packet(11)), (0.225, packet(10))
    _, out = run(arrivals, 1.3)
    assert played(out) == list(range(50))


def test_lost_packet_is_reported_once() -> None:
    arrivals = [(i * 0.02, packet(i)) for i in range(50) if i != 20]
    jb, out = run(arrivals, 1.3)
    assert 20 not in played(out) and len(played(out)) == 49
    assert jb.stats.lost == 1


def test_sequence_and_timestamp_wrap() -> None:
    arrivals = [(i * 0.02, packet(i, ts0=0xFFFFFFFF - 5 * FRAME, seq0=0xFFFF - 5)) for i in range(30)]
    _, out = run(arrivals, 0.8)
    assert len(played(out)) == 30


def test_jitter_grows_target_fast() -> None:
    rng = random.Random(7)
    arrivals = [(i * 0.02 + rng.uniform(0, 0.08), packet(i)) for i in range(200)]
    jb, out = run(arrivals, 4.5)
    assert jb.delay >= 0.07
    assert jb.stats.lost + jb.stats.late < 10  # after adapting, nearly everything plays
    assert len(played(out)) >= 190


def test_target_shrinks_slowly_after_jitter_subsides() -> None:
    rng = random.Random(3)
    noisy = [(i * 0.02 + rng.uniform(0, 0.1), packet(i)) for i in range(150)]
    calm = [(i * 0.02, packet(i)) for i in range(150, 1000)]
    jb = JitterBuffer(8000)
    _, _out = run(noisy + calm, 3.0, jb)
    peak = jb.delay
    # continue the same stream, now without jitter, for 17 s more
    t = 3.0
    i = 0
    pending = [a for a in sorted(noisy + calm, key=lambda a: a[0]) if a[0] >= 3.0]
    while t < 20.0:
        while i < len(pending) and pending[i][0] <= t:
            jb.put(pending[i][1], pending[i][0])
            i += 1
        jb.get(t)
        t = round(t + 0.02, 6)
    assert peak >= 0.08
    assert jb.delay < peak - 0.03  # came down
    assert jb.stats.dropped >= 1


def test_sender_clock_drift_keeps_buffer_bounded() -> None:
    fast = [(i * 0.0198, packet(i)) for i in range(3000)]  # sender clock 1% fast
    jb, _out = run(fast, 59.0)
    assert jb.buffered < 0.2
    assert jb.stats.dropped >= 10


def test_slow_sender_inserts_frames() -> None:
    slow = [(i * 0.0202, packet(i)) for i in range(2000)]  # 1% slow
    jb, out = run(slow, 40.0)
    assert jb.stats.inserted + jb.stats.underruns >= 5  # concealment fills the gaps
    assert len(played(out)) == jb.stats.received and jb.stats.lost == 0


def test_ssrc_change_resets() -> None:
    arrivals = [(i * 0.02, packet(i)) for i in range(25)]
    arrivals += [(0.5 + i * 0.02, packet(i, ssrc=2, ts0=777777)) for i in range(25)]
    jb, out = run(arrivals, 1.2)
    assert jb.stats.resets == 1
    assert len(played(out)) >= 45


def test_timestamp_jump_resets() -> None:
    arrivals = [(i * 0.02, packet(i)) for i in range(25)]
    arrivals += [(0.5 + i * 0.02, packet(25 + i, ts0=1000 + 8000 * 60)) for i in range(25)]
    jb, _out = run(arrivals, 1.2)
    assert jb.stats.resets == 1


def test_duplicates_ignored() -> None:
    arrivals = [(i * 0.02, packet(i)) for i in range(20)] + [(0.1, packet(3))]
    _jb, out = run(arrivals, 0.6)
    assert played(out).count(3) == 1


def test_a_timestamp_leap_within_the_reset_limit_resumes_without_concealing_the_gap() -> None:
    # the sender's timestamps jump 4 s ahead while packets keep coming every 20 ms
    arrivals = [(i * 0.02, packet(i)) for i in range(50)]
    arrivals += [(i * 0.02, packet(i + 200, seq0=0)) for i in range(50, 120)]
    jb, out = run(arrivals, 2.42)
    assert [kind for kind, _ in out].count(FrameKind.LOST) == 0
    assert played(out) == list(range(50)) + list(range(250, 319))
    assert jb.stats.resets == 1 and jb.target < 0.05  # the leap did not pass for jitter


def _stalled_playout(stall_from: float, stall_s: float, duration: float) -> tuple[
        JitterBuffer, list[tuple[float, float]]]:
    """Packets every 20 ms; the playout clock stops pulling for ``stall_s``."""
    jb = JitterBuffer(8000)
    arrivals = [(round(i * 0.02, 6), packet(i)) for i in range(int(duration / 0.02) + 1)]
    levels: list[tuple[float, float]] = []
    t, i = 0.0, 0
    while t < duration:
        while i < len(arrivals) and arrivals[i][0] <= t:
            jb.put(arrivals[i][1], arrivals[i][0])
            i += 1
        if not stall_from <= t < stall_from + stall_s:
            jb.get(t)
            levels.append((t, jb.buffered))
        t = round(t + 0.02, 6)
    return jb, levels


def test_a_short_playout_stall_does_not_leave_latency_behind() -> None:
    # the server missed ten frames (200 ms): that much extra audio is now waiting
    jb, levels = _stalled_playout(3.0, 0.2, 6.0)
    after = [level for t, level in levels if t >= 3.2]
    assert max(after) >= 0.2                      # the backlog was there ...
    settled = [level for t, level in levels if t >= 4.7]
    assert max(settled) <= jb.target + 2 * jb.frame_s + 1e-9  # ... and gone within 1.5 s
    assert jb.stats.dropped >= 8


def test_a_long_playout_stall_jumps_back_to_the_target_depth() -> None:
    jb, levels = _stalled_playout(2.0, 1.0, 4.0)
    first_after = next(level for t, level in levels if t >= 3.0)
    assert first_after <= jb.target + jb.frame_s + 1e-9  # no second of backlog played out
    assert jb.stats.dropped >= 40
    assert len(jb._packets) <= jb._max_packets


def test_under_any_arrival_pattern_each_packet_plays_once_and_in_order() -> None:
    # the per-packet shortcuts (put and get skip the checks for late, duplicate and
    # stale packets when the packet is the next one) must never let a packet the
    # playout point has passed be played, or one be played twice
    rng = random.Random(11)
    for trial in range(60):
        arrivals: list[tuple[float, RtpPacket]] = []
        ts0 = rng.randrange(1 << 32)
        for i in range(600):
            if rng.random() < 0.03:
                continue  # lost
            delay = abs(rng.gauss(0.0, rng.choice([0.002, 0.02, 0.06])))
            if rng.random() < 0.01:
                delay += 0.4  # a burst held up in the network
            arrivals.append((i * 0.02 + delay, packet(i, ts0=ts0)))
            if rng.random() < 0.01:
                arrivals.append((i * 0.02 + delay + 0.005, packet(i, ts0=ts0)))  # duplicated
        jb = JitterBuffer(8000)
        pending = sorted(arrivals, key=lambda a: a[0])
        played: list[int] = []
        t, k = 0.0, 0
        while t < 13.0:
            while k < len(pending) and pending[k][0] <= t:
                jb.put(pending[k][1], pending[k][0])
                k += 1
            frame = jb.get(t)
            if frame.kind is FrameKind.AUDIO and frame.packet is not None:
                played.append((frame.packet.timestamp - ts0) & 0xFFFFFFFF)
            t += 0.02 if rng.random() > 0.01 else 0.3  # now and then our playout stalls
        assert played == sorted(set(played)), f"trial {trial}: out of order or repeated"
        stats = jb.stats
        assert stats.received == len(arrivals)
        assert stats.played == len(played)


def test_after_running_dry_a_reordered_pair_still_plays_in_order() -> None:
    # the sender pauses (the buffer runs dry), resumes in order, and then two packets
    # swap places: the later one must not pull the playout point past the earlier
    arrivals = [(i * 0.02, packet(i)) for i in range(10)]
    arrivals += [(0.6, packet(10)), (0.62, packet(12)), (0.625, packet(11))]
    arrivals += [(0.6 + (i - 10) * 0.02, packet(i)) for i in range(13, 30)]
    jb, out = run(arrivals, 1.2)
    played = [seq for kind, seq in out if kind is FrameKind.AUDIO]
    assert played == list(range(30))
    assert jb.stats.late == 0


def _target_with_a_sorted_window(arrivals: list[tuple[float, RtpPacket]], window: int) -> float:
    """The growth rule worked out the plain way: after each packet, the 95th percentile
    of the last ``window`` transit times above their minimum, plus half a frame."""
    target, transits = 0.04, []
    for now, p in arrivals:
        transits = [*transits, now - (p.timestamp - 1000) / 8000][-window:]
        ordered = sorted(transits)
        spread = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] - ordered[0]
        target = min(max(target, max(0.02, spread + 0.01)), 0.3)
    return target


def test_the_transit_window_grows_the_target_as_a_sorted_window_would() -> None:
    """The window is a ring with a running minimum, sorted only when read: under
    jitter, repeated transit times (the minimum among them) and a window that
    overflows many times, it grows the target exactly as sorting every time would."""
    for seed in range(20):
        rng = random.Random(seed)
        # coarse arrival times repeat transit values, so the minimum is often shared
        arrivals = [(round(i * 0.02 + rng.choice((0.0, 0.0, 0.01, 0.03)) * rng.random(), 3),
                     packet(i)) for i in range(400)]
        jb = JitterBuffer(8000, window=50)
        for now, p in arrivals:  # in sending order: no reordering, one put each
            jb.put(p, now)
        assert abs(jb.delay - _target_with_a_sorted_window(arrivals, 50)) < 1e-9
