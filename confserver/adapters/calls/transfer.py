"""Call transfer signalling (RFC 3515 REFER, RFC 5589) for either kind of call, one
we answered or one we placed: reading a REFER we received, sending one in a
dialog, and the message/sipfrag NOTIFYs that report a transfer's progress in
either direction.

What a transfer does is the behaviour's business (the focus calls the target into
its meeting, mediation connects the other party to it); this module only speaks
the protocol.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from confserver.adapters.sip.endpoint import ServerTxHandle, Target
from confserver.sip.address import NameAddr
from confserver.sip.dialog import Dialog
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Request, Response
from confserver.sip.uri import SipUri, TelUri

log = logging.getLogger("switchboard.calls")
REFER_EVENT = "refer"
# RFC 3891: callid *(";" replaces-param), with both tags (and early-only at most)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
REPLACES = re.compile(rf"{_WORD}(@{_WORD})?(;[ \t]*(to-tag|from-tag)[ \t]*=[ \t]*{_TOKEN}"
                      rf"|;[ \t]*early-only)+\Z", re.IGNORECASE)
SIPFRAG = "message/sipfrag"


class DialogCall(Protocol):
    host: Any  # the SipApplication
    source: Target
    dialog: Dialog | None
    state: str


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """What a REFER asks for: call ``uri`` (its embedded headers removed); with
    ``replaces`` (an attended transfer) that call replaces an existing dialog at
    the target (RFC 3891), and ``require`` names the extensions the referrer said
    that call needs (an embedded ``Require=replaces``: without Replaces support the
    target must refuse the call rather than ring as a new one)."""

    uri: SipUri | TelUri
    replaces: str | None
    referred_by: str | None
    require: tuple[str, ...] = ()


class ReferRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def read_refer(request: Request) -> ReferTarget:
    """The transfer a REFER asks for, or ReferRefused with the status to answer."""
    values = request.headers.get_all("Refer-To")
    if not values:
        raise ReferRefused(400, "Bad Request (no Refer-To)")
    if len(values) > 1:
        raise ReferRefused(400, "Bad Request (more than one Refer-To)")
    try:
        uri = NameAddr.parse(values[0]).uri
    except (SipSyntaxError, ValueError) as exc:
        raise ReferRefused(400, f"Bad Request (Refer-To: {exc})") from exc
    if isinstance(uri, TelUri):
        return ReferTarget(uri, None, request.headers.get("Referred-By"))
    if not isinstance(uri, SipUri):
        raise ReferRefused(416, "Unsupported URI Scheme (Refer-To must be a SIP or tel URI)")
    replaces: str | None = None
    require: list[str] = []
    for field in (uri.headers or "").split("&"):
        name, _, value = field.partition("=")
        name = name.strip().lower()
        if name == "replaces" and value:
            replaces = unquote(value)
            lowered = replaces.lower()
            if not REPLACES.match(replaces) or "to-tag" not in lowered \
                    or "from-tag" not in lowered:
                # the value becomes a header of our INVITE: only a well-formed one
                raise ReferRefused(400, "Bad Request (the Replaces in Refer-To is not "
                                   "call-id;to-tag=...;from-tag=...)")
        elif name == "require":
            # only the requirement that goes with Replaces is ours to pass on: the
            # other embedded headers (RFC 3261 §19.1.5) are not copied into our INVITE
            for tag in unquote(value).split(","):
                if tag.strip().lower() == "replaces":
                    require.append("replaces")
                elif tag.strip():
                    log.info("REFER: Require %s embedded in Refer-To ignored", tag.strip())
        elif name:
            log.info("REFER: header %s embedded in Refer-To ignored", name)
    target = SipUri.parse(str(uri).split("?", 1)[0])
    return ReferTarget(target, replaces, request.headers.get("Referred-By"),
                       tuple(require) if replaces else ())


def accept_refer(call: DialogCall, tx: ServerTxHandle) -> None:
    """202, then the implicit subscription's first NOTIFY (RFC 3515 §2.4.4)."""
    tx.reply(202, "Accepted")
    notify_progress(call, 100, "Trying", final=False)


def notify_progress(call: DialogCall, status: int, reason: str, final: bool) -> None:
    """Report a transfer's progress to the party that asked for it: a message/sipfrag
    NOTIFY in the call's dialog; ``final`` ends the implicit subscription."""
    if call.dialog is None or call.state not in ("answered", "confirmed"):
        return
    host, port = call.host.via_address(call.source.transport)
    notify = call.dialog.create_request("NOTIFY", host, port, call.source.transport,
                                        f"SIP/2.0 {status} {reason}\r\n".encode(), SIPFRAG)
    notify.headers.add("Event", REFER_EVENT)
    notify.headers.add("Subscription-State",
                       "terminated;reason=noresource" if final else "active;expires=60")
    call.host.send_in_dialog(call, notify, lambda _r: None, lambda _f: None)


def send_refer(call: DialogCall, refer_to: str, referred_by: str | None,
               on_refused: Callable[[int, str], None]) -> None:
    """Ask the far end of ``call`` to call ``refer_to``; ``on_refused`` hears a
    final non-2xx answer or a transport failure (status 503). Progress after a
    2xx arrives as NOTIFYs (see ``read_notify``)."""
    if call.dialog is None or call.state not in ("answered", "confirmed"):
        on_refused(481, "Call Does Not Exist")
        return
    host, port = call.host.via_address(call.source.transport)
    refer = call.dialog.create_request("REFER", host, port, call.source.transport)
    refer.headers.add("Refer-To", refer_to)
    if referred_by:
        refer.headers.add("Referred-By", referred_by)

    def answered(response: Response) -> None:
        if response.status >= 300:
            on_refused(response.status, response.reason)

    call.host.send_in_dialog(call, refer, answered,
                             lambda why: on_refused(503, f"Service Unavailable ({why})"))


def read_notify(request: Request, tx: ServerTxHandle) -> tuple[int, str, bool] | None:
    """Answer a NOTIFY in a call's dialog. For one of the refer event package, the
    transfer's progress it carries: (status, reason, final); None otherwise."""
    event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
    if event != REFER_EVENT:
        tx.reply(489, "Bad Event")
        return None
    status_line = request.body.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("utf-8", "replace")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("SIP/") or not parts[1].isdigit() \
            or not 100 <= int(parts[1]) <= 699:
        tx.reply(400, "Bad Request (the body is not a message/sipfrag status line)")
        return None
    tx.reply(200, "OK")
    state = (request.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
    status = int(parts[1])
    return status, parts[2] if len(parts) > 2 else "", state == "terminated" or status >= 200


__all__ = [
    "ReferRefused",
    "ReferTarget",
    "accept_refer",
    "notify_progress",
    "read_notify",
    "read_refer",
    "send_refer",
]
