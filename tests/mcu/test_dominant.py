"""Dominant speaker identification on scripted level traces with known ground truth."""

from __future__ import annotations

import random

from confserver.mcu.dominant import DominantSpeaker

SILENT = 90.0   # -dBov background
SPEECH = 25.0


def speech_frames(seconds: float, rng: random.Random) -> list[float]:
    """Talk-like levels: syllables with short gaps."""
    out = []
    while len(out) < seconds * 50:
        out += [SPEECH + rng.uniform(-6, 6)] * rng.randint(5, 15)  # 100-300 ms syllable
        out += [SILENT + rng.uniform(-3, 3)] * rng.randint(1, 4)   # short gap
    return out[: int(seconds * 50)]


def run(script: dict[str, list[float]]) -> list[str | None]:
    ds = DominantSpeaker()
    for p in script:
        ds.add(p)
    frames = max(len(v) for v in script.values())
    out = []
    for i in range(frames):
        levels = {p: (v[i] if i < len(v) else SILENT) for p, v in script.items()}
        out.append(ds.frame(levels))  # type: ignore[arg-type]
    return out


def switches(decisions: list[str | None]) -> list[tuple[int, str | None]]:
    out = []
    prev = None
    for i, d in enumerate(decisions):
        if d != prev:
            out.append((i, d))
            prev = d
    return out


def test_turns_are_followed_within_a_second() -> None:
    rng = random.Random(1)
    a = speech_frames(4, rng) + [SILENT] * 200
    b = [SILENT] * 200 + speech_frames(4, rng)
    c = [SILENT] * 400
    decisions = run({"a": a, "b": b, "c": c})
    changes = switches(decisions)
    assert [who for _, who in changes] == ["a", "b"]
    assert changes[0][0] <= 50             # a takes the floor within 1 s
    assert 200 <= changes[1][0] <= 250     # b within 1 s of starting at frame 200


def test_short_interjections_do_not_take_the_floor() -> None:
    rng = random.Random(2)
    a = speech_frames(8, rng)
    cough = [SILENT] * 150 + [SPEECH] * 10 + [SILENT] * 240       # 200 ms cough
    yes = [SILENT] * 250 + [SPEECH] * 20 + [SILENT] * 130           # a 400 ms "yes"
    decisions = run({"a": a, "c": cough, "y": yes})
    assert [who for _, who in switches(decisions)] == ["a"]  # no false switch


def test_measured_switch_latency_and_false_switches_over_many_turns() -> None:
    rng = random.Random(3)
    people = ["p0", "p1", "p2", "p3"]
    script: dict[str, list[float]] = {p: [] for p in people}
    truth: list[str] = []
    for turn in range(12):
        speaker = people[turn % 4]
        length = rng.uniform(3, 6)
        frames = speech_frames(length, rng)
        for p in people:
            if p == speaker:
                script[p] += frames
            else:  # others: silence with an occasional short backchannel
                quiet = [SILENT] * len(frames)
                if rng.random() < 0.5:
                    at = rng.randrange(0, len(frames) - 20)
                    quiet[at:at + rng.randint(5, 15)] = [SPEECH] * len(quiet[at:at + 15])
                script[p] += quiet[: len(frames)]
        truth += [speaker] * len(frames)
    decisions = run(script)
    changes = switches(decisions)
    turns = switches(truth)  # type: ignore[arg-type]
    latencies = []
    for start, who in turns[1:]:
        hit = next((i for i, d in changes if i >= start and d == who), None)
        assert hit is not None
        latencies.append((hit - start) * 0.02)
    false = [c for c in changes if truth[c[0]] != c[1]]
    assert max(latencies) <= 1.2 and sorted(latencies)[len(latencies) // 2] <= 0.8
    assert false == []


def test_a_long_silent_participant_rests_and_wakes_as_if_it_had_been_fed_silence() -> None:
    from confserver.mcu.dominant import DominantSpeaker, _Speaker

    detector = DominantSpeaker()
    for pid in ("talker", "quiet"):
        detector.add(pid)
    reference = _Speaker()
    reference.add_level(30.0)
    detector.frame({"talker": 30.0, "quiet": 30.0})
    for _ in range(400):  # 8 s: every window of "quiet" empties
        detector.frame({"talker": 30.0})
        reference.add_level(127.0)
    assert "quiet" in detector._dormant and "talker" in detector._speakers
    assert detector.dominant == "talker"
    detector.frame({"talker": 30.0, "quiet": 35.0})
    reference.add_level(35.0)
    woken = detector._speakers["quiet"]
    assert woken.frame_count == reference.frame_count
    assert abs(woken.noise_floor - reference.noise_floor) < 1e-9
    assert (list(woken.frames), list(woken.immediates), list(woken.mediums)) == \
        (list(reference.frames), list(reference.immediates), list(reference.mediums))
    detector.remove("quiet")
    assert "quiet" not in detector._speakers and "quiet" not in detector._dormant
