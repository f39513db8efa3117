"""Session timers (RFC 4028) on a call we placed: a trunk that asks for them drops a
call nobody refreshes, typically after 30 minutes.

When we are the refresher, an UPDATE (or a re-INVITE with the same SDP when the
far end does not allow UPDATE) goes out at half the interval; a 408 or 481, or
no answer at all, ends the call. When the far end refreshes, the call ends if no
refresh arrives within the interval less min(32 s, a third of it) (§10).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.sip.dialog import (
    Dialog,
    SessionTimer,
    SessionTimerTooSmall,
    negotiate_as_uas,
    parse_session_expires,
)
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Request, Response
from confserver.sip.sdp import SessionDescription

log = logging.getLogger("switchboard.calls")
BUSY_RETRY = 2.0  # seconds: a refresh due while a re-INVITE of ours is under way waits


class RefreshedCall(Protocol):
    host: Any  # the SipApplication
    source: Target
    dialog: Dialog | None
    local_sdp: SessionDescription | None
    state: str

    def hangup(self, reason: str) -> None: ...


def negotiate_or_refuse(request: Request, tx: ServerTxHandle, min_se: int, interval: int
                        ) -> SessionTimer | Literal[False] | None:
    """The session timer for a (re-)INVITE or UPDATE we answer (None: no timer), or
    False when the request's terms were refused here with 422 (interval below our
    Min-SE) or 400 (malformed Session-Expires / Min-SE)."""
    try:
        return negotiate_as_uas(request, min_se, interval)
    except SessionTimerTooSmall as exc:
        tx.reply(422, "Session Interval Too Small", [("Min-SE", str(exc.min_se))])
    except SipSyntaxError as exc:
        tx.reply(400, f"Bad Request ({exc})")
    return False


def send_session_refresh(call: RefreshedCall, method: str, interval: int, refresher: str,
                         on_final: Callable[[Response], None],
                         on_failure: Callable[[str], None]) -> None:
    """One refresh in ``call``'s dialog: an UPDATE, or a re-INVITE carrying our current
    SDP (ACKed here when it succeeds). ``on_final`` hears the final response,
    ``on_failure`` a transport failure or timeout."""
    assert call.dialog is not None
    body = bytes(call.local_sdp) if method == "INVITE" and call.local_sdp else b""
    host, port = call.host.via_address(call.source.transport)
    request = call.dialog.create_request(method, host, port, call.source.transport, body,
                                         "application/sdp" if body else None)
    request.headers.add("Session-Expires", f"{interval};refresher={refresher}")
    request.headers.add("Supported", "timer")

    def on_response(response: Response) -> None:
        if response.status < 200:
            return
        if response.status < 300 and method == "INVITE" and call.dialog is not None \
                and request.cseq is not None:
            ack = call.dialog.create_request("ACK", host, port, call.source.transport,
                                             cseq=request.cseq.number)
            call.host.send_ack(call, ack)
        on_final(response)

    call.host.send_in_dialog(call, request, on_response, on_failure)


class UacSessionTimer:
    """The session timer of one call we placed, once its 2xx settled it."""

    def __init__(self, call: RefreshedCall, timer: SessionTimer, peer_allows_update: bool,
                 busy: Callable[[], bool] = lambda: False) -> None:
        self.call = call
        self.timer = timer
        self.use_update = peer_allows_update
        self.busy = busy  # another INVITE transaction of ours is pending
        self.refreshes = 0
        self._pending: IDelayedCall | None = None
        self._refreshing = False
        self.arm()

    @property
    def refreshing(self) -> bool:
        """Our refresh (an UPDATE or re-INVITE) awaits its answer."""
        return self._refreshing

    def arm(self) -> None:
        self.cancel()
        reactor = self.call.host.reactor
        if self.timer.we_refresh:
            self._pending = reactor.callLater(self.timer.refresh_after(), self._refresh)
        else:
            self._pending = reactor.callLater(self.timer.expire_after(), self._expired)

    def cancel(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def refreshed_by_peer(self, timer: SessionTimer | None) -> None:
        """The far end sent a re-INVITE or UPDATE (it refreshed, perhaps on new terms)."""
        if timer is not None:
            self.timer = timer
        self.arm()

    def _expired(self) -> None:
        self._pending = None
        self.call.hangup("session timer expired")

    def _refresh(self) -> None:
        self._pending = None
        call = self.call
        if call.dialog is None or call.state != "confirmed":
            return
        if self._refreshing or self.busy():
            self._pending = call.host.reactor.callLater(BUSY_RETRY, self._refresh)
            return
        method = "UPDATE" if self.use_update else "INVITE"
        self._refreshing = True

        def on_final(response: Response) -> None:
            self._refreshing = False
            if response.status < 300:
                self.refreshes += 1
                self._take_answer(response)
                self.arm()
            elif response.status in (408, 481):
                call.hangup(f"session refresh failed with {response.status}")
            elif response.status in (405, 501) and method == "UPDATE":
                self.use_update = False  # it said it allowed UPDATE; try re-INVITE next time
                self._pending = call.host.reactor.callLater(0, self._refresh)
            else:
                self.arm()  # refused for another reason: the session stays, try again later

        def on_failure(reason: str) -> None:
            self._refreshing = False
            call.hangup(f"session refresh {reason}")

        send_session_refresh(call, method, self.timer.interval, "uac", on_final, on_failure)

    def _take_answer(self, response: Response) -> None:
        raw = response.headers.get("Session-Expires")
        if raw is None:
            return
        try:
            interval, refresher = parse_session_expires(raw)
        except SipSyntaxError:
            return
        refresher = refresher or "uac"
        self.timer = SessionTimer(interval, refresher, refresher == "uac")


__all__ = ["UacSessionTimer", "negotiate_or_refuse", "send_session_refresh"]
