"""The one call abstraction: a SIP dialog-owning call, answered (``UasCall``) or placed
(``OutboundCall``).

Both kinds hold the same state (dialog, offer/answer, RTP ports, media and video
sessions), talk to the rest of the server only through :class:`CallHost`, and handle
requests inside their dialog with one dispatcher (:meth:`SipCall.in_dialog`): BYE,
re-INVITE and UPDATE (491 on glare), INFO (DTMF or the behaviour's), OPTIONS, REFER
and NOTIFY, and 405 with ``Allow`` for anything else. What differs is how the call
is set up and how it answers a new offer. Their behaviour (the service, meeting or
role that owns the call) hears what happens through the hooks declared in
``behaviour.py`` and the call events of ``confserver/calls/events.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IReactorTime

from confserver.adapters.calls.behaviour import ENDED, CallBehaviour
from confserver.adapters.calls.reoffer import Reoffer
from confserver.adapters.calls.transfer import notify_progress, read_notify
from confserver.adapters.media.ports import RtpPorts
from confserver.adapters.media.session import MediaApp, MediaSession
from confserver.adapters.media.video import VideoSession
from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.calls.events import TransferProgress
from confserver.media.dtmf import DtmfError, info_body, parse_info_body
from confserver.sip.dialog import Dialog, DialogError
from confserver.sip.message import Request, Response
from confserver.sip.sdp import DEFAULT_AUDIO_CODECS, Codec, NegotiatedStream, SessionDescription

log = logging.getLogger("switchboard.calls")

DTMF_BODIES = ("application/dtmf-relay", "application/dtmf")


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


class DialogPeer(Protocol):
    """Anything holding a dialog we send requests in: a call or a subscription."""

    source: Target
    dialog: Dialog | None


class CallHost(Protocol):
    """What a call needs from the server (the SIP application)."""

    reactor: IReactorTime
    call_settings: CallSettings
    ports: RtpPorts

    def local_contact(self, transport: str) -> str: ...

    def via_address(self, transport: str) -> tuple[str, int]: ...

    def send_in_dialog(self, call: DialogPeer, request: Request,
                       on_response: Callable[[Response], None],
                       on_failure: Callable[[str], None]) -> None: ...

    def send_ack(self, call: SipCall, ack: Request) -> None: ...

    def start_media(self, call: SipCall) -> bool: ...

    def update_media(self, call: SipCall) -> None: ...

    def stop_media(self, call: SipCall) -> None: ...

    def call_ended(self, call: SipCall) -> None: ...


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


class SipCall:
    """What both kinds of call share. Subclasses set up the dialog, answer new offers
    (``_reoffered``), say whether an offer of theirs is pending (``_offering``), and
    end (``hangup``, ``_finish``)."""

    def __init__(self, host: CallHost, behaviour: CallBehaviour, source: Target) -> None:
        self.host = host
        self.behaviour = behaviour
        self.source = source
        self.dialog: Dialog | None = None
        self.state = ""
        self.end_reason = ""
        self.local_sdp: SessionDescription | None = None
        self.streams: list[NegotiatedStream] = []
        self.rtp_port: int | None = None
        self.video_port: int | None = None
        self.media: MediaSession | None = None
        self.media_app: MediaApp | None = None
        self.video: VideoSession | None = None
        # the INVITE transaction we answer (a call we placed has none)
        self.invite_tx: ServerTxHandle | None = None
        # (who answers for the call, its source): counted against the call limits
        # while it lasts (the application's)
        self.account: tuple[str | None, str] | None = None
        self._reoffer: Reoffer | None = None  # our own hold/resume re-INVITEs

    @property
    def key(self) -> tuple[str, str, str]:
        assert self.dialog is not None
        return self.dialog.key

    # ------------------------------------------------------------ in the dialog
    def on_ack(self, request: Request) -> None:
        """The ACK for our 2xx to an INVITE."""

    def on_cancel(self) -> None:
        """A CANCEL for an INVITE we have not answered yet."""

    def on_invite_failure(self, reason: str) -> None:
        """Our answer to an INVITE in this dialog was never ACKed, or could not be sent."""
        if reason == "no-ack" and self.state in ("answered", "confirmed"):
            self.hangup("no ACK for 2xx")

    def in_dialog(self, request: Request, tx: ServerTxHandle) -> None:
        """Every request inside this call's dialog (ACK and CANCEL aside)."""
        assert self.dialog is not None
        if not in_sequence(self.dialog, request, tx):
            return
        method = request.method
        allow = [("Allow", self.host.call_settings.allow)]
        if method == "BYE":
            tx.reply(200, "OK")
            self._finish("remote hangup")
        elif method == "INVITE" and self.state == "answered":
            # our 2xx to the last INVITE awaits its ACK (RFC 3261 §14.2)
            tx.reply(500, "Server Internal Error (previous INVITE pending)", [("Retry-After", "1")])
        elif method in ("INVITE", "UPDATE"):
            if not crosses_our_offer(request, self._offering(), tx):
                self._reoffered(request, tx)
        elif method == "INFO" and request.body:
            self._info(request, tx)
        elif method in ("INFO", "OPTIONS"):
            tx.reply(200, "OK", allow)
        elif method == "REFER":
            self.behaviour.on_refer(self, request, tx)
        elif method == "NOTIFY":
            progress = read_notify(request, tx)
            if progress is not None:
                self.behaviour.on_event(self, TransferProgress(*progress))
        else:
            tx.reply(405, "Method Not Allowed", allow)

    def _info(self, request: Request, tx: ServerTxHandle) -> None:
        """SIP INFO with a body: DTMF (application/dtmf-relay or application/dtmf) goes
        to the media app; any other body to the behaviour (conference control), and
        what it does not take is refused with 415."""
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in DTMF_BODIES and self.behaviour.on_info(self, request, tx):
            return
        try:
            digit, _duration = parse_info_body(request.headers.get("Content-Type") or "",
                                               request.body)
        except DtmfError as exc:
            tx.reply(415 if "not a DTMF body" in str(exc) else 400, f"Bad Request ({exc})",
                     [("Accept", ", ".join(DTMF_BODIES))])
            return
        tx.reply(200, "OK")
        if self.media_app is not None:
            self.media_app.on_digit(self.media, digit, "info")

    def _reoffered(self, request: Request, tx: ServerTxHandle) -> None:
        """A re-INVITE or UPDATE from the far end (no glare): answer it."""
        raise NotImplementedError

    def _offering(self) -> bool:
        """A re-INVITE or refresh of ours in this dialog awaits its answer."""
        raise NotImplementedError

    def notify_refer(self, status_line: str, final: bool) -> None:
        """Report a REFER's progress (RFC 3515): a message/sipfrag NOTIFY in this dialog."""
        _version, status, reason = [*status_line.split(" ", 2), "", ""][:3]
        notify_progress(self, int(status) if status.isdigit() else 500, reason, final)

    def reoffer(self, direction: str) -> None:
        """Hold (sendonly or inactive) or resume (sendrecv) the far end: a re-INVITE
        offering the agreed session in ``direction``."""
        if self._reoffer is None:
            self._reoffer = Reoffer(self)
        self._reoffer.send(direction)

    def _reoffering(self) -> bool:
        return self._reoffer is not None and self._reoffer.pending

    def send_dtmf(self, digit: str, method: str = "rfc4733") -> None:
        """Send one digit as RFC 4733 events, in-band tones, or SIP INFO."""
        if method != "info":
            if self.media is None:
                raise ValueError("no media session to carry DTMF")
            self.media.send_digit(digit, method)
            return
        if self.dialog is None or self.state not in ("answered", "confirmed"):
            raise ValueError("no confirmed dialog to carry SIP INFO")
        ctype, body = info_body(digit)
        self.send_in_dialog(self.dialog.create_request(
            "INFO", *self.host.via_address(self.source.transport), self.source.transport,
            body, ctype))

    # ------------------------------------------------------------ ending
    def hangup(self, reason: str) -> None:
        raise NotImplementedError

    def _finish(self, reason: str) -> None:
        raise NotImplementedError

    def send_in_dialog(self, request: Request,
                       on_response: Callable[[Response], None] = lambda _r: None,
                       on_failure: Callable[[str], None] = lambda _f: None) -> None:
        self.host.send_in_dialog(self, request, on_response, on_failure)

    def _send_bye(self) -> None:
        assert self.dialog is not None
        host, port = self.host.via_address(self.source.transport)
        self.send_in_dialog(self.dialog.create_request("BYE", host, port, self.source.transport))

    def _release_ports(self) -> None:
        for port in (self.rtp_port, self.video_port):
            if port is not None:
                self.host.ports.release(port)
        self.rtp_port = self.video_port = None

    def _detach(self) -> None:
        """The call has ended and told its owner: drop every reference back to the
        owner (behaviour, media app) and to what calls back into us, so that an ended
        call is freed by reference counting rather than left in cycles for the cyclic
        garbage collector."""
        self.behaviour = ENDED
        self.media_app = None
        self._reoffer = None


__all__ = ["CallHost", "CallSettings", "DialogPeer", "SipCall", "crosses_our_offer",
           "in_sequence"]
