"""The built-in services: ``sip:echo``, ``tone``, ``dtmf`` and ``noanswer`` (what a
call to each does, and the media app that does it)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import SipCall
from confserver.adapters.calls.inbound import UasCall
from confserver.adapters.media.session import MediaApp, MediaSession
from confserver.media.codecs.base import Pcm
from confserver.media.tones import steady_tone

log = logging.getLogger("switchboard.media")


class EchoApp:
    """Returns the caller's own audio, after the jitter buffer."""

    wants_inband_dtmf = False
    relays_audio = True
    sends_own_audio = False

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        return pcm

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        pass


class ToneApp:
    """A continuous tone (1 kHz by default) at -10 dBm0."""

    wants_inband_dtmf = False
    relays_audio = False
    sends_own_audio = False

    def __init__(self, frequency: float = 1000.0, level_dbm0: float = -10.0) -> None:
        self._tone = steady_tone(frequency, level_dbm0)

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        return self._tone.frame(session.stream.frame_samples, session.stream.codec.sample_rate)

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        pass


class DtmfSinkApp:
    """Silent; records and logs the digits it detects, however they arrive."""

    wants_inband_dtmf = True
    relays_audio = False
    sends_own_audio = False

    def __init__(self, call_id: str = "") -> None:
        self.call_id = call_id
        self.digits: list[tuple[str, str]] = []

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        return None

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        self.digits.append((digit, method))
        log.info("dtmf digit %s via %s on call %s", digit, method, self.call_id)


class EchoService(CallBehaviour):
    """``sip:echo@domain``: answers at once and returns the caller's audio."""

    def on_invite(self, call: UasCall) -> None:
        call.answer()

    def media_app(self, call: SipCall) -> MediaApp | None:
        return EchoApp()


class ToneService(EchoService):
    """``sip:tone@domain``: plays a 1 kHz tone."""

    def media_app(self, call: SipCall) -> MediaApp | None:
        return ToneApp(1000.0)


class DtmfService(EchoService):
    """``sip:dtmf@domain``: silent; logs every digit it detects (RFC 4733, INFO, in-band)."""

    def media_app(self, call: SipCall) -> MediaApp | None:
        return DtmfSinkApp(call.dialog.call_id if call.dialog else "")


class NoAnswerService(CallBehaviour):
    """``sip:noanswer@domain``: rings until cancelled or the ring timeout (480)."""

    def on_invite(self, call: UasCall) -> None:
        call.ring()


BUILTIN_SERVICES: dict[str, Callable[[], CallBehaviour]] = {  # the application sets ``caller``
    "echo": EchoService,
    "tone": ToneService,
    "dtmf": DtmfService,
    "noanswer": NoAnswerService,
}
