"""A conference's audio bridge: the A/V MCU's audio path, without I/O.

Every participant's session hands its decoded frame in (``put``) as the
media clock pulls it; after all sessions of the tick, ``tick`` decides who
is talking (webrtcvad plus an energy gate, with a short hangover), feeds the
dominant-speaker detector, mixes (talkers only, total minus own) and hands
each listener its encoded frame. Each distinct (mix, codec) is resampled and
encoded once and the same payload goes to everyone who hears it, so a
thousand silent listeners of one codec cost one encode. Listeners who hear
nothing this tick (lobby, a lone talker) get the shared silence of their
codec, so their RTP clock keeps running.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import webrtcvad

from confserver.media.codecs import CodecRegistry
from confserver.media.codecs.base import AudioCodec, Pcm, try_pcm_rate
from confserver.media.level import level_dbov
from confserver.media.resample import Resampler
from confserver.media.tones import LobbyMusic

from .dominant import DominantSpeaker
from .mixer import AudioMixer, soft_clip

GATE_DBOV = 50.0          # quieter than -50 dBov never counts as talking (noise gate)
HANGOVER_FRAMES = 25      # keep a talker in the mix 500 ms after its last speech frame
VAD_MODE = 1
VAD_RATES = (8000, 16000, 32000, 48000)
SILENCE = "silence"       # the encoder key of what listeners hear when nobody talks
LOBBY = "lobby"           # the mix key of the music callers in the lobby hear
COMFORT_RMS = 10.0        # about -70 dBov: comfort noise instead of dead silence
AGC_TARGET_RMS = 1640.0   # about -26 dBov, a comfortable speech level
AGC_MIN_GAIN, AGC_MAX_GAIN = 1.0, 4.0   # boost quiet talkers up to +12 dB; loud ones meet the soft clipper
AGC_STEP = 0.02           # per talking frame: the gain glides, so words keep their shape
AGC_LEVEL_STEP = 0.02     # the speech level follows over about a second of speech
WIDEBAND_RATE = 48000     # the mixing rate when every participant sends Opus
ANNOUNCER = "announcer"   # the mix source of tones everyone hears


class LegOutput(Protocol):
    """Where a listener's encoded frames go (a media session)."""

    def send_payload(self, payload: bytes, csrc: tuple[int, ...] = ()) -> None: ...

    def source_id(self) -> int | None:
        """The SSRC this participant sends with (named as a contributing source)."""
        ...

    def set_pcm_rate(self, rate: int) -> bool:
        """Decode this participant's audio at ``rate`` from now on, if its codec can
        (Opus can at any of its rates): then it needs no resampling to the mix."""
        ...


class FrameSink(Protocol):
    def write(self, pcm: Pcm) -> None: ...

    def close(self) -> None: ...


class FixedFrames:
    """Resamples a stream and hands out exactly ``samples`` per call."""

    def __init__(self, from_rate: int, to_rate: int, samples: int) -> None:
        self._resampler = Resampler(from_rate, to_rate)
        self._samples = samples
        self._buffer = np.zeros(0, dtype=np.int16)

    def process(self, pcm: Pcm) -> Pcm:
        out = self._resampler.process(pcm)
        buffer = np.concatenate((self._buffer, out)) if len(self._buffer) else out
        n = self._samples
        if len(buffer) < n:  # the resampler's start-up delay: pad once, at the front
            buffer = np.concatenate((np.zeros(n - len(buffer), dtype=np.int16), buffer))
        frame: Pcm = buffer[:n]
        self._buffer = buffer[n:]
        return frame


@dataclass(slots=True)
class _Leg:
    output: LegOutput
    codec_name: str
    codec_rate: int           # the rate its frames come at (its codec's, or the mix's)
    to_conference: FixedFrames
    wideband: bool = False    # its codec is 48 kHz Opus (it may be decoding at less)
    frame: Pcm | None = None
    quiet: bool = False       # the frame is known to be quieter than the gate (not measured)
    hangover: int = 0
    talking: bool = False
    level: float = 127.0
    speech_rms: float = 0.0   # slow average of the level of its speech frames
    gain: float = 1.0         # automatic gain control, adapted on speech frames only


@dataclass(slots=True)
class _Encoder:
    codec: AudioCodec
    from_conference: FixedFrames


@dataclass(slots=True)
class TickReport:
    talking: set[Hashable] = field(default_factory=set)
    dominant: Hashable | None = None
    encodes: int = 0


class AudioBridge:
    def __init__(self, codecs: CodecRegistry, rate: int = 16000, max_talkers: int = 3,
                 is_muted: Callable[[Hashable], bool] | None = None,
                 is_deaf: Callable[[Hashable], bool] | None = None,
                 agc: bool = True,
                 deaf_among: Callable[[Iterable[Hashable]], set[Hashable]] | None = None
                 ) -> None:
        self.codecs = codecs
        self.base_rate = rate
        self.rate = rate
        self.frame_samples = rate // 50
        self.max_talkers = max_talkers
        self.agc = agc
        self.mixer = AudioMixer(self.frame_samples, max_talkers)
        self._music = LobbyMusic()
        self._noise = np.random.default_rng(1)
        self.dominant = DominantSpeaker()
        self.is_muted = is_muted or (lambda _pid: False)
        self.is_deaf = is_deaf or (lambda _pid: False)
        # which of these participants hear nothing: asked once a tick for everyone (a
        # meeting's participants can answer that for all at once, not one call each)
        self.deaf_among = deaf_among or (lambda pids: {pid for pid in pids if self.is_deaf(pid)})
        self.gate_dbov = GATE_DBOV  # quieter than this never enters the mix
        self.legs: dict[Hashable, _Leg] = {}
        self._encoders: dict[tuple[Hashable, str], _Encoder] = {}
        self._vad = webrtcvad.Vad(VAD_MODE)
        self.on_dominant: Callable[[Hashable | None], None] | None = None
        self._last_dominant: Hashable | None = None
        self._announcement: list[Pcm] = []            # heard by everyone (entry/exit tones)
        self.recorder: FrameSink | None = None        # gets the program mix of every tick
        self.on_recording_failed: Callable[[Exception], None] | None = None
        self._private: dict[Hashable, list[Pcm]] = {}  # heard by one listener (feedback)

    # ------------------------------------------------------------ membership
    def add(self, pid: Hashable, output: LegOutput, codec_name: str, codec_rate: int) -> None:
        leg = _Leg(output, codec_name, codec_rate,
                   FixedFrames(codec_rate, self.rate, self.frame_samples),
                   wideband=codec_rate == WIDEBAND_RATE)
        self.legs[pid] = leg
        self.dominant.add(pid)
        if not self._choose_rate():
            self._adopt_rate(leg)

    def remove(self, pid: Hashable) -> None:
        self.legs.pop(pid, None)
        self._private.pop(pid, None)
        self.dominant.remove(pid)
        for key in [k for k in self._encoders if k[0] in (("minus", pid), ("private", pid))]:
            del self._encoders[key]
        self._choose_rate()

    def _choose_rate(self) -> bool:
        """Mix at 48 kHz when everyone is wideband Opus, else at the base rate (16 kHz).
        True when the rate changed (every leg then follows it, see _adopt_rate)."""
        wanted = WIDEBAND_RATE if self.legs and all(
            leg.wideband for leg in self.legs.values()) else self.base_rate
        if wanted == self.rate:
            return False
        self.rate = wanted
        self.frame_samples = wanted // 50
        self.mixer = AudioMixer(self.frame_samples, self.max_talkers)
        for leg in self.legs.values():
            self._adopt_rate(leg)
        self._encoders.clear()
        self._announcement.clear()  # tones made for the old rate
        self._private.clear()
        return True

    def _adopt_rate(self, leg: _Leg) -> None:
        """Have the leg decode at the mixing rate when its codec can (an Opus leg in a
        16 kHz mix: a third of the decoding work at 48 kHz, and nothing to resample)."""
        if leg.codec_rate != self.rate and leg.output.set_pcm_rate(self.rate):
            leg.codec_rate = self.rate
            leg.frame = None  # put at the old rate this tick
        leg.to_conference = FixedFrames(leg.codec_rate, self.rate, self.frame_samples)

    def put(self, pid: Hashable, pcm: Pcm | None, quiet: bool = False) -> None:
        """A participant's 20 ms of decoded audio at its codec's rate (None: nothing
        arrived). It is judged there and brought to the conference rate only if it
        is speech: most participants are silent most of the time, and resampling
        is the dearest step of a frame. ``quiet``: the stream already knows the
        frame is quieter than the gate (``gate_dbov``), so it is not measured."""
        leg = self.legs.get(pid)
        if leg is not None:
            leg.frame = pcm
            leg.quiet = quiet

    def _frames_of(self, pcm: Pcm) -> list[Pcm]:
        n = self.frame_samples
        padded = np.concatenate((pcm, np.zeros(-len(pcm) % n, dtype=np.int16)))
        return [padded[i:i + n] for i in range(0, len(padded), n)]

    def announce(self, pcm: Pcm) -> None:
        """Play ``pcm`` (at the conference rate) to everyone, over the conversation."""
        for i, frame in enumerate(self._frames_of(pcm)):
            if i < len(self._announcement):
                mixed = self._announcement[i].astype(np.int32) + frame
                self._announcement[i] = np.clip(mixed, -32768, 32767).astype(np.int16)
            else:
                self._announcement.append(frame)

    def play_to(self, pid: Hashable, pcm: Pcm) -> None:
        """Play ``pcm`` (at the conference rate) to one listener only."""
        if pid in self.legs:
            self._private.setdefault(pid, []).extend(self._frames_of(pcm))

    # ------------------------------------------------------------ the tick
    def tick(self) -> TickReport:
        report = TickReport()
        if not self.legs:
            return report
        frames: dict[Hashable, Pcm | None] = {}
        levels: dict[Hashable, float] = {}
        deaf = self.deaf_among(self.legs)
        for pid, leg in self.legs.items():
            leg.talking = self._talking(pid, leg, deaf)
            if leg.talking and leg.frame is not None:
                frames[pid] = self._gain(leg, leg.to_conference.process(leg.frame))
                report.talking.add(pid)
                levels[pid] = leg.level
            else:
                frames[pid] = None
            leg.frame = None
        if self._announcement:
            frames[ANNOUNCER] = self._announcement.pop(0)
            report.talking.add(ANNOUNCER)
        report.dominant = self.dominant.frame(levels)
        if report.dominant != self._last_dominant:
            self._last_dominant = report.dominant
            if self.on_dominant is not None:
                self.on_dominant(report.dominant)
        loudness = {pid: -level for pid, level in levels.items()}
        result = self.mixer.mix(frames, report.talking, set(self.legs), deaf, loudness)
        if deaf:
            # the lobby hears music: one frame per tick, encoded once per codec
            result.mixes[LOBBY] = self._music.frame(self.rate, self.frame_samples)
            for pid in deaf:
                result.listener_mix[pid] = LOBBY
        if self.recorder is not None:
            self._record(frames, report.talking)
        report.talking.discard(ANNOUNCER)
        private = {pid: queue.pop(0) for pid, queue in self._private.items() if queue}
        self._private = {pid: queue for pid, queue in self._private.items() if queue}
        for pid, extra in private.items():
            # a listener with something of its own to hear gets a mix of its own
            key = result.listener_mix.get(pid)
            base = result.mixes[key].astype(np.int32) if key is not None \
                else np.zeros(self.frame_samples, dtype=np.int32)
            own_key = ("private", pid)
            result.mixes[own_key] = np.clip(base + extra, -32768, 32767).astype(np.int16)
            result.listener_mix[pid] = own_key
        codec_of = {pid: leg.codec_name for pid, leg in self.legs.items()}
        everyone, own = self._contributors(report)
        for (key, codec_name), listeners in result.encode_groups(codec_of).items():
            encoder = self._encoder(key, codec_name, self.legs[listeners[0]].codec_rate)
            payload = encoder.codec.encode(encoder.from_conference.process(result.mixes[key]))
            report.encodes += 1
            for pid in listeners:
                self.legs[pid].output.send_payload(payload, own.get(pid, everyone))
        silence: dict[str, bytes] = {}  # encoded once per codec per tick
        comfort: Pcm | None = None
        for pid, key in result.listener_mix.items():
            if key is None:
                leg = self.legs[pid]
                quiet = silence.get(leg.codec_name)
                if quiet is None:
                    if comfort is None:  # faint noise, so the line never sounds dead
                        comfort = np.round(self._noise.normal(0.0, COMFORT_RMS, self.frame_samples)
                                           ).astype(np.int16)
                    encoder = self._encoder(SILENCE, leg.codec_name, leg.codec_rate)
                    quiet = encoder.codec.encode(encoder.from_conference.process(comfort))
                    silence[leg.codec_name] = quiet
                    report.encodes += 1
                leg.output.send_payload(quiet)
        return report

    def _gain(self, leg: _Leg, frame: Pcm) -> Pcm:
        """Automatic gain control: bring each talker towards a common speech level."""
        if not self.agc:
            return frame
        if leg.speech_rms > 0:
            wanted = min(AGC_MAX_GAIN, max(AGC_MIN_GAIN, AGC_TARGET_RMS / leg.speech_rms))
            leg.gain += (wanted - leg.gain) * AGC_STEP
        if abs(leg.gain - 1.0) < 0.01:
            return frame
        scaled: Pcm = np.clip(frame.astype(np.float32) * leg.gain, -32768, 32767).astype(np.int16)
        return scaled

    def _record(self, frames: dict[Hashable, Pcm | None], talking: set[Hashable]) -> None:
        """Write what a silent listener hears (everyone talking, tones included)."""
        total = np.zeros(self.frame_samples, dtype=np.int32)
        for pid in talking:
            frame = frames.get(pid)
            if frame is not None:
                total += frame
        assert self.recorder is not None
        try:
            self.recorder.write(soft_clip(total))
        except (OSError, ValueError) as exc:  # a full disk must not stop the meeting
            recorder, self.recorder = self.recorder, None
            with contextlib.suppress(OSError, ValueError):
                recorder.close()
            if self.on_recording_failed is not None:
                self.on_recording_failed(exc)

    def _contributors(self, report: TickReport
                      ) -> tuple[tuple[int, ...], dict[Hashable, tuple[int, ...]]]:
        """The CSRC lists: the one every listener who is not talking gets (everyone
        in the mix, the dominant speaker first), and each talker's own (the same
        without itself). Built once per tick, not once per listener."""
        order = sorted(report.talking, key=lambda pid: pid != report.dominant)
        sources = [(pid, self.legs[pid].output.source_id()) for pid in order if pid in self.legs]
        known = [(pid, ssrc) for pid, ssrc in sources if ssrc is not None]
        everyone = tuple(ssrc for _pid, ssrc in known)
        own = {talker: tuple(ssrc for pid, ssrc in known if pid != talker) for talker, _ in known}
        return everyone, own

    def _talking(self, pid: Hashable, leg: _Leg, deaf: set[Hashable]) -> bool:
        frame = leg.frame
        if frame is None or (leg.quiet and not leg.hangover):
            # nothing, or known quiet with no word fading out: not talking, whether
            # muted or not (most participants, most ticks: mute is not even asked)
            leg.hangover = 0
            return False
        if self.is_muted(pid) or pid in deaf:
            leg.hangover = 0
            return False
        if leg.quiet:
            rms, leg.level, speech = 0.0, 127.0, False
        else:
            rms = math.sqrt(float(np.dot(frame.astype(np.float64), frame.astype(np.float64)))
                            / len(frame))
            leg.level = level_dbov(rms)
            speech = leg.level < self.gate_dbov and self._is_speech(frame, leg.codec_rate)
        if speech:
            leg.hangover = HANGOVER_FRAMES
            # the talker's speech level: a slow average over frames judged speech
            leg.speech_rms = rms if leg.speech_rms == 0 else \
                leg.speech_rms + (rms - leg.speech_rms) * AGC_LEVEL_STEP
            return True
        if leg.hangover > 0:
            # a talker's quiet ends of words stay in the mix: the gate only decides
            # who starts talking, not how a word fades
            leg.hangover -= 1
            return True
        leg.hangover = 0
        return False

    def _is_speech(self, frame: Pcm, rate: int) -> bool:
        if rate not in VAD_RATES or len(frame) * 50 != rate:
            return True  # a rate or frame the VAD cannot judge: the energy gate decides
        return bool(self._vad.is_speech(frame.tobytes(), rate))

    def _encoder(self, key: Hashable, codec_name: str, codec_rate: int) -> _Encoder:
        encoder = self._encoders.get((key, codec_name))
        if encoder is None:
            codec = self.codecs.create(codec_name)
            try_pcm_rate(codec, self.rate)  # encode the mix at its own rate if it can
            encoder = _Encoder(codec, FixedFrames(self.rate, codec.sample_rate,
                                                  codec.sample_rate // 50))
            self._encoders[(key, codec_name)] = encoder
        return encoder
