"""The media path between mediation's two legs: each leg's session is a passive port
pulled by the one media clock; what one leg receives, the other sends on a later
pull, brought to that leg's rate (and so transcoded when the codecs differ).

Between two G.711 legs of one law the samples pass unchanged and re-encode to the
very bytes received (G.711 decoding then encoding is the identity). A digit heard
on one leg goes to the call, which sends it on the other leg in that leg's way
(RFC 4733, SIP INFO or tones); while a leg's in-band detector hears a tone pair,
its audio is muted, so a digit is not heard twice on the far side. While the
far end rings without sending media, a leg can be given a ring-back tone instead.

When both legs settle on the same codec (and packetization), nothing needs the
audio itself: no ring-back plays and no in-band detector listens. Then the bridge
pairs the two sessions to relay each other's packets untouched as they arrive
(``relay_with``): no jitter buffer, decoding or encoding, so the call costs a
fraction and gains no delay. A G.711 leg and a G.722 leg (its codec at 8 kHz,
``adopt_rate``) are paired the same way, each packet converted as it passes
(confserver/media/packet_convert.py): the two codecs share the RTP clock and
one payload octet a sample. Ring-back, a new app on either session or a closed
session ends the pairing; digits still cross as below.

Comfort noise: when one leg sends nothing (Opus DTX, silence suppression
without RFC 3389 packets, a hold), the other leg still gets a frame every
20 ms: faint white noise (COMFORT_NOISE_DBOV). A PSTN gateway keeps seeing
RTP (many end a call after some seconds without it), and the person on the
line hears a live line rather than dead silence. A peer's own CN packets are
already turned into noise of the level they announce by its stream.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from confserver.media.codecs.base import Pcm
from confserver.media.packet_convert import convertible
from confserver.media.resample import Resampler
from confserver.media.stream import AudioStream
from confserver.media.tones import CadencedTone

INTERNAL, GATEWAY = 0, 1  # the bridge's legs
COMFORT_NOISE_DBOV = 70  # level of the noise sent while the other leg is silent (RFC 3389 units)
MAX_QUEUED = 4  # frames: beyond this the oldest goes (a leg whose clock runs fast)


class BridgedSession(Protocol):
    """What the bridge reads of a media session."""

    @property
    def dtmf_in_burst(self) -> bool: ...

    @property
    def stream(self) -> AudioStream: ...

    def set_pcm_rate(self, rate: int) -> bool: ...


class RelayableSession(BridgedSession, Protocol):
    """A media session the bridge can pair with the other leg's (see the module doc)."""

    @property
    def closed(self) -> bool: ...

    @property
    def app(self) -> object: ...

    @property
    def listens_inband(self) -> bool: ...

    @property
    def relay_peer(self) -> Any: ...

    def relay_with(self, peer: Any) -> None: ...

    def end_relay(self) -> None: ...


def same_media(a: AudioStream, b: AudioStream) -> bool:
    """Packets of one stream can go out of the other untouched."""
    return a.codec.name == b.codec.name and a.codec.clock_rate == b.codec.clock_rate \
        and a.ptime_ms == b.ptime_ms


def converts(a: AudioStream, b: AudioStream) -> bool:
    """Packets of one stream become packets of the other one by one (G.711 and
    G.722 at 8 kHz: confserver/media/packet_convert.py), in the same packetization."""
    return a.ptime_ms == b.ptime_ms and convertible(a.codec, b.codec)


class _Direction:
    """Audio received on one leg waiting to be sent on the other."""

    def __init__(self) -> None:
        self.frames: list[Pcm] = []
        self.resampler: Resampler | None = None
        self.pending = np.zeros(0, dtype=np.int16)

    def put(self, pcm: Pcm) -> None:
        self.frames.append(pcm)
        if len(self.frames) > MAX_QUEUED:
            del self.frames[0]

    def take(self, from_rate: int, to_rate: int, samples: int) -> Pcm | None:
        if not self.frames and len(self.pending) < samples:
            return None
        if from_rate == to_rate and not len(self.pending):
            return self.frames.pop(0)
        if self.resampler is None or self.resampler.from_rate != from_rate \
                or self.resampler.to_rate != to_rate:
            self.resampler = Resampler(from_rate, to_rate)
        while self.frames and len(self.pending) < samples:
            self.pending = np.concatenate([self.pending,
                                           self.resampler.process(self.frames.pop(0))])
        if len(self.pending) < samples:
            return None
        out, self.pending = self.pending[:samples], self.pending[samples:]
        return out


class MediaBridge:
    """Couples leg 0 (internal) and leg 1 (gateway)."""

    def __init__(self, on_digit: Callable[[int, str, str], None],
                 noise: np.random.Generator | None = None) -> None:
        self.on_digit = on_digit
        self._noise = noise or np.random.default_rng()
        self._noise_rms = 32767 * 10 ** (-COMFORT_NOISE_DBOV / 20)
        self.comfort_frames = [0, 0]  # frames of comfort noise sent on each leg
        self._to = (_Direction(), _Direction())  # _to[i]: waiting to be sent on leg i
        self.rates = [0, 0]
        self.sides = (BridgeSide(self, 0), BridgeSide(self, 1))
        self.frames_passed = [0, 0]
        self.ringback: list[CadencedTone | None] = [None, None]
        self._sessions: list[RelayableSession | None] = [None, None]
        self.relays = 0  # times the legs were paired to relay packets untouched

    def close(self) -> None:
        """The call ended: no relay, and no digit reaches it any more. (The call holds
        the bridge and the bridge held the call's digit handler: a reference cycle
        that would leave the ended call for the cyclic garbage collector.)"""
        self.end_relay()
        self._sessions = [None, None]
        self.on_digit = _no_digit

    def ring_back(self, leg: int, tone: CadencedTone | None) -> None:
        """Play ``tone`` to ``leg`` instead of the other leg's audio (None: stop)."""
        self.ringback[leg] = tone
        if tone is not None:
            self.end_relay()

    def end_relay(self) -> None:
        for session in self._sessions:
            if session is not None:
                session.end_relay()

    def offer_relay(self, leg: int, session: RelayableSession) -> None:
        """``session`` plays ``leg`` now: pair the legs when nothing needs their audio."""
        self._sessions[leg] = session
        a, b = self._sessions
        if a is None or b is None or a is b or a.closed or b.closed \
                or self.ringback[0] is not None or self.ringback[1] is not None \
                or a.app is not self.sides[0] or b.app is not self.sides[1] \
                or a.listens_inband or b.listens_inband \
                or not (same_media(a.stream, b.stream) or converts(a.stream, b.stream)):
            return
        for direction in self._to:  # nothing decoded waits once packets pass untouched
            direction.frames.clear()
            direction.pending = np.zeros(0, dtype=np.int16)
        a.relay_with(b)
        self.relays += 1

    def adopt_rate(self, leg: int, session: BridgedSession) -> bool:
        """Have ``leg``'s codec work at the other leg's rate when it can (an Opus leg
        bridged to G.711 encodes and decodes at 8 kHz): no resampling either way, and
        Opus at 8 kHz costs a third of Opus at 48 kHz. True when it changed; what
        was pulled or queued at the old rate is dropped (this happens as the call's
        audio starts, or after a re-INVITE changed a codec)."""
        other_rate = self.rates[1 - leg]
        if not other_rate or session.stream.codec.sample_rate == other_rate \
                or not session.set_pcm_rate(other_rate):
            return False
        waiting = self._to[1 - leg]  # this leg's audio at its old rate
        waiting.frames.clear()
        waiting.pending = np.zeros(0, dtype=np.int16)
        self.rates[leg] = other_rate
        return True

    def frame(self, leg: int, session: BridgedSession, pcm: Pcm | None, rate: int,
              samples: int) -> Pcm | None:
        self.rates[leg] = rate
        other = 1 - leg
        if pcm is not None:
            if session.dtmf_in_burst:
                pcm = np.zeros_like(pcm)
            self._to[other].put(pcm)
            self.frames_passed[leg] += 1
        tone = self.ringback[leg]
        if tone is not None:
            return tone.frame(samples, rate)
        if not self.rates[other]:
            return None  # the other leg has no media session yet
        out = self._to[leg].take(self.rates[other], rate, samples)
        if out is None:
            self.comfort_frames[leg] += 1
            return self._noise.normal(0.0, self._noise_rms, samples).clip(
                -32768, 32767).astype(np.int16)
        return out


class BridgeSide:
    """One leg's media app."""

    relays_audio = False
    sends_own_audio = False

    def __init__(self, bridge: MediaBridge, leg: int) -> None:
        # weak: the bridge holds its sides, and a side outlives its bridge only in a
        # session that is closing with its ended call
        self._bridge = weakref.ref(bridge)
        self.leg = leg
        self.wants_inband_dtmf = False

    def on_frame(self, session: RelayableSession, pcm: Pcm | None, now: float) -> Pcm | None:
        bridge = self._bridge()
        if bridge is None:
            return None
        stream = session.stream
        if bridge.adopt_rate(self.leg, session):
            pcm = None  # decoded at the old rate
        out = bridge.frame(self.leg, session, pcm, stream.codec.sample_rate,
                           stream.frame_samples)
        if session.relay_peer is None:
            bridge.offer_relay(self.leg, session)
        return out

    def on_digit(self, session: BridgedSession | None, digit: str, method: str) -> None:
        bridge = self._bridge()
        if bridge is not None:
            bridge.on_digit(self.leg, digit, method)


def _no_digit(leg: int, digit: str, method: str) -> None:
    pass


class ParkedSide:
    """The media app of a leg outside the bridge: one a transfer is calling (until it
    answers) or one transferred away (until it hangs up). It hears nothing and
    sends silence."""

    relays_audio = False
    sends_own_audio = False

    def __init__(self, wants_inband_dtmf: bool = False) -> None:
        self.wants_inband_dtmf = wants_inband_dtmf

    def on_frame(self, session: BridgedSession, pcm: Pcm | None, now: float) -> Pcm | None:
        return None

    def on_digit(self, session: BridgedSession | None, digit: str, method: str) -> None:
        pass
