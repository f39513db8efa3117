"""bench/media_micro: codec, resampler, jitter-buffer and DTMF-detector costs.

    .venv/bin/python -m bench.media_micro [--seconds 2]

Each figure is the median of five timed runs of a tight loop on one core;
"streams per core" is 20 ms divided by the cost of one frame in each direction.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from confserver.media.codecs import default_registry
from confserver.media.dtmf import DetectorBank, DtmfDetector
from confserver.media.jitter import JitterBuffer
from confserver.media.resample import Resampler
from confserver.media.rtp import RtpPacket


def per_call_us(fn: Callable[[int], None], seconds: float) -> float:
    """Median microseconds per call of fn(i) over five runs."""
    runs = []
    for _ in range(5):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds / 5
        while time.perf_counter() < deadline:
            for _ in range(50):
                fn(count)
                count += 1
        runs.append((time.perf_counter() - start) * 1e6 / count)
    return statistics.median(runs)


def speechlike(rate: int, seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    t = np.arange(int(rate * seconds)) / rate
    x = 6000 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + rng.normal(0, 500, len(t))
    return x.clip(-32768, 32767).astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    s = args.seconds
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    registry = default_registry()
    print(f"{'codec':8} {'encode us':>10} {'decode us':>10} {'streams/core':>13}")
    for name in ("PCMU", "PCMA", "G722", "opus"):
        enc, dec = registry.create(name), registry.create(name)
        frame = enc.sample_rate // 50
        pcm = speechlike(enc.sample_rate)
        frames = [pcm[i:i + frame] for i in range(0, len(pcm) - frame + 1, frame)]
        payloads = [enc.encode(f) for f in frames]
        e = per_call_us(lambda i, c=enc, f=frames: c.encode(f[i % len(f)]), s)  # type: ignore[misc]
        d = per_call_us(lambda i, c=dec, p=payloads: c.decode(p[i % len(p)]), s)  # type: ignore[misc]
        print(f"{name:8} {e:>10.1f} {d:>10.1f} {20000 / (e + d):>13.0f}")
    print(f"{'resample':12} {'us per 20 ms':>12}")
    for a, b in ((8000, 16000), (16000, 8000), (8000, 48000), (48000, 8000), (16000, 48000)):
        r = Resampler(a, b)
        frame = speechlike(a)[: a // 50]
        cost = per_call_us(lambda i, r=r, f=frame: r.process(f), s)  # type: ignore[misc]
        print(f"{a // 1000:>2}k -> {b // 1000:>2}k   {cost:>12.1f}")
    jb = JitterBuffer(8000)
    payload = b"\xff" * 160

    def jitter_step(i: int) -> None:
        jb.put(RtpPacket(0, i & 0xFFFF, (i * 160) & 0xFFFFFFFF, 1, payload), i * 0.02)
        jb.get(i * 0.02)

    print(f"jitter buffer put+get per packet: {per_call_us(jitter_step, s):.1f} us")
    det = DtmfDetector()
    pcm8 = speechlike(8000)
    print(f"DTMF detector per 20 ms frame: "
          f"{per_call_us(lambda i: det.feed(pcm8[(i % 99) * 160:(i % 99) * 160 + 160]), s):.1f} us")
    bank = DetectorBank()
    detectors = [DtmfDetector() for _ in range(300)]

    def bank_tick(i: int) -> None:
        frame = pcm8[(i % 99) * 160:(i % 99) * 160 + 160]
        for detector in detectors:
            bank.put(detector, frame, detector)
        bank.run()
    print(f"DTMF detector bank, 300 streams, per stream-frame: "
          f"{per_call_us(bank_tick, s) / len(detectors):.1f} us")
    packet = bytes(RtpPacket(0, 1, 2, 3, payload))
    print(f"RTP parse: {per_call_us(lambda i: RtpPacket.parse(packet), s):.2f} us, "
          f"serialize: {per_call_us(lambda i: bytes(RtpPacket(0, i & 0xFFFF, i, 3, payload)), s):.2f} us")


if __name__ == "__main__":
    main()
