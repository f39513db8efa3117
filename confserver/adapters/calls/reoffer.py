"""Passing a hold or a resume on: a re-INVITE in an established call's dialog that
offers the session we already agreed with a new direction (RFC 3264 §8.4), for
either kind of call (one we answered, one we placed).

Only the direction (and where the peer now sends from) changes: the codec, the
ports and the SRTP keys stay as agreed. A 491 (the peer re-INVITEd at the same
moment, RFC 3261 §14.1) is retried after a random 2.1-4 s, at most three times,
with whatever direction is wanted by then.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Protocol

from confserver.adapters.sip.endpoint import Target
from confserver.sip.dialog import Dialog
from confserver.sip.message import Response
from confserver.sip.sdp import (
    Codec,
    Media,
    NegotiatedStream,
    SdpError,
    SessionDescription,
    answer_direction,
    answer_offer,
    audio_direction,
    keep_local_key,
    reoffered_key,
    with_direction,
)

log = logging.getLogger("switchboard.calls")
GLARE_RETRIES = 3


class ReofferingCall(Protocol):
    host: Any  # the SipApplication
    source: Target
    dialog: Dialog | None
    local_sdp: SessionDescription | None
    streams: list[NegotiatedStream]
    state: str


class Reoffer:
    """One call's outgoing hold/resume re-INVITEs, one at a time."""

    def __init__(self, call: ReofferingCall, rng: random.Random | None = None) -> None:
        self.call = call
        self.wanted: str | None = None
        self.pending = False
        self._glare = 0
        self._rng = rng or random.Random()

    def send(self, direction: str) -> None:
        """Offer ``direction`` (sendonly or inactive: hold; sendrecv: resume). A change
        asked for while one is under way goes out when it ends."""
        self.wanted = direction
        if not self.pending:
            self._send()

    def _send(self) -> None:
        call = self.call
        direction, self.wanted = self.wanted, None
        if direction is None or call.dialog is None or call.local_sdp is None \
                or call.state not in ("answered", "confirmed"):
            return
        if audio_direction(call.local_sdp) == direction:
            return  # already offered and agreed
        offer = with_direction(call.local_sdp, direction)
        host, port = call.host.via_address(call.source.transport)
        request = call.dialog.create_request("INVITE", host, port, call.source.transport,
                                             bytes(offer), "application/sdp")
        self.pending = True

        def on_response(response: Response) -> None:
            if response.status < 200:
                return
            self.pending = False
            if response.status < 300:
                self._glare = 0
                assert call.dialog is not None and request.cseq is not None
                ack = call.dialog.create_request("ACK", host, port, call.source.transport,
                                                 cseq=request.cseq.number)
                call.host.send_ack(call, ack)
                call.local_sdp = offer
                self._settle(response)
            elif response.status == 491 and self._glare < GLARE_RETRIES:
                self._glare += 1
                self.wanted = self.wanted or direction
                call.host.reactor.callLater(self._rng.uniform(2.1, 4.0), self._retry)
                return
            else:
                log.info("re-INVITE (%s) refused: %d %s", direction, response.status,
                         response.reason)
            if self.wanted is not None:
                self._send()

        def on_failure(reason: str) -> None:
            self.pending = False
            log.info("re-INVITE (%s) failed: %s", direction, reason)

        call.host.send_in_dialog(call, request, on_response, on_failure)

    def _retry(self) -> None:
        if not self.pending:
            self._send()

    def _settle(self, response: Response) -> None:
        """Apply the answer: our direction, and the peer's address unless it held with
        the old-style c=0.0.0.0."""
        call = self.call
        if not call.streams or not response.body:
            return
        try:
            answer = SessionDescription.parse(response.body)
        except SdpError as exc:
            log.info("bad SDP answering our re-INVITE: %s", exc)
            return
        stream = call.streams[0]
        stream.direction = answer_direction(audio_direction(answer))
        audio = next((m for m in answer.media if m.kind == "audio" and m.port), None)
        address = (audio.connection or answer.connection) if audio else None
        if audio is not None and address and address != "0.0.0.0":
            stream.remote_address, stream.remote_port = address, audio.port
        call.host.update_media(call)


def offers_codec(stream: NegotiatedStream, audio: Media) -> bool:
    """The agreed codec is among those ``audio`` offers."""
    names = {(n.lower(), r) for n, r, _c in audio.rtpmap().values()}
    return (stream.codec.name.lower(), stream.codec.clock_rate) in names


def answer_codec_change(call: ReofferingCall, offer: SessionDescription, address: str,
                        port: int, codecs: tuple[Codec, ...], srtp: str) -> SessionDescription:
    """Our answer to a re-offer that drops the agreed codec: negotiated afresh from
    ``codecs`` on the same port and session, with the SRTP key we already send with
    when the suite is unchanged. SdpError when nothing offered is acceptable."""
    assert call.local_sdp is not None
    previous_key = call.streams[0].local_crypto if call.streams else None
    origin = call.local_sdp.origin
    answer, streams = answer_offer(offer, address, [port], codecs=codecs,
                                   session_id=origin.session_id, version=origin.version + 1,
                                   srtp=srtp)
    if streams:
        keep_local_key(answer, streams[0], previous_key)
    call.local_sdp, call.streams = answer, streams
    return answer


def answer_reoffer(call: ReofferingCall, offer: SessionDescription) -> SessionDescription:
    """Our answer to the peer's re-offer in an established call: the agreed session
    with our direction mirroring theirs (their sendonly: our recvonly, a hold), and
    the peer's new address unless it held with c=0.0.0.0; a new SRTP key of the peer's
    is taken (ours stays). Raises SdpError when the offer drops the agreed codec (a
    codec change is not taken here) or an SRTP call's keys."""
    assert call.local_sdp is not None
    audio = next((m for m in offer.media if m.kind == "audio" and m.port), None)
    if call.streams and audio is not None:
        stream = call.streams[0]
        if not offers_codec(stream, audio):
            raise SdpError(f"the offer drops {stream.codec.name}, agreed for this call")
        # keys: ours stay (the answer repeats them); theirs may be new (a re-key)
        stream.remote_crypto = reoffered_key(stream, audio)
        stream.direction = answer_direction(offer.media_direction(audio))
        address = audio.connection or offer.connection
        if address and address != "0.0.0.0":
            stream.remote_address, stream.remote_port = address, audio.port
    elif audio is None and call.streams:
        call.streams[0].direction = "inactive"
    answer = with_direction(call.local_sdp, call.streams[0].direction if call.streams
                            else "inactive")
    call.local_sdp = answer
    return answer


__all__ = ["Reoffer", "answer_codec_change", "answer_reoffer", "offers_codec"]
