"""Mediation's two kinds of call leg, each reporting call events to its call.

``AnsweringLeg`` wraps an INVITE we received (a user calling out, a gateway calling
in); ``DialingLeg`` wraps an INVITE we send (to a gateway, to the attendant, to a
user's device). The call commands them (try, ring, connect, fail, disconnect,
send a digit) and hears their events; neither knows the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import SipCall
from confserver.adapters.calls.inbound import UasCall
from confserver.adapters.calls.outbound import OutboundCall, PlacingHost
from confserver.adapters.calls.transfer import (
    ReferRefused,
    accept_refer,
    notify_progress,
    read_refer,
    send_refer,
)
from confserver.adapters.media.session import MediaApp
from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.calls.events import (
    CallEvent,
    Connect,
    Digit,
    Disconnect,
    Fail,
    Ring,
    Transfer,
)
from confserver.media.stream import AudioStream
from confserver.sip.digest import DigestClient
from confserver.sip.message import Request
from confserver.sip.sdp import Codec
from confserver.sip.uri import SipUri

log = logging.getLogger("switchboard.mediation")


@dataclass(frozen=True, slots=True)
class LegMedia:
    """What a leg's call record says about its media."""

    codec: str
    loss_percent: float | None
    jitter_ms: float | None
    rtt_ms: float | None
    srtp: bool = False


def media_of(stream: AudioStream | None) -> LegMedia | None:
    if stream is None:
        return None
    remote = stream.remote
    loss = jitter = None
    if remote is not None and remote.expected > 0:
        loss = max(0.0, 100.0 * remote.lost / remote.expected)
        jitter = 1000.0 * remote.jitter / remote.clock_rate
    rtt = stream.stats.rtt * 1000 if stream.stats.rtt is not None else None
    return LegMedia(stream.codec.name, loss, jitter, rtt, stream.srtp is not None)


class _TransferSignalling:
    """REFER in and out of a leg's dialog, shared by both kinds of leg."""

    _refer_tx: ServerTxHandle | None = None

    def _dialog_call(self) -> UasCall | OutboundCall | None:
        raise NotImplementedError

    def take_refer(self, request: Request, tx: ServerTxHandle) -> Transfer | None:
        """The Transfer event a REFER on this leg asks for (None: refused as malformed).
        The call must answer it with ``answer_transfer`` while handling the event."""
        try:
            target = read_refer(request)
        except ReferRefused as exc:
            tx.reply(exc.status, exc.reason)
            return None
        self._refer_tx = tx
        return Transfer(target.uri, target.replaces, target.referred_by)

    def answer_transfer(self, status: int, reason: str) -> None:
        tx, self._refer_tx = self._refer_tx, None
        call = self._dialog_call()
        if tx is None or call is None:
            return
        if status == 202:
            accept_refer(call, tx)
        else:
            tx.reply(status, reason)

    def unanswered_transfer(self) -> None:
        """A REFER the call did not answer is refused rather than left hanging."""
        self.answer_transfer(403, "Forbidden (this call cannot be transferred)")

    def attach(self, app: MediaApp) -> None:
        """From now on this leg's audio goes to and comes from ``app``."""
        call = self._dialog_call()
        if call is not None and call.media is not None:
            call.media.app = app

    def notify_transfer(self, status: int, reason: str, final: bool) -> None:
        call = self._dialog_call()
        if call is not None:
            notify_progress(call, status, reason, final)

    def refer(self, refer_to: str, referred_by: str | None,
              on_refused: Callable[[int, str], None]) -> None:
        """Pass a transfer to this leg's far end (REFER)."""
        call = self._dialog_call()
        if call is None:
            on_refused(481, "Call Does Not Exist")
        else:
            send_refer(call, refer_to, referred_by, on_refused)


class AnsweringLeg(_TransferSignalling):
    """An INVITE we answer (or refuse) when the call says so."""

    def __init__(self, call: UasCall, dtmf: str = "rfc4733") -> None:
        self.call = call
        self.dtmf = dtmf
        self.stream: AudioStream | None = None  # kept: the session is gone when the call ends

    def ring(self) -> None:
        self.call.ring()

    def progress(self, prefer: tuple[Codec, ...] | None = None) -> bool:
        """Early media toward this leg's caller (183 with our answer): True when our
        answer went out; False when it could not (an INVITE without an offer gets a
        plain 180 instead, a failed negotiation ends the call)."""
        self._prefer(prefer)
        self.call.progress()
        self._keep_stream()
        return self.call.media_ready and self.call.state != "ended"

    def connect(self, prefer: tuple[Codec, ...] | None = None) -> None:
        self._prefer(prefer)
        self.call.answer()
        self._keep_stream()

    def _prefer(self, prefer: tuple[Codec, ...] | None) -> None:
        if prefer and self.stream is None:  # once media started, its codec stays
            settings = self.call.host.call_settings.codecs
            self.call.codecs = (*prefer, *(c for c in settings if c not in prefer))

    def _keep_stream(self) -> None:
        if self.call.media is not None:
            self.stream = self.call.media.stream

    def fail(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None
             ) -> None:
        self.call.reject(status, reason, headers)

    def disconnect(self, reason: str) -> None:
        self.call.hangup(reason)

    @property
    def answered(self) -> bool:
        return self.call.state in ("answered", "confirmed")

    def send_digit(self, digit: str) -> None:
        _send_digit(self.call, self.dtmf, digit)

    def reoffer(self, direction: str) -> None:
        """Pass the other leg's hold (sendonly, inactive) or resume (sendrecv) on."""
        if self.answered:
            self.call.reoffer(direction)

    def media_report(self) -> LegMedia | None:
        return media_of(self.stream)

    def _dialog_call(self) -> UasCall | OutboundCall | None:
        return self.call


def _no_event(leg: DialingLeg, event: CallEvent) -> None:
    pass


class DialingLeg(_TransferSignalling, CallBehaviour):
    """An INVITE we send; its outcome comes back as call events. The leg is its
    call's behaviour: it hears the call's events and reports them, as this leg's,
    to ``report`` (the call that couples the legs)."""

    caller = "server"  # a leg mediation places

    def __init__(self, report: Callable[[DialingLeg, CallEvent], None], name: str,
                 dtmf: str = "rfc4733") -> None:
        self.report = report
        self.name = name        # the gateway, or the device, it calls
        self.dtmf = dtmf
        self.call: OutboundCall | None = None
        self.app: MediaApp | None = None
        self.ringing = False
        self.early = False  # media flows before the answer
        self.abandoned = False
        self.stream: AudioStream | None = None
        self._silence: IDelayedCall | None = None

    def start(self, host: PlacingHost, uri: SipUri, from_header: str, app: MediaApp, *,
              codecs: tuple[Codec, ...] | None = None, target: Target | None = None,
              headers: list[tuple[str, str]] | None = None,
              credentials: DigestClient | None = None, ring_timeout: float = 120.0,
              srtp: str = "off", session_expires: int | None = None,
              response_within: float | None = None,
              vouch: Callable[[Request], tuple[str, str]] | None = None) -> None:
        """With ``response_within``: a far end that sends no response at all (not even
        a 100 Trying) in that many seconds is taken to be down, and the leg fails
        (status None) instead of waiting out the ring timeout."""
        self.app = app
        self.call = OutboundCall(host, uri, from_header, self, codecs=codecs, headers=headers,
                                 target=target, credentials=credentials,
                                 ring_timeout=ring_timeout, srtp=srtp,
                                 session_expires=session_expires, vouch=vouch)
        self.call.start()
        if response_within is not None and self.call.state == "calling":
            self._silence = host.reactor.callLater(response_within, self._no_response)

    def _no_response(self) -> None:
        self._silence = None
        call = self.call
        if call is None or call.state != "calling" or call.heard or self.abandoned:
            return
        self.abandon("no response")
        self.report(self, Fail(None, "no response"))

    def _stop_waiting(self) -> None:
        if self._silence is not None and self._silence.active():
            self._silence.cancel()
        self._silence = None

    @property
    def answered(self) -> bool:
        return self.call is not None and self.call.state == "confirmed"

    def codec(self) -> Codec | None:
        if self.call is not None and self.call.streams:
            return self.call.streams[0].codec
        return None

    def disconnect(self, reason: str) -> None:
        if self.call is not None and self.call.state != "ended":
            self.call.hangup(reason)

    def attach(self, app: MediaApp) -> None:
        self.app = app
        super().attach(app)

    def detach(self) -> None:
        """The call this leg belongs to has ended: its events go nowhere from now on."""
        self.report = _no_event
        self._stop_waiting()

    def abandon(self, reason: str) -> None:
        """End an attempt the call has already written off: no Fail event follows."""
        self.abandoned = True
        self.disconnect(reason)

    def send_digit(self, digit: str) -> None:
        if self.call is not None:
            _send_digit(self.call, self.dtmf, digit)

    def reoffer(self, direction: str) -> None:
        """Pass the other leg's hold (sendonly, inactive) or resume (sendrecv) on."""
        if self.call is not None and self.answered:
            self.call.reoffer(direction)

    def media_report(self) -> LegMedia | None:
        return media_of(self.stream)

    def _dialog_call(self) -> UasCall | OutboundCall | None:
        return self.call

    # ------------------------------------------------------------ CallBehaviour
    def media_app(self, call: SipCall) -> MediaApp | None:
        return self.app

    def on_event(self, call: SipCall, event: CallEvent) -> None:
        match event:
            case Ring():
                self._ringing()
            case Connect():
                if self.call is not None and self.call.media is not None:
                    self.stream = self.call.media.stream
                self.report(self, event)
            case Fail():
                self._stop_waiting()
                if not self.abandoned:
                    self.report(self, event)
            case _:  # Hold, TransferProgress: this leg's
                self.report(self, event)

    def _ringing(self) -> None:
        if self.call is not None and self.call.early_media and not self.early:
            self.early = True
            if self.call.media is not None:
                self.stream = self.call.media.stream
            self.report(self, Ring(early_media=True))
        elif not self.ringing:
            self.report(self, Ring())
        self.ringing = True

    def on_end(self, call: SipCall) -> None:
        self.report(self, Disconnect(self.call.end_reason if self.call else "ended"))

    def on_refer(self, call: SipCall, request: Request, tx: ServerTxHandle) -> None:
        event = self.take_refer(request, tx)
        if event is not None:
            self.report(self, event)
            self.unanswered_transfer()


def _send_digit(call: SipCall, preferred: str, digit: str) -> None:
    """RFC 4733 when the leg agreed on telephone-event, else tones; SIP INFO when the
    gateway's profile asks for it."""
    method = preferred
    if method == "rfc4733":
        media = call.media
        if media is None or media.stream.dtmf_payload_type is None:
            method = "inband"
    try:
        call.send_dtmf(digit, method)
    except ValueError as exc:
        log.info("digit %s not sent: %s", digit, exc)


__all__ = ["AnsweringLeg", "CallEvent", "DialingLeg", "Digit", "LegMedia"]
