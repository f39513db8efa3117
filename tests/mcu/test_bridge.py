"""The conference audio bridge: who hears whom, shared encodes, silence, dominant speaker."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pytest

from confserver.mcu.bridge import AudioBridge
from confserver.media.codecs import default_registry
from confserver.media.codecs.base import Pcm


class Collect:
    def __init__(self, ssrc: int | None = None) -> None:
        self.payloads: list[bytes] = []
        self.csrcs: list[tuple[int, ...]] = []
        self.ssrc = ssrc

    def send_payload(self, payload: bytes, csrc: tuple[int, ...] = ()) -> None:
        self.payloads.append(payload)
        self.csrcs.append(csrc)

    def source_id(self) -> int | None:
        return self.ssrc

    def set_pcm_rate(self, rate: int) -> bool:
        return False  # a fixed-rate codec


def tone(freq: float, frame: int, rate: int = 8000, level: float = 6000.0) -> Pcm:
    t = (np.arange(rate // 50) + frame * (rate // 50)) / rate
    out: Pcm = (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return out


def strength(pcm: np.ndarray, freq: float, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    bin_ = round(freq * len(pcm) / rate)
    return float(spectrum[max(0, bin_ - 2):bin_ + 3].max() / (spectrum.mean() + 1e-9))


def decode_all(codec_name: str, payloads: list[bytes]) -> np.ndarray:
    codec = default_registry().create(codec_name)
    return np.concatenate([codec.decode(p) for p in payloads])


def test_each_hears_the_others_and_not_itself_with_shared_encodes() -> None:
    registry = default_registry()
    muted: set[Hashable] = set()
    bridge = AudioBridge(registry, is_muted=lambda pid: pid in muted)
    freqs = {"a": 450.0, "b": 830.0, "c": 1370.0}
    outs = {pid: Collect() for pid in [*freqs, "quiet", "wide"]}
    for pid in freqs:
        bridge.add(pid, outs[pid], "PCMU", 8000)
    bridge.add("quiet", outs["quiet"], "PCMA", 8000)
    bridge.add("wide", outs["wide"], "G722", 16000)
    encodes = []
    for frame in range(100):
        for pid, freq in freqs.items():
            bridge.put(pid, tone(freq, frame))
        bridge.put("quiet", np.zeros(160, dtype=np.int16))
        bridge.put("wide", np.zeros(320, dtype=np.int16))
        encodes.append(bridge.tick().encodes)
    # three "minus own" mixes + the shared mix in two codecs: 5 encodes, not one per listener
    assert encodes[-1] == 5
    for pid, freq in freqs.items():
        heard = decode_all("PCMU", outs[pid].payloads[50:])
        others = [f for p, f in freqs.items() if p != pid]
        assert all(strength(heard, f, 8000) > 20 for f in others), pid
        assert strength(heard, freq, 8000) < 3, pid
    quiet = decode_all("PCMA", outs["quiet"].payloads[50:])
    assert all(strength(quiet, f, 8000) > 20 for f in freqs.values())
    wide = decode_all("G722", outs["wide"].payloads[50:])
    assert all(strength(wide, f, 16000) > 20 for f in freqs.values())
    # a muted talker leaves the mix
    muted.add("a")
    for pid in outs:
        outs[pid].payloads.clear()
    for frame in range(100, 160):
        for pid, freq in freqs.items():
            bridge.put(pid, tone(freq, frame))
        bridge.tick()
    quiet = decode_all("PCMA", outs["quiet"].payloads[20:])
    assert strength(quiet, 450.0, 8000) < 3 and strength(quiet, 830.0, 8000) > 20


def test_nobody_talking_sends_one_silence_per_codec_and_noise_stays_out() -> None:
    bridge = AudioBridge(default_registry())
    outs = {pid: Collect() for pid in "abc"}
    for pid in "abc":
        bridge.add(pid, outs[pid], "PCMU", 8000)
    rng = np.random.default_rng(3)
    for _ in range(20):
        for pid in "abc":
            bridge.put(pid, rng.normal(0, 30, 160).astype(np.int16))  # -60 dBov hiss
        report = bridge.tick()
        assert report.talking == set() and report.encodes == 1
    assert all(len(o.payloads) == 20 for o in outs.values())


def test_the_lobby_hears_music_and_the_dominant_speaker_is_reported() -> None:
    deaf = {"lobby"}
    bridge = AudioBridge(default_registry(), is_deaf=lambda pid: pid in deaf)
    seen: list[Hashable | None] = []
    bridge.on_dominant = seen.append
    outs = {pid: Collect(ssrc) for pid, ssrc in (("talker", 11), ("listener", 22), ("lobby", 33))}
    for pid, out in outs.items():
        bridge.add(pid, out, "PCMU", 8000)
    for frame in range(100):
        bridge.put("talker", tone(500.0, frame))
        bridge.put("lobby", tone(900.0, frame))  # talks but is not heard
        bridge.tick()
    heard = decode_all("PCMU", outs["listener"].payloads[50:])
    assert strength(heard, 500.0, 8000) > 20 and strength(heard, 900.0, 8000) < 3
    lobby = decode_all("PCMU", outs["lobby"].payloads[50:])
    # the lobby hears music (the first chord's notes), not the meeting or itself
    assert strength(lobby, 261.6, 8000) > 20 and strength(lobby, 392.0, 8000) > 20
    assert strength(lobby, 500.0, 8000) < 3 and strength(lobby, 900.0, 8000) < 3
    assert seen and seen[-1] == "talker"
    # the listener's packets name the dominant speaker as their first contributing source
    assert outs["listener"].csrcs[-1] == (11,) and outs["talker"].csrcs[-1] == ()
    bridge.remove("talker")
    assert "talker" not in bridge.legs


def test_announcements_reach_everyone_and_private_feedback_one_listener() -> None:
    bridge = AudioBridge(default_registry())
    outs = {pid: Collect() for pid in ("a", "b")}
    for pid, out in outs.items():
        bridge.add(pid, out, "PCMU", 8000)
    bridge.announce(np.concatenate([tone(600.0, i, 16000) for i in range(25)]))
    bridge.play_to("a", np.concatenate([tone(1400.0, i, 16000) for i in range(25)]))
    for _ in range(30):
        bridge.put("a", None)
        bridge.put("b", None)
        bridge.tick()
    a = decode_all("PCMU", outs["a"].payloads[2:24])
    b = decode_all("PCMU", outs["b"].payloads[2:24])
    assert strength(a, 600.0, 8000) > 20 and strength(a, 1400.0, 8000) > 20
    assert strength(b, 600.0, 8000) > 20 and strength(b, 1400.0, 8000) < 3
    assert "announcer" not in bridge.legs


class Sink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.frames: list[Pcm] = []
        self.fail_after = fail_after
        self.closed = False

    def write(self, pcm: Pcm) -> None:
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            raise OSError(28, "No space left on device")
        self.frames.append(pcm)

    def close(self) -> None:
        self.closed = True


def test_recording_gets_the_program_mix_and_a_full_disk_stops_only_the_recording() -> None:
    bridge = AudioBridge(default_registry())
    outs = {pid: Collect() for pid in "ab"}
    for pid, out in outs.items():
        bridge.add(pid, out, "PCMU", 8000)
    sink = Sink()
    bridge.recorder = sink
    for frame in range(50):
        bridge.put("a", tone(450.0, frame))
        bridge.put("b", tone(830.0, frame))
        bridge.tick()
    recorded = np.concatenate(sink.frames[10:])
    assert strength(recorded, 450.0, 16000) > 20 and strength(recorded, 830.0, 16000) > 20
    failures: list[Exception] = []
    bridge.recorder = Sink(fail_after=3)
    broken = bridge.recorder
    bridge.on_recording_failed = failures.append
    for frame in range(50, 60):
        bridge.put("a", tone(450.0, frame))
        bridge.tick()
    assert bridge.recorder is None and broken.closed and len(failures) == 1
    assert len(outs["b"].payloads) == 60  # the meeting went on


def test_silent_meetings_carry_comfort_noise_not_dead_air() -> None:
    bridge = AudioBridge(default_registry())
    out = Collect()
    bridge.add("a", out, "PCMA", 8000)
    for _ in range(20):
        bridge.put("a", np.zeros(160, dtype=np.int16))
        bridge.tick()
    heard = decode_all("PCMA", out.payloads[5:]).astype(np.float64)
    rms = float(np.sqrt(np.mean(heard ** 2)))
    assert 2.0 < rms < 40.0  # faint (around -70 dBov) but present


def test_agc_lifts_a_quiet_talker_and_leaves_a_normal_one() -> None:
    bridge = AudioBridge(default_registry())
    outs = {pid: Collect() for pid in ("quiet", "normal", "listener")}
    for pid, out in outs.items():
        bridge.add(pid, out, "PCMU", 8000)
    for frame in range(300):
        bridge.put("quiet", tone(450.0, frame, level=400.0))     # about -38 dBov
        bridge.put("normal", tone(830.0, frame, level=2300.0))   # about -23 dBov
        bridge.tick()
    assert bridge.legs["quiet"].gain > 3.0
    assert bridge.legs["normal"].gain == pytest.approx(1.0, abs=0.05)
    bridge.agc = False
    assert bridge._gain(bridge.legs["quiet"], tone(450.0, 0)) is not None


def test_an_all_opus_meeting_mixes_at_48_khz() -> None:
    bridge = AudioBridge(default_registry())
    outs = {pid: Collect() for pid in ("a", "b", "c")}
    bridge.add("a", outs["a"], "opus", 48000)
    bridge.add("b", outs["b"], "opus", 48000)
    assert bridge.rate == 48000 and bridge.frame_samples == 960
    for frame in range(60):
        bridge.put("a", tone(1000.0, frame, 48000))
        bridge.put("b", np.zeros(960, dtype=np.int16))
        bridge.tick()
    heard = decode_all("opus", outs["b"].payloads[20:])
    assert strength(heard, 1000.0, 48000) > 20
    bridge.add("c", outs["c"], "PCMU", 8000)     # a narrowband caller arrives
    assert bridge.rate == 16000
    bridge.remove("c")
    assert bridge.rate == 48000


def test_a_frame_known_quiet_is_not_measured_and_ends_talking_after_the_hangover() -> None:
    bridge = AudioBridge(default_registry())
    outs = {pid: Collect() for pid in ("a", "b")}
    for pid, out in outs.items():
        bridge.add(pid, out, "PCMU", 8000)
    judged: list[bytes] = []
    real = bridge._vad.is_speech
    bridge._vad.is_speech = lambda data, rate: judged.append(data) or real(data, rate)  # type: ignore[method-assign]
    for frame in range(5):
        bridge.put("a", tone(440, frame), quiet=False)
        bridge.put("b", np.zeros(160, dtype=np.int16), quiet=True)
        assert "a" in bridge.tick().talking
    assert len(judged) == 5  # only a's frames reached the VAD
    # a's frames now come as known-quiet: a stays in the mix for the hangover only
    talking = []
    for _frame in range(40):
        bridge.put("a", np.zeros(160, dtype=np.int16), quiet=True)
        bridge.put("b", np.zeros(160, dtype=np.int16), quiet=True)
        talking.append("a" in bridge.tick().talking)
    assert talking[:20] == [True] * 20 and not any(talking[30:])
    assert len(judged) == 5


class Adaptable(Collect):
    """An Opus participant whose stream can decode at any of Opus's rates."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[int] = []

    def set_pcm_rate(self, rate: int) -> bool:
        self.rates.append(rate)
        return True


def test_opus_legs_decode_at_the_mixing_rate_and_follow_it_when_it_changes() -> None:
    bridge = AudioBridge(default_registry())
    a, b, phone = Adaptable(), Adaptable(), Collect()
    bridge.add("a", a, "opus", 48000)
    bridge.add("b", b, "opus", 48000)
    assert bridge.rate == 48000 and a.rates == [] and b.rates == []  # already at 48 kHz
    bridge.add("phone", phone, "PCMU", 8000)
    assert bridge.rate == 16000 and a.rates == [16000] and b.rates == [16000]
    assert bridge.legs["a"].codec_rate == 16000 and bridge.legs["phone"].codec_rate == 8000
    for frame in range(60):  # a's frames now come at 16 kHz and are mixed as they are
        bridge.put("a", tone(700.0, frame, 16000))
        bridge.put("b", np.zeros(320, dtype=np.int16))
        bridge.put("phone", np.zeros(160, dtype=np.int16))
        bridge.tick()
    assert strength(decode_all("PCMU", phone.payloads[20:]), 700.0, 8000) > 20
    assert strength(decode_all("opus", b.payloads[20:]), 700.0, 48000) > 20
    late = Adaptable()
    bridge.add("late", late, "opus", 48000)  # joins a 16 kHz meeting: takes 16 kHz at once
    assert late.rates == [16000]
    bridge.remove("phone")
    assert bridge.rate == 48000 and a.rates == [16000, 48000] and late.rates == [16000, 48000]
