"""Calls we answer: the UAS side of INVITE sessions.

A call accepts the INVITE (session timer, dialog, SDP offer, an RTP port), rings,
sends early media or answers as its behaviour says, answers the far end's new
offers, and refreshes or expects its session timer. What it shares with a call we
place (state, the in-dialog dispatcher, DTMF, hold, transfer) is ``SipCall``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import CallHost, SipCall
from confserver.adapters.calls.session_refresh import negotiate_or_refuse, send_session_refresh
from confserver.adapters.sip.endpoint import ServerTxHandle
from confserver.calls.events import Hold
from confserver.sip.dialog import (
    Dialog,
    DialogError,
    SessionTimer,
    new_tag,
)
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Request, Response
from confserver.sip.sdp import (
    Codec,
    SdpError,
    SessionDescription,
    answer_offer,
    audio_direction,
    keep_local_key,
    make_offer,
    streams_from_answer,
)

log = logging.getLogger("switchboard.calls")


class UasCall(SipCall):
    def __init__(self, host: CallHost, tx: ServerTxHandle, behaviour: CallBehaviour) -> None:
        super().__init__(host, behaviour, tx.source)
        self.invite_tx = tx
        self.local_tag = new_tag()
        tx.to_tag = self.local_tag
        self.state = "early"
        self.remote_sdp: SessionDescription | None = None
        self.sdp_version = 0
        self.session_id = host.reactor.seconds().__int__()
        self.timer: SessionTimer | None = None
        self.on_hold = False
        self._timers: dict[str, IDelayedCall] = {}
        self._peer_allows_update = False
        self._refreshing = False
        self._answer_body = b""
        self._media_ready = False  # negotiated and opened (at the 2xx, or a 183 before it)
        # the codecs to answer with, in order (mediation prefers its other leg's codec)
        self.codecs: tuple[Codec, ...] | None = None

    # -------------------------------------------------------------- set-up
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
        if self.rtp_port is not None and self.behaviour.wants_video \
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

    def _reoffered(self, request: Request, tx: ServerTxHandle) -> None:
        """re-INVITE or UPDATE: new offer (hold/resume), target and timer refresh."""
        assert self.dialog is not None
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
        if request.body and self.remote_sdp is not None \
                and self.streams and self.streams[0].direction != before:
            self.behaviour.on_event(self, Hold(audio_direction(self.remote_sdp)))

    def _offering(self) -> bool:
        return self._refreshing or self._reoffering()

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
            self._send_bye()
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
        self._release_ports()
        try:
            self.behaviour.on_end(self)
        finally:
            self.host.call_ended(self)
            self._detach()

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


__all__ = ["UasCall"]
