"""The detector bank: many streams' in-band DTMF detected together, from PCM or from
undecoded G.711, gives the same digits as a detector per stream."""

from __future__ import annotations

import numpy as np

from confserver.media.codecs.g711 import ALAW_DECODE, ULAW_DECODE, Pcma, Pcmu
from confserver.media.dtmf import DetectorBank, DtmfDetector, tone_for


def keyed(keys: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(rng.integers(100, 900)), dtype=np.int16)]
    for key in keys:
        parts += [tone_for(key, int(rng.integers(45, 120))),
                  np.zeros(int(rng.integers(400, 900)), dtype=np.int16)]
    signal = np.concatenate(parts)
    return np.concatenate([signal, np.zeros(-len(signal) % 160, dtype=np.int16)])


def test_bank_finds_what_single_detectors_find() -> None:
    streams = [keyed("123#", 1), keyed("*0579", 2), keyed("", 3), keyed("ABCD", 4)]
    rng = np.random.default_rng(6)
    t = np.arange(160 * 200) / 8000
    voiced = 6000 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    streams.append((voiced + rng.normal(0, 800, len(t))).clip(-32768, 32767).astype(np.int16))
    expected = []
    for signal in streams:
        single = DtmfDetector()
        expected.append("".join(d.digit for i in range(0, len(signal), 160)
                                for d in single.feed(signal[i:i + 160])))
    assert expected[:4] == ["123#", "*0579", "", "ABCD"]
    bank = DetectorBank()
    detectors = [DtmfDetector() for _ in streams]
    got = {i: "" for i in range(len(streams))}
    encoders = [Pcmu(), Pcma(), None, Pcmu(), None]
    tables = [ULAW_DECODE, ALAW_DECODE, None, ULAW_DECODE, None]
    longest = max(len(s) for s in streams)
    for start in range(0, longest, 160):
        for i, signal in enumerate(streams):
            frame = signal[start:start + 160]
            if len(frame) < 160:
                continue
            encoder, table = encoders[i], tables[i]
            if encoder is not None and table is not None:
                bank.put_encoded(detectors[i], encoder.encode(frame), table, i)
            else:
                bank.put(detectors[i], frame, i)
        for owner, digit in bank.run():
            got[int(owner)] += digit.digit  # type: ignore[call-overload]
    assert [got[i] for i in range(len(streams))] == expected


def test_odd_sized_input_goes_through_the_detector_alone() -> None:
    signal = keyed("58", 5)
    bank = DetectorBank()
    detector = DtmfDetector()
    found = ""
    for start in range(0, len(signal), 100):  # 12.5 ms pieces
        bank.put(detector, signal[start:start + 100], "x")
        found += "".join(d.digit for _o, d in bank.run())
    assert found == "58"
