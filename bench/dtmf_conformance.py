"""bench/dtmf_conformance: the in-band detector against Q.24-style limits, and talk-off.

    .venv/bin/python -m bench.dtmf_conformance

Prints one row per case (every digit, random alignment; noise where stated)
and the false detections per hour on espeak-ng speech in nine languages at
three levels (needs espeak-ng and sox).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from confserver.media.dtmf import EVENT_CODES, DtmfDetector, tone_for
from tests.media.speech import TEXTS, speech

RNG = np.random.default_rng(7)

CASES = [
    ("duration 40 ms", "detect", {"duration_ms": 40}),
    ("duration 20 ms", "ignore", {"duration_ms": 20}),
    ("frequency +1.5%", "detect", {"duration_ms": 50, "deviation": 0.015}),
    ("frequency -1.5%", "detect", {"duration_ms": 50, "deviation": -0.015}),
    ("frequency +3.5%", "ignore", {"duration_ms": 60, "deviation": 0.035}),
    ("frequency -3.5%", "ignore", {"duration_ms": 60, "deviation": -0.035}),
    ("twist 8 dB, high tone weaker", "detect", {"duration_ms": 50, "twist_db": 8.0}),
    ("twist 4 dB, low tone weaker", "detect", {"duration_ms": 50, "twist_db": -4.0}),
    ("white noise, 15 dB SNR", "detect", {"duration_ms": 50, "snr": 15.0}),
]


def one(digit: str, duration_ms: int, deviation: float = 0.0, twist_db: float = 0.0,
        snr: float | None = None) -> list[str]:
    tone = tone_for(digit, duration_ms, twist_db=twist_db, deviation=deviation).astype(float)
    signal = np.concatenate([np.zeros(int(RNG.integers(200, 600))), tone, np.zeros(480)])
    if snr is not None:
        signal += RNG.normal(0, np.sqrt(np.mean(tone ** 2) / 10 ** (snr / 10)), len(signal))
    pcm = signal.clip(-32768, 32767).astype(np.int16)
    det = DtmfDetector()
    return [d.digit for i in range(0, len(pcm), 160) for d in det.feed(pcm[i:i + 160])]


def main() -> None:
    trials = 10
    print(f"{'case':34} {'expect':7} {'right':>6} {'of':>4}  result")
    for name, expect, params in CASES:
        right = 0
        for _ in range(trials):
            for digit in EVENT_CODES:
                got = one(digit, **params)  # type: ignore[arg-type]
                right += got == ([digit] if expect == "detect" else [])
        total = trials * len(EVENT_CODES)
        print(f"{name:34} {expect:7} {right:>6} {total:>4}  {'PASS' if right == total else 'FAIL'}")
    directory = Path(tempfile.mkdtemp(prefix="sb-speech-"))
    seconds = 0.0
    false = 0
    for voice in TEXTS:
        x = speech(directory, voice).astype(float)
        for gain in (0.5, 1.0, 2.0):
            pcm = (x * gain).clip(-32768, 32767).astype(np.int16)
            det = DtmfDetector()
            false += sum(len(det.feed(pcm[i:i + 160])) for i in range(0, len(pcm), 160))
            seconds += len(pcm) / 8000
    print(f"talk-off: {false} false detections in {seconds / 60:.1f} min of speech "
          f"({false * 3600 / seconds:.1f} per hour)")


if __name__ == "__main__":
    main()
