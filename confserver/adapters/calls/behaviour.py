"""What owns a call: the behaviour a service, a meeting or a role gives it.

Every hook a call may call is declared here with what it does when a behaviour does
not override it, so the calls never look for one by name. The call events of
``confserver/calls/events.py`` reach the behaviour through ``on_event``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from confserver.calls.events import CallEvent

if TYPE_CHECKING:
    from confserver.adapters.calls.call import SipCall
    from confserver.adapters.calls.inbound import UasCall
    from confserver.adapters.media.session import MediaApp
    from confserver.adapters.media.udp import SocketFactory
    from confserver.adapters.media.video import VideoSession
    from confserver.adapters.sip.endpoint import ServerTxHandle
    from confserver.sip.message import Request
    from confserver.sip.sdp import NegotiatedStream


class CallBehaviour:
    """``caller`` says who answers for the call: ``user:<aor>`` (signed in),
    ``gateway:<name>``, ``server`` (a call the server placed), or None for a caller
    nobody vouched for, whose calls are limited per address and in total and may
    not take the RTP ports kept in reserve. ``wants_video``: an offered video
    stream gets a port of its own (``video_app`` then opens its session)."""

    caller: str | None = None
    wants_video: bool = False

    def on_invite(self, call: UasCall) -> None:
        """An INVITE was accepted (its dialog built, a port taken): answer, ring,
        send early media or reject it."""

    def media_app(self, call: SipCall) -> MediaApp | None:
        """What the call does with its audio once media is agreed (None: no session)."""
        return None

    def video_app(self, call: SipCall, stream: NegotiatedStream, sockets: SocketFactory,
                  address: str) -> VideoSession | None:
        """The call's video session, when video was agreed and ``wants_video``."""
        return None

    def on_event(self, call: SipCall, event: CallEvent) -> None:
        """Ring, Connect or Fail (a call we placed); Hold (the far end re-offered its
        media); TransferProgress (the far end's NOTIFY about a REFER we sent)."""

    def on_info(self, call: SipCall, request: Request, tx: ServerTxHandle) -> bool:
        """An INFO whose body is not DTMF: True when answered here."""
        return False

    def on_refer(self, call: SipCall, request: Request, tx: ServerTxHandle) -> None:
        """A REFER in the call's dialog; by default the call cannot be transferred."""
        tx.reply(405, "Method Not Allowed (this call cannot be transferred)",
                 [("Allow", call.host.call_settings.allow)])

    def on_end(self, call: SipCall) -> None:
        """The call ended (an answered call at any point; a placed one once answered:
        before that it fails with a Fail event). ``call.end_reason`` says why."""


class _Ended(CallBehaviour):
    """The behaviour of a call once it has ended: it hears nothing more. An ended call
    drops its behaviour (which usually holds the call) for this, so that the two are
    not left in a reference cycle for the cyclic garbage collector to find."""


ENDED: CallBehaviour = _Ended()

__all__ = ["ENDED", "CallBehaviour"]
