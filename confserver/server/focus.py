"""The conferencing focus on the server: INVITEs to a conference URI join a meeting.

The rules live in :mod:`confserver.focus.conference` and the audio path in
:mod:`confserver.mcu.bridge`; this module connects them to calls and to the
media clock. A conference exists in memory while someone is in it: the first
join loads the meeting from the database and adds the bridge to the media
clock, the last one to leave takes both away again, so an empty or idle
meeting costs nothing.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.exc import SQLAlchemyError

from confserver.focus.conference import IN_LOBBY, Conference, MeetingInfo
from confserver.mcu.bridge import AudioBridge
from confserver.media.codecs import CodecRegistry
from confserver.media.codecs.base import Pcm
from confserver.sip.message import Request
from confserver.sip.uri import SipUri
from confserver.storage.meetings import MeetingRecord

from .endpoint import ServerTxHandle
from .media import MediaEngine, MediaSession

if TYPE_CHECKING:
    from .calls import UasCall

log = logging.getLogger("switchboard.focus")


class Meetings(Protocol):
    def get(self, conference_id: str) -> MeetingRecord | None: ...


class Authenticator(Protocol):
    def authenticate(self, request: Request, now: float, header: str = "Authorization"
                     ) -> tuple[str | None, object | None]: ...


class ConferenceLeg:
    """One participant's media app: feeds the bridge, and is the bridge's output."""

    wants_inband_dtmf = False
    relays_audio = False
    sends_own_audio = True

    def __init__(self, runtime: ActiveConference, pid: str) -> None:
        self.runtime = runtime
        self.pid = pid
        self.session: MediaSession | None = None

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        if self.session is None:
            self.session = session
            codec = session.stream.codec
            self.runtime.bridge.add(self.pid, self, codec.name, codec.sample_rate)
        self.runtime.bridge.put(self.pid, pcm)
        return None

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        log.debug("conference %s: digit %s from %s", self.runtime.conference.meeting.conference_id,
                  digit, self.pid)

    def send_payload(self, payload: bytes) -> None:
        if self.session is not None:
            self.session.send_payload(payload)


@dataclass(slots=True)
class ActiveConference:
    conference: Conference
    bridge: AudioBridge
    calls: dict[str, UasCall] = field(default_factory=dict)

    def tick(self, now: float) -> None:
        report = self.bridge.tick()
        for pid, participant in self.conference.participants.items():
            speaking = pid in report.talking
            if participant.speaking != speaking:
                participant.speaking = speaking


class ConferenceCall:
    """The CallBehaviour of one participant's call."""

    def __init__(self, focus: Focus, runtime: ActiveConference, pid: str) -> None:
        self.focus = focus
        self.runtime = runtime
        self.pid = pid

    def on_invite(self, call: UasCall) -> None:
        self.runtime.calls[self.pid] = call
        call.answer()

    def media_app(self, call: UasCall) -> ConferenceLeg:
        conference = self.runtime.conference
        for admitted in conference.connected(self.pid):
            log.info("conference %s: %s admitted from the lobby",
                     conference.meeting.conference_id, admitted)
        return ConferenceLeg(self.runtime, self.pid)

    def on_end(self, call: UasCall) -> None:
        self.focus.left(self.runtime, self.pid)


class Focus:
    def __init__(self, domain: str, meetings: Meetings, auth: Authenticator,
                 media: MediaEngine | None, codecs: CodecRegistry,
                 clock: Callable[[], float]) -> None:
        self.domain = domain
        self.meetings = meetings
        self.auth = auth
        self.media = media
        self.codecs = codecs
        self.clock = clock
        self.active: dict[str, ActiveConference] = {}
        self._ids = itertools.count(1)

    def join(self, request: Request, tx: ServerTxHandle, conference_id: str
             ) -> ConferenceCall | None:
        """Admit an INVITE to a conference URI, or reply with the reason it cannot join."""
        try:
            record = self.meetings.get(conference_id)
        except SQLAlchemyError:
            tx.reply(500, "Server Internal Error (storage unavailable)", [("Retry-After", "30")])
            return None
        if record is None or record.state != "active":
            tx.reply(404, "Not Found (no such meeting)" if record is None
                     else "Not Found (the meeting has ended)")
            return None
        identity = self._identify(request, tx)
        if identity is False:
            return None  # challenged
        runtime = self.active.get(conference_id)
        if runtime is None:
            runtime = self._activate(record)
        admission = runtime.conference.admit(identity if isinstance(identity, str) else None)
        if admission.outcome == "refuse":
            tx.reply(admission.status, f"Forbidden ({admission.reason})"
                     if admission.status == 403 else f"Not Found ({admission.reason})")
            self._deactivate_if_empty(runtime)
            return None
        pid = f"p{next(self._ids)}"
        display = request.from_.display_name if request.from_ and request.from_.display_name else ""
        participant = runtime.conference.add(pid, identity if isinstance(identity, str) else None,
                                             display, admission, self.clock())
        log.info("conference %s: %s joins as %s%s", conference_id, participant.identity,
                 participant.role, " (lobby)" if participant.state == IN_LOBBY else "")
        return ConferenceCall(self, runtime, pid)

    def _identify(self, request: Request, tx: ServerTxHandle) -> str | bool | None:
        """The caller's authenticated AOR; None for an anonymous caller; False when
        a challenge was sent (a caller claiming one of our users must prove it)."""
        claimed = request.from_.uri if request.from_ else None
        if not isinstance(claimed, SipUri) or claimed.host.lower() != self.domain.lower():
            return None
        username, refusal = self.auth.authenticate(request, self.clock())
        if username is None:
            status = getattr(refusal, "status", 403)
            tx.reply(status, getattr(refusal, "reason", "Forbidden"),
                     list(getattr(refusal, "headers", [])))
            return False
        return f"sip:{username}@{self.domain}"

    def _activate(self, record: MeetingRecord) -> ActiveConference:
        info = MeetingInfo(record.conference_id, record.organizer, record.access,
                           frozenset(record.presenters), frozenset(record.attendees),
                           active=record.state == "active", domain=self.domain)
        conference = Conference(info)

        def muted(pid: object) -> bool:
            participant = conference.participants.get(str(pid))
            return participant is None or participant.muted

        def deaf(pid: object) -> bool:
            participant = conference.participants.get(str(pid))
            return participant is None or participant.state == IN_LOBBY

        runtime = ActiveConference(conference, AudioBridge(self.codecs, is_muted=muted,
                                                           is_deaf=deaf))
        self.active[record.conference_id] = runtime
        if self.media is not None:
            self.media.tickers.append(runtime.tick)
        log.info("conference %s active", record.conference_id)
        return runtime

    def left(self, runtime: ActiveConference, pid: str) -> None:
        runtime.conference.left(pid)
        runtime.bridge.remove(pid)
        runtime.calls.pop(pid, None)
        self._deactivate_if_empty(runtime)

    def _deactivate_if_empty(self, runtime: ActiveConference) -> None:
        if runtime.conference.present():
            return
        conference_id = runtime.conference.meeting.conference_id
        if self.active.get(conference_id) is runtime:
            del self.active[conference_id]
            if self.media is not None and runtime.tick in self.media.tickers:
                self.media.tickers.remove(runtime.tick)
            log.info("conference %s empty: released", conference_id)
