"""bench/dominant_speaker: switch latency and false switches on a scripted meeting.

    .venv/bin/python -m bench.dominant_speaker [--turns 200] [--seed 1]

Four participants take turns of 2-8 s; the others make short backchannel
sounds (100-400 ms) half of the time. Ground truth is who holds the turn.
"""

from __future__ import annotations

import argparse
import random
import statistics

from confserver.mcu.dominant import DominantSpeaker
from tests.mcu.test_dominant import SILENT, SPEECH, speech_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    people = ["p0", "p1", "p2", "p3"]
    ds = DominantSpeaker()
    for p in people:
        ds.add(p)
    latencies: list[float] = []
    false_switches = 0
    frames_total = 0
    previous = None
    current_turn = None
    for _turn in range(args.turns):
        speaker = rng.choice([p for p in people if p != current_turn])
        current_turn = speaker
        frames = speech_frames(rng.uniform(2, 8), rng)
        others = {p: [SILENT] * len(frames) for p in people if p != speaker}
        for quiet in others.values():
            if rng.random() < 0.5:
                at = rng.randrange(0, len(frames) - 20)
                length = rng.randint(5, 20)
                quiet[at:at + length] = [SPEECH] * len(quiet[at:at + length])
        switched_at = None
        for i, level in enumerate(frames):
            levels = {speaker: level, **{p: q[i] for p, q in others.items()}}
            decision = ds.frame(levels)
            if decision != previous:
                if decision == speaker and switched_at is None:
                    switched_at = i
                elif decision != speaker:
                    false_switches += 1
                previous = decision
        if switched_at is not None:
            latencies.append(switched_at * 0.02)
        elif previous == speaker:
            latencies.append(0.0)
        frames_total += len(frames)
    minutes = frames_total * 0.02 / 60
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"{args.turns} turns, {minutes:.1f} min: switch latency median "
          f"{statistics.median(latencies):.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s; "
          f"false switches {false_switches}; turns never followed "
          f"{args.turns - len(latencies)}")


if __name__ == "__main__":
    main()
