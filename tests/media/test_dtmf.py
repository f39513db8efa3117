"""DTMF: RFC 4733 events, SIP INFO bodies, and the in-band detector's conformance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from confserver.media.dtmf import (
    EVENT_CODES,
    DtmfDetector,
    DtmfError,
    TelephoneEvent,
    TelephoneEventReceiver,
    info_body,
    parse_info_body,
    telephone_event_packets,
    tone_for,
)

from .speech import TEXTS, speech

RNG = np.random.default_rng(2026)


def detect(signal: np.ndarray, frame: int = 160) -> list[str]:
    detector = DtmfDetector()
    digits = []
    for i in range(0, len(signal), frame):
        digits += [d.digit for d in detector.feed(signal[i:i + frame])]
    return digits


def burst(digit: str, duration_ms: int, *, deviation: float = 0.0, twist_db: float = 0.0,
          snr_db: float | None = None, level_dbm0: float = -10.0, lead: int | None = None) -> np.ndarray:
    lead = int(RNG.integers(200, 600)) if lead is None else lead  # random alignment
    tone = tone_for(digit, duration_ms, level_dbm0=level_dbm0, twist_db=twist_db,
                    deviation=deviation).astype(np.float64)
    signal = np.concatenate([np.zeros(lead), tone, np.zeros(480)])
    if snr_db is not None:
        power = np.mean(tone ** 2)
        signal += RNG.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(signal))
    return np.clip(signal, -32768, 32767).astype(np.int16)


# --------------------------------------------------------------- conformance table
ACCEPT = [
    ("40 ms", {"duration_ms": 40}),
    ("100 ms", {"duration_ms": 100}),
    ("+1.5% frequency", {"duration_ms": 50, "deviation": 0.015}),
    ("-1.5% frequency", {"duration_ms": 50, "deviation": -0.015}),
    ("twist 8 dB (high tone weaker)", {"duration_ms": 50, "twist_db": 8.0}),
    ("twist 4 dB (low tone weaker)", {"duration_ms": 50, "twist_db": -4.0}),
    ("15 dB SNR white noise", {"duration_ms": 50, "snr_db": 15.0}),
    ("40 ms at 15 dB SNR", {"duration_ms": 40, "snr_db": 15.0}),
    ("-30 dBm0 per tone", {"duration_ms": 50, "level_dbm0": -30.0}),
]
REJECT = [
    ("20 ms", {"duration_ms": 20}),
    ("15 ms", {"duration_ms": 15}),
    ("+3.5% frequency", {"duration_ms": 60, "deviation": 0.035}),
    ("-3.5% frequency", {"duration_ms": 60, "deviation": -0.035}),
]


@pytest.mark.parametrize("name,params", ACCEPT, ids=[n for n, _ in ACCEPT])
def test_detects(name: str, params: dict[str, float]) -> None:
    for digit in EVENT_CODES:
        assert detect(burst(digit, **params)) == [digit], f"{name}: {digit}"  # type: ignore[arg-type]


@pytest.mark.parametrize("name,params", REJECT, ids=[n for n, _ in REJECT])
def test_ignores(name: str, params: dict[str, float]) -> None:
    for digit in EVENT_CODES:
        assert detect(burst(digit, **params)) == [], f"{name}: {digit}"  # type: ignore[arg-type]


def test_each_digit_once_in_a_sequence_with_any_frame_size() -> None:
    digits = "7654321#*0ABCD98"
    signal = np.concatenate([burst(d, int(RNG.integers(45, 300))) for d in digits])
    for frame in (80, 160, 320, 1000):
        assert "".join(detect(signal, frame)) == digits


def test_repeated_digit_needs_a_gap_and_short_dropout_is_ignored() -> None:
    tone = tone_for("5", 60)
    dropout = np.concatenate([tone, np.zeros(40, np.int16), tone])  # 5 ms break
    assert detect(np.concatenate([np.zeros(300, np.int16), dropout, np.zeros(400, np.int16)])) == ["5"]
    twice = np.concatenate([burst("5", 60, lead=300), burst("5", 60, lead=320)])
    assert detect(twice) == ["5", "5"]


def test_long_press_reported_early_and_once() -> None:
    detector = DtmfDetector()
    signal = burst("9", 2000, lead=0)
    first_report = None
    reports = []
    for i in range(0, len(signal), 160):
        got = detector.feed(signal[i:i + 160])
        if got and first_report is None:
            first_report = i / 8000
        reports += got
    assert [d.digit for d in reports] == ["9"]
    assert first_report is not None and first_report <= 0.1  # barge-in within 100 ms


def test_talk_off_on_speech_in_several_languages(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = tmp_path_factory.mktemp("speech")
    seconds = 0.0
    false = []
    for voice in TEXTS:
        x = speech(directory, voice).astype(np.float64)
        for gain in (0.5, 1.0, 2.0):
            y = np.clip(x * gain, -32768, 32767).astype(np.int16)
            false += [(voice, gain, d) for d in detect(y)]
            seconds += len(y) / 8000
    assert seconds > 180
    assert false == []


def test_talk_off_on_music() -> None:
    # a minute of synthetic music: chords of harmonic notes on the equal-tempered scale
    rate = 8000
    notes = 220 * 2 ** (np.arange(36) / 12)
    pieces = []
    for _ in range(240):
        t = np.arange(int(rate * RNG.uniform(0.1, 0.4))) / rate
        chord = RNG.choice(notes, size=3, replace=False)
        wave_ = sum(np.sin(2 * np.pi * f * h * t) / h for f in chord for h in (1, 2, 3))
        pieces.append(4000 * wave_ * np.exp(-3 * t))
    music = np.clip(np.concatenate(pieces), -32768, 32767).astype(np.int16)
    assert detect(music) == []


# --------------------------------------------------------------- RFC 4733 and INFO
def test_telephone_event_bytes() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert bytes(event) == bytes.fromhex("0b8a0320")
    assert TelephoneEvent.parse(bytes(event)) == event
    with pytest.raises(DtmfError):
        TelephoneEvent.parse(b"\x01")


def test_event_packets_and_receiver_report_once() -> None:
    packets = telephone_event_packets("5", 16000, duration_ms=100)
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    ends = [TelephoneEvent.parse(p.payload) for p in packets if TelephoneEvent.parse(p.payload).end]
    assert len(ends) == 3 and ends[0].duration == 800  # end sent three times
    receiver = TelephoneEventReceiver()
    got = [receiver.receive(p.timestamp, p.payload) for p in packets + packets[:2]]
    assert [g for g in got if g] == ["5"]
    later = telephone_event_packets("5", 17000)
    assert receiver.receive(later[0].timestamp, later[0].payload) == "5"


@pytest.mark.parametrize("ctype,body,expected", [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", ("5", 160)),
    ("application/dtmf-relay", b"Signal=#\r\nDuration=100", ("#", 100)),
    ("application/dtmf-relay", b"Signal=11\r\n", ("#", None)),
    ("application/dtmf", b"*", ("*", None)),
])
def test_info_bodies(ctype: str, body: bytes, expected: tuple[str, int | None]) -> None:
    assert parse_info_body(ctype, body) == expected


@pytest.mark.parametrize("ctype,body", [("application/dtmf-relay", b"Signal=X"),
                                        ("application/dtmf", b""), ("text/plain", b"5")])
def test_bad_info_bodies(ctype: str, body: bytes) -> None:
    with pytest.raises(DtmfError):
        parse_info_body(ctype, body)


def test_info_body_round_trip() -> None:
    ctype, body = info_body("7", 200)
    assert parse_info_body(ctype, body) == ("7", 200)


@given(st.builds(TelephoneEvent, st.integers(0, 255), st.booleans(), st.integers(0, 63),
                 st.integers(0, 65535)))
def test_telephone_event_round_trip(event: TelephoneEvent) -> None:
    assert TelephoneEvent.parse(bytes(event)) == event
    assert bytes(TelephoneEvent.parse(bytes(event))) == bytes(event)
