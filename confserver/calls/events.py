"""The call events: what happens on a call, in one vocabulary for every role (sippy's
CCEvents are the model). A call we placed reports Ring, Connect and Fail to its
behaviour; any call reports Hold and TransferProgress; mediation's legs report all
of them (and Transfer, Disconnect, Digit) to the call that couples them, and a leg
never reaches into another leg: it reports one of these, and the call decides."""

from __future__ import annotations

from dataclasses import dataclass

from confserver.sip.uri import SipUri, TelUri


@dataclass(frozen=True, slots=True)
class Ring:
    """The far end is alerting (180/183); ``early_media`` when its provisional answer
    carried SDP, so the leg's media already flows (ring-back, an announcement)."""

    early_media: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    """The far end answered; media flows."""


@dataclass(frozen=True, slots=True)
class Fail:
    """The attempt ended before an answer: the SIP status (None: a transport error
    or no answer in time) and why. ``local``: it never left this server (no RTP port
    was free): says nothing of the far end, and no other gateway would fare better."""

    status: int | None
    reason: str
    local: bool = False


@dataclass(frozen=True, slots=True)
class Disconnect:
    """An answered leg ended (BYE, media timeout, session timer)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Hold:
    """The far end re-offered its media in ``direction`` as it wrote it: sendonly or
    inactive (it holds the call), sendrecv (it resumes)."""

    direction: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """The party on this leg asks (REFER) that the party on the other leg be connected
    to ``target`` instead; with ``replaces`` (an attended transfer) in place of a call
    the target already has. The call answers through the leg's ``answer_transfer``
    before the event returns, and reports progress with ``notify_transfer``."""

    target: SipUri | TelUri
    replaces: str | None
    referred_by: str | None


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """How a transfer passed on to this leg's far end goes: its NOTIFYs, or its
    refusal of the REFER (``final``)."""

    status: int
    reason: str
    final: bool


@dataclass(frozen=True, slots=True)
class Digit:
    digit: str
    method: str


CallEvent = Ring | Connect | Fail | Disconnect | Hold | Transfer | TransferProgress | Digit
