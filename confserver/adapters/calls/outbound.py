"""Calls Switchboard places (a meeting dialing out, mediation's legs).

The call offers our codecs (or the ones it is given) in the INVITE, answers
one digest challenge when it has credentials (a trunk), reports provisional
responses, and settles the media on the 2xx (ACK, then the same media start as an
answered call); inside the dialog it is a ``SipCall`` like any other. Its
behaviour hears Ring, Connect and Fail (``confserver/calls/events.py``), then
``on_end`` once an answered call ends.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import CallHost, SipCall
from confserver.adapters.calls.reoffer import answer_codec_change, answer_reoffer, offers_codec
from confserver.adapters.calls.session_refresh import UacSessionTimer, negotiate_or_refuse
from confserver.adapters.sip.endpoint import ClientTxHandle, ServerTxHandle, SipEndpoint, Target
from confserver.adapters.sip.resolver import TargetResolver, is_ip
from confserver.calls.events import Connect, Fail, Hold, Ring
from confserver.sip.dialog import (
    Dialog,
    DialogError,
    SessionTimer,
    negotiate_as_uac,
    new_call_id,
    new_tag,
)
from confserver.sip.digest import DigestClient
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Headers, Request, Response
from confserver.sip.reliable import Provisional, ProvisionalTracker
from confserver.sip.sdp import (
    Codec,
    SdpError,
    SessionDescription,
    audio_direction,
    make_offer,
    narrowed,
    streams_from_answer,
)
from confserver.sip.uri import SipUri

log = logging.getLogger("switchboard.calls")
RING_TIMEOUT = 60.0
_cseq = itertools.count(1)


@dataclass
class EarlyDialog:
    """An early dialog of a call we placed, as the sender of in-dialog requests sees it."""

    source: Target
    dialog: Dialog | None


class PlacingHost(CallHost, Protocol):
    """What placing a call needs beyond what any call does."""

    endpoint: SipEndpoint
    resolver: TargetResolver | None

    def call_placed(self, call: SipCall) -> None:
        """The call was answered: requests in its dialog now reach it."""
        ...


class OutboundCall(SipCall):
    """One INVITE we send."""

    def __init__(self, app: PlacingHost, uri: SipUri, from_uri: str,
                 behaviour: CallBehaviour, *,
                 codecs: tuple[Codec, ...] | None = None,
                 headers: list[tuple[str, str]] | None = None,
                 target: Target | None = None,
                 credentials: DigestClient | None = None,
                 ring_timeout: float = RING_TIMEOUT, srtp: str = "off",
                 session_expires: int | None = None,
                 vouch: Callable[[Request], tuple[str, str]] | None = None) -> None:
        """``vouch`` adds the header that vouches for whom the call is placed to each
        INVITE sent (it signs the request as sent: confserver/sip/assertion.py)."""
        transport = (uri.params.get("transport") or "udp").lower()
        super().__init__(app, behaviour, target or Target(transport, uri.host, uri.port or 5060))
        self.host: PlacingHost = app
        self.vouch = vouch
        self.uri = uri
        self.codecs = codecs or app.call_settings.codecs
        self.extra_headers = list(headers or [])
        self.credentials = credentials
        self.ring_timeout = ring_timeout
        self.srtp = srtp  # our offer's SRTP policy (required, optional, off)
        # the session interval we ask for (RFC 4028); 0: no session timer
        self.session_expires = app.call_settings.session_expires if session_expires is None \
            else session_expires
        self.session_timer: UacSessionTimer | None = None
        self._authorization: tuple[str, str] | None = None  # our answer to a challenge
        self._interval_raised = False
        self.final_status: int | None = None  # the failure's SIP status (None: no response)
        self.local_failure = False  # the call failed here, before anything was sent
        self.heard = False  # any response at all (a 100 Trying too): the far end is there
        self.state = "calling"
        self._explicit_target = target is not None
        self._challenged = False
        self.rtp_port = app.ports.allocate()
        self._handle: ClientTxHandle | None = None
        self._ring: IDelayedCall | None = None
        # a bare URI, or a name-addr with a display name (mediation's caller ID)
        name_addr = from_uri if "<" in from_uri else f"<{from_uri}>"
        self._from = f"{name_addr};tag={new_tag()}"
        self._early_answer = b""  # the SDP of the provisional response media started on
        self._early_offer: SessionDescription | None = None  # our offer, cut to its answer
        # reliable provisional responses (RFC 3262): the RSeqs taken, and the early
        # dialog per To tag that PRACKs go in (its CSeq carries over to the call's dialog)
        self._provisionals = ProvisionalTracker()
        self._early_dialogs: dict[str, Dialog] = {}

    @property
    def early_media(self) -> bool:
        """A provisional response's SDP answer started the media."""
        return bool(self._early_answer)

    # ------------------------------------------------------------ placing the call
    def start(self) -> None:
        if self.rtp_port is None:
            self.local_failure = True  # nothing was sent: the far end is not to blame
            self.final_status = 503
            self._fail("503 Service Unavailable (no RTP port free here)")
            return
        settings = self.host.call_settings
        self.local_sdp = make_offer(settings.media_address, self.rtp_port, self.codecs,
                                    session_id=next(_cseq), version=1, srtp=self.srtp)
        via_host, _via_port = self.host.via_address(self.source.transport)
        self._call_id = new_call_id(via_host)
        try:
            self._request = self._invite(1)
        except SipSyntaxError as exc:
            self._fail(f"bad request: {exc}")
            return
        self._ring = self.host.reactor.callLater(self.ring_timeout, self._no_answer)
        if self._explicit_target or is_ip(self.source.host) or self.host.resolver is None:
            self._send(self.source)
            return

        def resolved(targets: list[Target]) -> None:
            if targets:
                self.source = targets[0]
                self._send(targets[0])
            else:
                self._fail("no address for the host")

        self.host.resolver.resolve(self.uri, self.source.transport).addCallbacks(
            resolved, lambda failure: self._fail(f"DNS: {failure.getErrorMessage()}"))

    def _invite(self, cseq: int, authorization: tuple[str, str] | None = None) -> Request:
        assert self.local_sdp is not None
        settings = self.host.call_settings
        via_host, via_port = self.host.via_address(self.source.transport)
        contact = self.host.local_contact(self.source.transport)
        headers = Headers([
            ("Via", f"SIP/2.0/{self.source.transport.upper()} {via_host}:{via_port};"
                    f"branch=z9hG4bK{new_tag()};rport"),
            ("Max-Forwards", "70"), ("From", self._from), ("To", f"<{self.uri}>"),
            ("Call-ID", self._call_id), ("CSeq", f"{cseq} INVITE"), ("Contact", contact),
            ("Allow", settings.allow), ("User-Agent", settings.user_agent),
            *self.extra_headers, *([authorization] if authorization else []),
            ("Supported", "100rel, timer" if self.session_expires else "100rel"),
            *self._timer_headers(), ("Content-Type", "application/sdp")])
        request = Request(headers=headers, method="INVITE", uri=self.uri,
                          body=bytes(self.local_sdp))
        request.validate()
        if self.vouch is not None:
            request.headers.add(*self.vouch(request))
        return request

    def _timer_headers(self) -> list[tuple[str, str]]:
        if not self.session_expires:
            return []
        return [("Session-Expires", str(self.session_expires)),
                ("Min-SE", str(min(self.session_expires, self.host.call_settings.min_se)))]

    def _raise_interval(self, response: Response) -> bool:
        """A 422 (RFC 4028 §7.4): ask again once with the far end's Min-SE."""
        raw = (response.headers.get("Min-SE") or "").split(";")[0].strip()
        if self._interval_raised or not raw.isdigit() or not self.session_expires \
                or int(raw) <= self.session_expires or int(raw) > 86400:
            return False
        self._interval_raised = True
        self.session_expires = int(raw)
        assert self._request.cseq is not None
        self._request = self._invite(self._request.cseq.number + 1, self._authorization)
        self._send(self.source)
        return True

    def _send(self, target: Target) -> None:
        if self.state != "calling":
            return
        self._handle = self.host.endpoint.send_request(self._request, target, self._response,
                                                       lambda reason: self._fail(reason))

    def _no_answer(self) -> None:
        self._ring = None
        if self.state == "calling" and self._handle is not None:
            self.host.endpoint.cancel(self._handle)
            self._fail("no answer")

    def _response(self, response: Response) -> None:
        self.heard = True
        if self.state != "calling":
            return
        if response.status < 200:
            if response.status > 100:
                verdict = self._provisionals.classify(response)
                if verdict.kind in (Provisional.DUPLICATE, Provisional.OUT_OF_ORDER):
                    return  # resent until PRACKed, or overtook one we have not had yet
                if verdict.kind is Provisional.NEW:
                    self._prack(response, verdict.rack)
                if response.body and not self._early_answer:
                    self._early_media(response)
                self.behaviour.on_event(self, Ring(early_media=self.early_media))
            return
        if response.status in (401, 407) and self._answer_challenge(response):
            return
        if response.status == 422 and self._raise_interval(response):
            return
        if self._ring is not None and self._ring.active():
            self._ring.cancel()
        if response.status >= 300:
            self.final_status = response.status
            self._fail(f"{response.status} {response.reason}")
            return
        # a 2xx repeating the early answer (or carrying none) keeps the early session
        keep_early = self.early_media and response.body in (b"", self._early_answer)
        try:
            self.dialog = Dialog.as_uac(self._request, response)
            early = self._early_dialogs.get(self.dialog.remote_tag)
            if early is not None:  # its PRACKs used CSeqs: the next request goes above them
                self.dialog.local_seq = max(self.dialog.local_seq, early.local_seq)
            remote = None if keep_early else SessionDescription.parse(response.body)
        except (DialogError, SdpError) as exc:
            self._ack(response)
            if self.dialog is not None:
                self._unusable_answer(488, f"bad answer: {exc}")
            else:
                self.hangup(f"bad answer: {exc}")
            return
        self._ack(response)
        assert self.local_sdp is not None
        if remote is not None:
            self.host.stop_media(self)  # an early session on other terms
            self.streams = streams_from_answer(self.local_sdp, remote, self.codecs)
            if not self.streams:
                self._unusable_answer(488, "no usable media in the answer (no codec we "
                                      "offered, or SRTP we required refused)")
                return
            if not self.host.start_media(self):
                self._unusable_answer(503, "cannot open the media session")
                return
            self.local_sdp = narrowed(self.local_sdp, self.streams[0])
        elif self._early_offer is not None:
            self.local_sdp = self._early_offer
        self.state = "confirmed"
        self.host.call_placed(self)
        self._start_session_timer(response)
        self.behaviour.on_event(self, Connect())

    def _start_session_timer(self, response: Response) -> None:
        try:
            timer = negotiate_as_uac(response, self.session_expires)
        except SipSyntaxError as exc:
            log.info("ignoring the Session-Expires from %s: %s", self.uri, exc)
            timer = None
        if timer is not None:
            allows_update = "UPDATE" in (response.headers.get("Allow") or "").upper()
            self.session_timer = UacSessionTimer(self, timer, allows_update,
                                                 busy=self._reoffering)

    def _unusable_answer(self, status: int, reason: str) -> None:
        """The far end answered terms we cannot use: end its dialog at once with a BYE,
        and report the attempt as failed (with ``status``), since it never carried a call."""
        assert self.dialog is not None
        log.info("answer from %s unusable: %s", self.uri, reason)
        self._send_bye()
        self.final_status = status
        self._fail(f"{status} {reason}")

    def _early_media(self, response: Response) -> None:
        """A provisional response with an SDP answer (RFC 3261 13.2.1; in practice a 183
        from a gateway): media starts now, so the caller hears the network's ring-back
        or announcement. A 2xx with the same answer keeps this session."""
        assert self.local_sdp is not None
        try:
            remote = SessionDescription.parse(response.body)
        except SdpError as exc:
            log.info("ignoring the SDP of a %d from %s: %s", response.status, self.uri, exc)
            return
        self.streams = streams_from_answer(self.local_sdp, remote, self.codecs)
        if self.streams and self.host.start_media(self):
            self._early_answer = response.body
            self._early_offer = narrowed(self.local_sdp, self.streams[0])

    def _prack(self, response: Response, rack: str) -> None:
        """Acknowledge a reliable provisional response (RFC 3262 §7.1) in its early
        dialog; the far end stops resending it. Its answer needs nothing from us."""
        assert response.to is not None and response.to.tag
        early = self._early_dialogs.get(response.to.tag)
        try:
            if early is None:
                early = Dialog.as_uac(self._request, response)
                self._early_dialogs[response.to.tag] = early
            else:
                early.refresh_target(response)
            via_host, via_port = self.host.via_address(self.source.transport)
            prack = early.create_request("PRACK", via_host, via_port, self.source.transport)
        except (DialogError, SipSyntaxError) as exc:
            log.info("cannot PRACK the %d from %s: %s", response.status, self.uri, exc)
            return
        prack.headers.add("RAck", rack)

        def answered(reply: Response) -> None:
            if reply.status >= 300:
                log.info("PRACK to %s answered %d %s", self.uri, reply.status, reply.reason)

        self.host.send_in_dialog(EarlyDialog(self.source, early), prack, answered,
                                 lambda reason: log.info("PRACK to %s failed: %s",
                                                         self.uri, reason))

    def _answer_challenge(self, response: Response) -> bool:
        """Send the INVITE again with credentials (once): True when it went out."""
        if self.credentials is None or self._challenged:
            return False
        self._challenged = True
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
        try:
            value = self.credentials.authorization(response.headers.get_all(header), "INVITE",
                                                   str(self.uri))
            assert self._request.cseq is not None
            self._authorization = (answer, value)
            self._request = self._invite(self._request.cseq.number + 1, self._authorization)
        except SipSyntaxError as exc:
            log.info("cannot answer the challenge from %s: %s", self.source, exc)
            return False
        self._send(self.source)
        return True

    def _ack(self, response: Response) -> None:
        if self.dialog is None:
            return
        via_host, via_port = self.host.via_address(self.source.transport)
        assert response.cseq is not None
        ack = self.dialog.create_request("ACK", via_host, via_port, self.source.transport,
                                         cseq=response.cseq.number)
        self.host.send_ack(self, ack)

    # ------------------------------------------------------------ in the dialog
    def _reoffered(self, request: Request, tx: ServerTxHandle) -> None:
        """The far end re-INVITEs (hold, resume, a refresh): the agreed session with our
        direction mirroring theirs; the behaviour hears of a hold or a resume."""
        if self.local_sdp is None:  # answered without an offer of ours: cannot happen
            tx.reply(500, "Server Internal Error (no session to re-offer)")
            return
        contact = [("Contact", self.host.local_contact(self.source.transport)),
                   ("Content-Type", "application/sdp")]
        timer = negotiate_or_refuse(request, tx, self.host.call_settings.min_se,
                                    self.session_timer.timer.interval
                                    if self.session_timer else 0)
        if timer is False:
            return
        if timer is not None:
            contact.insert(0, ("Session-Expires", f"{timer.interval};refresher={timer.refresher}"))
            if "timer" in request.headers.tokens("Supported"):
                contact.insert(0, ("Require", "timer"))
            # their refresh: our timer follows what was just agreed (who refreshes may swap)
            as_placed = SessionTimer(timer.interval, timer.refresher,
                                     timer.refresher == "uas")
            if self.session_timer is not None:
                self.session_timer.refreshed_by_peer(as_placed)
            else:
                self.session_timer = UacSessionTimer(self, as_placed, True,
                                                     busy=self._reoffering)
        if not request.body:  # a refresh: an offerless re-INVITE gets our SDP again
            if request.method == "UPDATE":
                contact = [h for h in contact if h[0] != "Content-Type"]
                tx.reply(200, "OK", contact)
            else:
                tx.reply(200, "OK", contact, body=bytes(self.local_sdp))
            return
        before = self.streams[0].direction if self.streams else ""
        try:
            offer = SessionDescription.parse(request.body)
            audio = next((m for m in offer.media if m.kind == "audio" and m.port), None)
            if self.streams and audio is not None and not offers_codec(self.streams[0], audio) \
                    and self.rtp_port is not None:
                # the far end moves to another codec: answered afresh, media follows
                answer = answer_codec_change(self, offer, self.host.call_settings.media_address,
                                             self.rtp_port, self.codecs, self.srtp)
            else:
                answer = answer_reoffer(self, offer)
        except SdpError as exc:
            tx.reply(488, f"Not Acceptable Here ({exc})")
            return
        if self.dialog is not None:
            self.dialog.refresh_target(request)
        self.host.update_media(self)
        tx.reply(200, "OK", contact, body=bytes(answer))
        if self.streams and self.streams[0].direction != before:
            self.behaviour.on_event(self, Hold(audio_direction(offer)))

    def _offering(self) -> bool:
        return self._reoffering() or (self.session_timer is not None
                                      and self.session_timer.refreshing)


    def hangup(self, reason: str) -> None:
        if self.state == "calling" and self._handle is not None:
            self.host.endpoint.cancel(self._handle)
            self._fail(reason)
            return
        if self.state == "confirmed" and self.dialog is not None:
            self._send_bye()
        self._finish(reason)

    # ------------------------------------------------------------ the end
    def _fail(self, reason: str) -> None:
        if self.state != "calling":
            return
        if self._ring is not None and self._ring.active():
            self._ring.cancel()
        self.host.stop_media(self)  # early media, if any
        self._release()
        self.state = "ended"
        self.end_reason = reason
        try:
            self.behaviour.on_event(self, Fail(self.final_status, reason, self.local_failure))
        finally:
            self._detach()

    def _finish(self, reason: str) -> None:
        if self.state == "ended":
            return
        log.info("call to %s ended: %s", self.uri, reason)
        self.state = "ended"
        self.end_reason = reason
        self.host.stop_media(self)
        self._release()
        try:
            self.behaviour.on_end(self)
        finally:
            self.host.call_ended(self)
            self._detach()

    def _detach(self) -> None:
        super()._detach()
        self._handle = None  # the INVITE's transaction handle and the session timer
        self.session_timer = None  # call back into us

    def _release(self) -> None:
        if self.session_timer is not None:
            self.session_timer.cancel()
        self._release_ports()
