"""Calls we answer (the UAS side of INVITE sessions) and the built-in services.

A call owns one dialog, its offer/answer state and its session timer; it
talks to the rest of the server only through :class:`CallHost`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from confserver.adapters.calls.reoffer import Reoffer
from confserver.adapters.calls.session_refresh import negotiate_or_refuse, send_session_refresh
from confserver.adapters.calls.transfer import dispatch_transfer, notify_progress
from confserver.adapters.media.session import MediaApp, MediaSession
from confserver.adapters.media.video import VideoSession
from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.media.dtmf import DtmfError, info_body, parse_info_body
from confserver.sip.dialog import (
    Dialog,
    DialogError,
    SessionTimer,
    new_tag,
)
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Request, Response
from confserver.sip.sdp import (
    DEFAULT_AUDIO_CODECS,
    Codec,
    NegotiatedStream,
    SdpError,
    SessionDescription,
    answer_offer,
    audio_direction,
    keep_local_key,
    make_offer,
    streams_from_answer,
)

log = logging.getLogger("switchboard.calls")


class RtpPorts(Protocol):
    """Where a call's RTP port comes from."""

    shared: bool  # every call gets the same port (no second port for video)

    def allocate(self, privileged: bool = True) -> int | None: ...

    def release(self, port: int) -> None: ...


class PortPool:
    """Even RTP ports from a configured range; RTCP takes the odd one above.

    Ports are taken at random, so nobody can tell which port the next call gets
    (and aim packets at it before its peer does). The last ``reserve`` of the
    range is kept for privileged calls (signed-in users, gateways, the calls we
    place): a flood of strangers' calls cannot take every port.

    ``probe`` says whether a port pair can be bound right now: a port some
    other program holds (a client's ephemeral port inside a misconfigured
    range, say) is passed over and tried again later, instead of being named
    in an SDP offer that cannot be honoured when the answer comes.
    """

    shared = False

    def __init__(self, first: int, last: int, probe: Callable[[int], bool] | None = None,
                 reserve: float = 0.0) -> None:
        start = first + (first % 2)
        self._free = list(range(start, last, 2))
        self._reserved = int(len(self._free) * reserve)
        self._used: set[int] = set()
        self._probe = probe

    def allocate(self, privileged: bool = True) -> int | None:
        floor = 0 if privileged else self._reserved
        busy: list[int] = []  # held by some other program now: back in the pool after
        port: int | None = None
        while len(self._free) > floor:
            index = secrets.randbelow(len(self._free))
            candidate = self._free[index]
            self._free[index] = self._free[-1]
            self._free.pop()
            if self._probe is not None and not self._probe(candidate):
                busy.append(candidate)
                floor = max(0, floor - 1)  # a busy port still counts as free for the floor
                continue
            port = candidate
            self._used.add(port)
            break
        self._free += busy
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.discard(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        return len(self._used)


class SharedPortPool:
    """Every call gets the same port: the media engine demultiplexes (``[media] shared_port``)."""

    shared = True

    def __init__(self, port: int) -> None:
        self.port = port
        self.in_use = 0

    def allocate(self, privileged: bool = True) -> int | None:
        self.in_use += 1
        return self.port

    def release(self, port: int) -> None:
        self.in_use = max(0, self.in_use - 1)


@dataclass(frozen=True, slots=True)
class CallSettings:
    media_address: str
    session_expires: int = 1800
    min_se: int = 90
    ring_timeout: float = 120.0
    allow: str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, SUBSCRIBE, REFER"
    supported: str = "timer"
    user_agent: str = "Switchboard"
    srtp: str = "optional"
    codecs: tuple[Codec, ...] = DEFAULT_AUDIO_CODECS


class CallHost(Protocol):
    reactor: IReactorTime
    call_settings: CallSettings
    ports: RtpPorts

    def local_contact(self, transport: str) -> str: ...

    def via_address(self, transport: str) -> tuple[str, int]: ...

    def send_in_dialog(self, call: UasCall, request: Request,
                       on_response: Callable[[Response], None],
                       on_failure: Callable[[str], None]) -> None: ...

    def send_ack(self, call: UasCall, ack: Request) -> None: ...

    def start_media(self, call: UasCall) -> bool: ...

    def update_media(self, call: UasCall) -> None: ...

    def stop_media(self, call: UasCall) -> None: ...

    def call_ended(self, call: UasCall) -> None: ...


def crosses_our_offer(request: Request, ours_pending: bool, tx: ServerTxHandle) -> bool:
    """Glare: a re-INVITE, or an UPDATE with an offer, that arrives while an offer of
    ours in the same dialog awaits its answer is refused with 491 (RFC 3261 §14.2,
    RFC 3311 §5.2); each side then retries after a random wait. True when refused."""
    if not ours_pending or (request.method == "UPDATE" and not request.body):
        return False
    tx.reply(491, "Request Pending")
    return True


def in_sequence(dialog: Dialog, request: Request, tx: ServerTxHandle) -> bool:
    """Check an in-dialog request's CSeq; answers the error itself when it is out of order."""
    try:
        dialog.check_remote_cseq(request)
    except DialogError as exc:
        tx.reply(exc.status, exc.reason)
        return False
    return True


class InfoReceiver(Protocol):
    """A call that takes SIP INFO: its behaviour, media session and media app."""

    @property
    def behaviour(self) -> object: ...

    @property
    def media(self) -> MediaSession | None: ...

    @property
    def media_app(self) -> MediaApp | None: ...


def answer_info(call: InfoReceiver, request: Request, tx: ServerTxHandle) -> None:
    """SIP INFO with a body: DTMF (application/dtmf-relay or application/dtmf) goes to
    the media app; any other body to the behaviour's ``on_info`` (conference control)."""
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    on_info = getattr(call.behaviour, "on_info", None)
    if on_info is not None and ctype not in ("application/dtmf-relay", "application/dtmf"):
        on_info(call, request, tx)
        return
    try:
        digit, _duration = parse_info_body(request.headers.get("Content-Type") or "",
                                           request.body)
    except DtmfError as exc:
        tx.reply(415 if "not a DTMF body" in str(exc) else 400, f"Bad Request ({exc})",
                 [("Accept", "application/dtmf-relay, application/dtmf")])
        return
    tx.reply(200, "OK")
    if call.media_app is not None:
        call.media_app.on_digit(call.media, digit, "info")


class DtmfSender(Protocol):
    source: Target
    state: str

    @property
    def host(self) -> Any: ...  # a CallHost (the application, for dialed-out calls)

    @property
    def dialog(self) -> Dialog | None: ...

    @property
    def media(self) -> MediaSession | None: ...


def send_dtmf(call: DtmfSender, digit: str, method: str = "rfc4733") -> None:
    """Send one digit on a call as RFC 4733 events, in-band tones, or SIP INFO."""
    if method != "info":
        if call.media is None:
            raise ValueError("no media session to carry DTMF")
        call.media.send_digit(digit, method)
        return
    if call.dialog is None or call.state not in ("answered", "confirmed"):
        raise ValueError("no confirmed dialog to carry SIP INFO")
    ctype, body = info_body(digit)
    host, port = call.host.via_address(call.source.transport)
    info = call.dialog.create_request("INFO", host, port, call.source.transport, body, ctype)
    call.host.send_in_dialog(call, info, lambda _r: None, lambda _f: None)


class CallBehaviour(Protocol):
    """What a service does with a call: answer, ring, and later media.

    ``caller`` says who answers for the call: ``user:<aor>`` (signed in),
    ``gateway:<name>``, ``server`` (a call the server placed), or None for a caller
    nobody vouched for, whose calls are limited per address and in total and may
    not take the RTP ports kept in reserve."""

    caller: str | None

    def on_invite(self, call: UasCall) -> None: ...

    def media_app(self, call: UasCall) -> MediaApp | None: ...

    def on_end(self, call: UasCall) -> None: ...


class _Ended:
    """The behaviour of a call once it has ended: it hears nothing more. An ended call
    drops its behaviour (which usually holds the call) for this, so that the two are
    not left in a reference cycle for the cyclic garbage collector to find."""

    caller: str | None = None

    def on_invite(self, call: UasCall) -> None:
        pass

    def media_app(self, call: UasCall) -> MediaApp | None:
        return None

    def on_end(self, call: UasCall) -> None:
        pass


ENDED: CallBehaviour = _Ended()


class UasCall:
    def __init__(self, host: CallHost, tx: ServerTxHandle, behaviour: CallBehaviour) -> None:
        self.host = host
        self.invite_tx: ServerTxHandle | None = tx
        self.behaviour = behaviour
        self.source: Target = tx.source
        self.local_tag = new_tag()
        tx.to_tag = self.local_tag
        self.dialog: Dialog | None = None
        self.state = "early"
        self.remote_sdp: SessionDescription | None = None
        self.local_sdp: SessionDescription | None = None
        self.streams: list[NegotiatedStream] = []
        self.rtp_port: int | None = None
        self.video_port: int | None = None
        self.video: VideoSession | None = None
        self.sdp_version = 0
        self.session_id = host.reactor.seconds().__int__()
        self.timer: SessionTimer | None = None
        self.on_hold = False
        self.end_reason = ""
        self._timers: dict[str, IDelayedCall] = {}
        self._peer_allows_update = False
        self._refreshing = False
        self.media: MediaSession | None = None
        self._answer_body = b""
        self._reoffer: Reoffer | None = None  # our own hold/resume re-INVITEs
        self._media_ready = False  # negotiated and opened (at the 2xx, or a 183 before it)
        self.media_app: MediaApp | None = None
        # the codecs to answer with, in order (mediation prefers its other leg's codec)
        self.codecs: tuple[Codec, ...] | None = None
        # (who answers for the call, its source): counted against the call limits
        # while it lasts (the application's)
        self.account: tuple[str | None, str] | None = None

    # -------------------------------------------------------------- set-up
    @property
    def key(self) -> tuple[str, str, str]:
        assert self.dialog is not None
        return self.dialog.key

    def accept(self) -> bool:
        """Validate the INVITE and build the dialog; answers errors itself."""
        tx = self.invite_tx
        assert tx is not None
        request = tx.request
        settings = self.host.call_settings
        timer = negotiate_or_refuse(request, tx, settings.min_se, settings.session_expires)
        if timer is False:
            return False
        self.timer = timer
        try:
            self.dialog = Dialog.as_uas(request, self.local_tag,
                                        self.host.local_contact(self.source.transport))
        except (DialogError, SipSyntaxError) as exc:
            tx.reply(400, f"Bad Request ({exc})")
            return False
        self._peer_allows_update = "UPDATE" in (request.headers.get("Allow") or "").upper()
        if request.body:
            try:
                self.remote_sdp = SessionDescription.parse(request.body)
            except SdpError as exc:
                tx.reply(488, f"Not Acceptable Here ({exc})")
                return False
        # a caller nobody vouched for may not take the ports kept for those who are
        self.rtp_port = self.host.ports.allocate(privileged=self.behaviour.caller is not None)
        if self.rtp_port is not None and getattr(self.behaviour, "wants_video", False) \
                and not self.host.ports.shared and self.remote_sdp is not None \
                and any(m.kind == "video" and m.port for m in self.remote_sdp.media):
            # None: audio only, video refused
            self.video_port = self.host.ports.allocate(
                privileged=self.behaviour.caller is not None)
        if self.rtp_port is None:
            tx.reply(503, "Service Unavailable (no media ports free)", [("Retry-After", "5")])
            return False
        return True

    def ring(self) -> None:
        if self.invite_tx is not None and not self.invite_tx.answered:
            self.invite_tx.reply(180, "Ringing", self._contact_headers())
            self._start("ring", self.host.call_settings.ring_timeout, self._ring_timeout)

    def _ring_timeout(self) -> None:
        if self.invite_tx is not None and not self.invite_tx.answered:
            self.invite_tx.reply(480, "Temporarily Unavailable (no answer)")
        self._finish("no answer")

    def progress(self) -> None:
        """183 Session Progress with our answer: media flows before the call is
        answered (early media: a gateway's announcement, a ring-back tone). Only for
        an INVITE with an offer (without reliable provisional responses an offer of
        ours in a 183 could not be answered); otherwise a plain 180."""
        tx = self.invite_tx
        if tx is None or tx.answered or self._media_ready:
            return
        if self.remote_sdp is None:
            self.ring()
            return
        if self._prepare_media(tx):
            tx.reply(183, "Session Progress",
                     [*self._contact_headers(), ("Content-Type", "application/sdp")],
                     self._answer_body)

    @property
    def media_ready(self) -> bool:
        """Our SDP answer is settled (sent in a 183, or about to be in the 2xx)."""
        return self._media_ready

    def _prepare_media(self, tx: ServerTxHandle) -> bool:
        """Negotiate and open the media session (once); refuses the INVITE if it cannot."""
        try:
            self._answer_body = self._negotiate(self.remote_sdp)
        except SdpError as exc:
            tx.reply(488, f"Not Acceptable Here ({exc})")
            self._finish("no common codec")
            return False
        if not self.host.start_media(self):
            tx.reply(503, "Service Unavailable (cannot open media ports)", [("Retry-After", "5")])
            self._finish("media ports unavailable")
            return False
        self._media_ready = True
        return True

    def answer(self) -> None:
        tx = self.invite_tx
        if tx is None or tx.answered:
            return
        self._stop("ring")
        if not self._media_ready and not self._prepare_media(tx):
            return
        body = self._answer_body
        headers = [*self._contact_headers(), ("Content-Type", "application/sdp")]
        headers += self._timer_headers(tx.request)
        tx.reply(200, "OK", headers, body)
        self.state = "answered"
        self._arm_session_timer()

    def _contact_headers(self) -> list[tuple[str, str]]:
        s = self.host.call_settings
        return [("Contact", self.host.local_contact(self.source.transport)),
                ("Allow", s.allow), ("Supported", s.supported), ("Server", s.user_agent)]

    def _timer_headers(self, request: Request) -> list[tuple[str, str]]:
        if self.timer is None:
            return []
        headers = [("Session-Expires", f"{self.timer.interval};refresher={self.timer.refresher}")]
        if "timer" in request.headers.tokens("Supported"):
            headers.append(("Require", "timer"))
        return headers

    def renegotiate_port(self) -> None:
        """Rebuild the answer after the RTP port changed (before it was sent)."""
        self.sdp_version -= 1
        self.local_sdp = None  # never sent: its version is taken again
        self._answer_body = self._negotiate(self.remote_sdp)

    def _negotiate(self, offer: SessionDescription | None) -> bytes:
        """Answer an offer, or make one when the INVITE had none."""
        assert self.rtp_port is not None
        # past our own re-offers too (a hold passed on), which version the SDP themselves
        known = self.local_sdp.origin.version if self.local_sdp is not None else 0
        self.sdp_version = max(self.sdp_version, known) + 1
        want = "sendrecv"
        if offer is None:
            self.local_sdp = make_offer(self.host.call_settings.media_address, self.rtp_port,
                                        self.codecs or self.host.call_settings.codecs,
                                        session_id=self.session_id, version=self.sdp_version)
            return bytes(self.local_sdp)
        self.local_sdp, self.streams = answer_offer(
            offer, self.host.call_settings.media_address, [self.rtp_port],
            codecs=self.codecs or self.host.call_settings.codecs, session_id=self.session_id,
            version=self.sdp_version, want_direction=want,
            srtp=self.host.call_settings.srtp, video_port=self.video_port)
        self.on_hold = bool(self.streams) and self.streams[0].direction in ("recvonly", "inactive")
        return bytes(self.local_sdp)

    # -------------------------------------------------------------- in-dialog
    def on_ack(self, request: Request) -> None:
        if self.state == "answered":
            self.state = "confirmed"
            self.invite_tx = None
            if request.body and self.remote_sdp is None:
                try:
                    self.remote_sdp = SessionDescription.parse(request.body)
                except SdpError:
                    log.info("bad SDP answer in ACK; ending call")
                    self.hangup("bad SDP in ACK")
                    return
                # we offered in the 2xx: the ACK's answer settles the media
                if self.local_sdp is not None:
                    self.streams = streams_from_answer(self.local_sdp, self.remote_sdp,
                                                       self.codecs or self.host.call_settings.codecs)
                    if self.streams and not self.host.start_media(self):
                        self.hangup("media ports unavailable")

    def on_cancel(self) -> None:
        self._finish("cancelled")

    def on_invite_failure(self, reason: str) -> None:
        if reason == "no-ack" and self.state == "answered":
            self.hangup("no ACK for 2xx")
        elif self.state in ("early", "answered"):
            self._finish(f"transaction {reason}")

    def in_dialog(self, request: Request, tx: ServerTxHandle) -> None:
        assert self.dialog is not None
        if not in_sequence(self.dialog, request, tx):
            return
        method = request.method
        if method == "BYE":
            tx.reply(200, "OK")
            self._finish("remote hangup")
        elif method in ("INVITE", "UPDATE"):
            self._refresh(request, tx)
        elif method == "INFO" and request.body:
            self._info(request, tx)
        elif method in ("INFO", "OPTIONS"):
            tx.reply(200, "OK", [("Allow", self.host.call_settings.allow)])
        elif dispatch_transfer(self, self.behaviour, request, tx):
            pass
        else:
            tx.reply(405, "Method Not Allowed", [("Allow", self.host.call_settings.allow)])

    def notify_refer(self, status_line: str, final: bool) -> None:
        """Report a REFER's progress (RFC 3515): a message/sipfrag NOTIFY in this dialog."""
        _version, status, reason = [*status_line.split(" ", 2), "", ""][:3]
        notify_progress(self, int(status) if status.isdigit() else 500, reason, final)

    def _info(self, request: Request, tx: ServerTxHandle) -> None:
        answer_info(self, request, tx)

    def _refresh(self, request: Request, tx: ServerTxHandle) -> None:
        """re-INVITE or UPDATE: new offer (hold/resume), target and timer refresh."""
        assert self.dialog is not None
        if request.method == "INVITE" and self.state == "answered":
            tx.reply(500, "Server Internal Error (previous INVITE pending)", [("Retry-After", "1")])
            return
        if crosses_our_offer(request, self._offering(), tx):
            return
        settings = self.host.call_settings
        timer = negotiate_or_refuse(request, tx, settings.min_se, settings.session_expires)
        if timer is False:
            return
        body = b""
        before = self.streams[0].direction if self.streams else ""
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
                previous_key = self.streams[0].local_crypto if self.streams else None
                self._negotiate(offer)
                assert self.local_sdp is not None
                if self.streams:
                    keep_local_key(self.local_sdp, self.streams[0], previous_key)
                body = bytes(self.local_sdp)
                self.remote_sdp = offer
            except SdpError as exc:
                tx.reply(488, f"Not Acceptable Here ({exc})")
                return
        elif request.method == "INVITE" and self.local_sdp is not None:
            body = bytes(self.local_sdp)  # offerless re-INVITE: we offer again
        self.dialog.refresh_target(request)
        if body and request.body:
            self.host.update_media(self)
        self.timer = timer
        headers = self._contact_headers() + self._timer_headers(request)
        if body:
            headers.append(("Content-Type", "application/sdp"))
        tx.reply(200, "OK", headers, body)
        if request.method == "INVITE":
            self.state = "answered"
            self.invite_tx = tx
        self._arm_session_timer()
        on_hold = getattr(self.behaviour, "on_remote_hold", None)
        if on_hold is not None and request.body and self.remote_sdp is not None \
                and self.streams and self.streams[0].direction != before:
            on_hold(self, audio_direction(self.remote_sdp))

    def _offering(self) -> bool:
        """A re-INVITE or refresh of ours in this dialog awaits its answer."""
        return self._refreshing or (self._reoffer is not None and self._reoffer.pending)

    def reoffer(self, direction: str) -> None:
        """Hold (sendonly or inactive) or resume (sendrecv) the caller: a re-INVITE
        offering the agreed session in ``direction``."""
        if self._reoffer is None:
            self._reoffer = Reoffer(self)
        self._reoffer.send(direction)

    # -------------------------------------------------------------- session timer
    def _arm_session_timer(self) -> None:
        self._stop("refresh")
        self._stop("expire")
        if self.timer is None:
            return
        if self.timer.we_refresh:
            self._start("refresh", self.timer.refresh_after(), self._send_refresh)
        else:
            self._start("expire", self.timer.expire_after(), self._expired)

    def _expired(self) -> None:
        self.hangup("session timer expired")

    def _send_refresh(self) -> None:
        assert self.dialog is not None and self.timer is not None
        if self.state not in ("confirmed", "answered") or self._refreshing:
            return
        method = "UPDATE" if self._peer_allows_update else "INVITE"
        self._refreshing = True

        def on_final(response: Response) -> None:
            self._refreshing = False
            if response.status in (408, 481):
                self._finish(f"refresh failed with {response.status}")
            else:
                self._arm_session_timer()

        def on_failure(reason: str) -> None:
            self._refreshing = False
            self.hangup(f"refresh {reason}")

        send_session_refresh(self, method, self.timer.interval, "uas", on_final, on_failure)

    def send_dtmf(self, digit: str, method: str = "rfc4733") -> None:
        """Send one digit as RFC 4733 events, in-band tones, or SIP INFO."""
        send_dtmf(self, digit, method)

    def reject(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None
               ) -> None:
        """Refuse the INVITE with a final status (before it is answered) and end."""
        if self.invite_tx is not None and not self.invite_tx.answered:
            self.invite_tx.reply(status, reason, headers)
        self._finish(f"{status} {reason}")

    # -------------------------------------------------------------- ending
    def hangup(self, reason: str) -> None:
        """Send BYE (when confirmed or answered) and end."""
        if self.state in ("answered", "confirmed") and self.dialog is not None:
            host, port = self.host.via_address(self.source.transport)
            bye = self.dialog.create_request("BYE", host, port, self.source.transport)
            self.host.send_in_dialog(self, bye, lambda _r: None, lambda _f: None)
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.end_reason = reason
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        self.host.stop_media(self)
        for port in (self.rtp_port, self.video_port):
            if port is not None:
                self.host.ports.release(port)
        self.rtp_port = self.video_port = None
        try:
            self.behaviour.on_end(self)
        finally:
            self.host.call_ended(self)
            self.behaviour = ENDED
            self.media_app = None
            self._reoffer = None

    def _start(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self._stop(name)
        self._timers[name] = self.host.reactor.callLater(delay, self._fire, name, fn)

    def _fire(self, name: str, fn: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        try:
            fn()
        except Exception:
            log.exception("call timer %s failed", name)

    def _stop(self, name: str) -> None:
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()
