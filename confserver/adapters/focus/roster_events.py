"""The conference event package (RFC 4575) over SIP-specific event notification (RFC 6665).

A SUBSCRIBE to a conference URI with ``Event: conference`` creates a
subscription dialog: 200, then a NOTIFY with the full roster, then a NOTIFY
with a partial document whenever something changed (checked every 200 ms,
so a burst of changes goes out as one document). A refreshing SUBSCRIBE
gets the full roster again; ``Expires: 0``, expiry or the end of the
meeting send a final NOTIFY with ``Subscription-State: terminated``; a
NOTIFY answered 481 (or not at all) drops the subscription.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.calls.call import in_sequence
from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.focus.conference_info import CONTENT_TYPE, EVENT, RosterSubscription
from confserver.sip.dialog import Dialog, new_tag
from confserver.sip.message import Request, Response

if TYPE_CHECKING:
    from confserver.adapters.calls.application import SipApplication
    from confserver.adapters.focus.focus import ActiveConference

log = logging.getLogger("switchboard.focus")

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
ROSTER_POLL_INTERVAL = 0.2  # s between looks for roster changes


def requested_expires(request: Request) -> int | None:
    raw = request.headers.get("Expires")
    if raw is None:
        return MAX_EXPIRES
    raw = raw.strip()
    return int(raw) if raw.isdigit() else None


class RosterSubscriber:
    """One subscription dialog to one conference's roster."""

    def __init__(self, runtime: ActiveConference, app: SipApplication, request: Request,
                 tx: ServerTxHandle, expires: int, subject: str, entity: str) -> None:
        self.runtime = runtime
        self.app = app
        self.source: Target = tx.source
        local_tag = new_tag()
        tx.to_tag = local_tag
        self.dialog: Dialog | None = Dialog.as_uas(request, local_tag,
                                                   app.local_contact(tx.source.transport))
        self.roster = RosterSubscription(runtime.conference, entity, runtime.focus.domain,
                                         subject=subject)
        self.active = True
        self._expiry: IDelayedCall | None = None
        self._expires = expires
        tx.reply(200, "OK", [("Expires", str(expires)),
                             ("Contact", self.dialog.local_contact)])
        self._arm(expires)
        self._notify(self.roster.full())

    @property
    def key(self) -> tuple[str, str, str]:
        assert self.dialog is not None
        return self.dialog.key

    def _arm(self, expires: int) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = self.app.reactor.callLater(expires, self.terminate, "timeout")
        self._expires = expires

    def refresh(self, request: Request, tx: ServerTxHandle) -> None:
        assert self.dialog is not None
        if not in_sequence(self.dialog, request, tx):
            return
        expires = requested_expires(request)
        if expires is None:
            tx.reply(400, "Bad Request (Expires is not a number)")
            return
        if expires == 0:
            tx.reply(200, "OK", [("Expires", "0")])
            self.terminate("timeout")  # RFC 6665 §4.2.1.4: unsubscribed
            return
        if expires < MIN_EXPIRES:
            tx.reply(423, "Interval Too Brief", [("Min-Expires", str(MIN_EXPIRES))])
            return
        expires = min(expires, MAX_EXPIRES)
        tx.reply(200, "OK", [("Expires", str(expires))])
        self._arm(expires)
        self._notify(self.roster.full())

    def poll(self) -> None:
        if self.active:
            document = self.roster.partial()
            if document is not None:
                self._notify(document)

    def terminate(self, reason: str) -> None:
        if not self.active:
            return
        self.active = False
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._send(self.roster.full(), f"terminated;reason={reason}")
        self.runtime.focus.unsubscribed(self.runtime, self)

    def _notify(self, body: bytes) -> None:
        remaining = self._expires
        if self._expiry is not None and self._expiry.active():
            remaining = max(1, int(self._expiry.getTime() - self.app.reactor.seconds()))
        self._send(body, f"active;expires={remaining}")

    def _send(self, body: bytes, state: str) -> None:
        assert self.dialog is not None
        host, port = self.app.via_address(self.source.transport)
        notify = self.dialog.create_request("NOTIFY", host, port, self.source.transport, body,
                                            CONTENT_TYPE)
        notify.headers.add("Event", EVENT)
        notify.headers.add("Subscription-State", state)
        self.app.send_in_dialog(self, notify, self._answered, self._failed)

    def _answered(self, response: Response) -> None:
        if response.status in (481, 408) or response.status >= 500:
            log.info("roster subscription %s dropped: NOTIFY got %d", self.key[0],
                     response.status)
            self._drop()

    def _failed(self, reason: str) -> None:
        log.info("roster subscription %s dropped: NOTIFY failed (%s)", self.key[0], reason)
        self._drop()

    def _drop(self) -> None:
        if self.active:
            self.active = False
            if self._expiry is not None and self._expiry.active():
                self._expiry.cancel()
            self.runtime.focus.unsubscribed(self.runtime, self)
