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
import secrets
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from twisted.internet import task

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import SipCall
from confserver.adapters.calls.outbound import OutboundCall
from confserver.adapters.calls.transfer import ReferRefused, read_refer
from confserver.adapters.focus.roster_events import (
    MAX_EXPIRES,
    MIN_EXPIRES,
    ROSTER_POLL_INTERVAL,
    RosterSubscriber,
    requested_expires,
)
from confserver.adapters.gate.outbound_gate import Placement
from confserver.adapters.media.session import MediaEngine, MediaSession
from confserver.adapters.media.udp import SocketFactory
from confserver.adapters.media.video import VideoSession
from confserver.adapters.media.wav import MediaFileError, WavRecorder
from confserver.adapters.sip.endpoint import ServerTxHandle
from confserver.calls.events import CallEvent, Connect, Fail
from confserver.focus import control, keypad
from confserver.focus.conference import IN_LOBBY, Admission, Conference, MeetingInfo, Outcome
from confserver.focus.conference_info import EVENT
from confserver.gate.destination import Refused
from confserver.mcu.bridge import AudioBridge
from confserver.mcu.video import VideoSwitch
from confserver.media.codecs import CodecRegistry
from confserver.media.codecs.base import Pcm
from confserver.media.rtp import RtpPacket
from confserver.media.tones import tone_sequence
from confserver.sip.address import NameAddr
from confserver.sip.dialog import DialogError
from confserver.sip.grammar import SipSyntaxError
from confserver.sip.message import Request
from confserver.sip.sdp import NegotiatedStream
from confserver.sip.uri import SipUri, parse_uri
from confserver.storage.errors import StorageError
from confserver.storage.meetings import MeetingRecord, conference_uri

if TYPE_CHECKING:
    from confserver.adapters.calls.application import SipApplication
    from confserver.adapters.calls.inbound import UasCall

log = logging.getLogger("switchboard.focus")


class Meetings(Protocol):
    def get(self, conference_id: str) -> MeetingRecord | None: ...

    def end(self, conference_id: str, now: float) -> MeetingRecord: ...

    def create(self, organizer: str, access: str, *, now: float, kind: str = "scheduled",
               subject: str = "") -> MeetingRecord: ...


def _tones(rate: int, *parts: tuple[float, float]) -> Pcm:
    """Feedback tones at -16 dBov with 5 ms ramps."""
    return tone_sequence(rate, parts, amplitude=5000.0, ramp_seconds=0.005)


# what a participant hears: entry/exit to everyone, command feedback to the one who pressed
ENTRY = ((600.0, 0.12), (900.0, 0.18))
EXIT = ((900.0, 0.12), (600.0, 0.18))
DONE = ((1400.0, 0.07), (0.0, 0.06), (1400.0, 0.07))
REFUSED = ((400.0, 0.3),)


class ParticipantVoice(Protocol):
    """What a phone participant hears and says in their own language (the dial-in
    attendant provides it): their recorded name, announcements, help, roll call,
    and spoken feedback for keypad commands. Audio comes at the rate asked for."""

    name: Pcm | None  # the recorded name, 16 kHz

    def joined(self, rate: int) -> Pcm | None: ...

    def left(self, rate: int) -> Pcm | None: ...

    def help(self, rate: int) -> Pcm | None: ...

    def roll_call(self, names: list[Pcm | None], rate: int) -> Pcm | None: ...

    def feedback(self, prompt_id: str, rate: int) -> Pcm | None: ...


class Authenticator(Protocol):
    def authenticate(self, request: Request, now: float, header: str = "Authorization",
                     source: str = "") -> tuple[str | None, object | None]: ...


class PasscodeGate(Protocol):
    """Who answers an anonymous SIP caller of a meeting that needs a passcode (the
    dial-in attendant, when its role is installed): it asks for the passcode as on
    the phone, and hands the caller to the meeting with ``transfer_in``."""

    def ask_passcode(self, request: Request, tx: ServerTxHandle,
                     conference_id: str) -> CallBehaviour | None:
        """The behaviour to answer with; None when it replied itself."""
        ...


class PayloadSink(Protocol):
    def __call__(self, payload: bytes, csrc: tuple[int, ...] = ()) -> None: ...


def _nowhere(payload: bytes, csrc: tuple[int, ...] = ()) -> None:
    """A listener's frames before its media session is known."""


class ConferenceLeg:
    """One participant's media app: feeds the bridge, and is the bridge's output."""

    wants_inband_dtmf = False
    relays_audio = False
    sends_own_audio = True

    def __init__(self, runtime: ActiveConference, pid: str) -> None:
        self.runtime = runtime
        self.pid = pid
        self.session: MediaSession | None = None
        self.keypad = keypad.KeypadReader()
        # the bridge's frames for this listener: nowhere until the session is known,
        # then straight to it (every listener, every tick: no forwarding call between)
        self.send_payload: PayloadSink = _nowhere

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        if self.session is None:
            self.session = session
            self.send_payload = session.send_payload
            codec = session.stream.codec
            native = codec.sample_rate
            self.runtime.bridge.add(self.pid, self, codec.name, native)
            if codec.sample_rate != native:
                pcm = None  # pulled before the codec took the mixing rate
            # the bridge needs only audio louder than its gate: quieter frames the
            # stream can recognise undecoded are handed over as known-quiet silence
            session.stream.quiet_below_dbov = self.runtime.bridge.gate_dbov
            log.debug("conference %s: %s audio in the mix (%s, decoded at %d Hz)",
                      self.runtime.conference.meeting.conference_id, self.pid, codec.name,
                      codec.sample_rate)
        self.runtime.bridge.put(self.pid, pcm, session.stream.last_quiet)
        return None

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        runtime = self.runtime
        key = self.keypad.feed(digit, runtime.focus.clock())
        if key is None:
            return
        result = keypad.run(runtime.conference, self.pid, key)
        log.info("conference %s: %s pressed *%s: %s", runtime.conference.meeting.conference_id,
                 self.pid, key, result.feedback if result.outcome.ok else result.outcome.reason)
        rate = runtime.bridge.rate
        voice = runtime.voices.get(self.pid)
        spoken: Pcm | None = None
        if voice is not None:
            if result.feedback == "help":
                spoken = voice.help(rate)
            elif result.feedback == "roll_call":
                others = [p for p in runtime.conference.present()
                          if p.pid != self.pid and p.state != IN_LOBBY]
                names = [v.name if (v := runtime.voices.get(p.pid)) is not None else None
                         for p in others]
                spoken = voice.roll_call(names, rate)
            else:
                spoken = voice.feedback(result.feedback, rate)
        runtime.bridge.play_to(self.pid, spoken if spoken is not None else _tones(
            rate, *(DONE if result.outcome.ok else REFUSED)))
        runtime.focus.carry_out(runtime, result.outcome)

    def source_id(self) -> int | None:
        remote = self.session.stream.remote if self.session is not None else None
        return remote.ssrc if remote is not None else None

    def set_pcm_rate(self, rate: int) -> bool:
        if self.session is None or not self.session.set_pcm_rate(rate):
            return False
        log.debug("conference %s: %s audio decoded at %d Hz (the mixing rate)",
                  self.runtime.conference.meeting.conference_id, self.pid, rate)
        return True


@dataclass(slots=True)
class ActiveConference:
    focus: Focus
    conference: Conference
    bridge: AudioBridge
    subject: str = ""
    adhoc: bool = False
    calls: dict[str, SipCall] = field(default_factory=dict)
    subscribers: list[RosterSubscriber] = field(default_factory=list)
    # looks for roster changes while anyone subscribes (not on the media clock,
    # which stops when no media flows)
    roster_poll: task.LoopingCall | None = None
    video: VideoSwitch = field(default_factory=VideoSwitch)
    video_sessions: dict[str, VideoSession] = field(default_factory=dict)
    voices: dict[str, ParticipantVoice] = field(default_factory=dict)  # phone participants
    on_leave: dict[str, Callable[[], None]] = field(default_factory=dict)  # who wants to know

    def announce_arrival(self, pid: str, arrived: bool) -> None:
        """Entry or exit: the recorded name when there is one, else the tones."""
        if not self.conference.announcements:
            return
        rate = self.bridge.rate
        voice = self.voices.get(pid)
        spoken = None
        if voice is not None and voice.name is not None:
            spoken = voice.joined(rate) if arrived else voice.left(rate)
        self.bridge.announce(spoken if spoken is not None
                             else _tones(rate, *(ENTRY if arrived else EXIT)))

    def ask_keyframes(self, senders: set[Hashable]) -> None:
        for sender in senders:
            session = self.video_sessions.get(str(sender))
            if session is not None:
                session.request_keyframe()

    def forward_video(self, sender: str, packet: RtpPacket) -> None:
        participants = self.conference.participants
        if sender in participants and participants[sender].state == IN_LOBBY:
            return  # not in the meeting yet: nobody sees them
        result = self.video.on_packet(sender, packet)
        for forward in result.forwards:
            receiver = str(forward.receiver)
            if receiver in participants and participants[receiver].state == IN_LOBBY:
                continue  # nor do they see anyone until they are let in
            session = self.video_sessions.get(receiver)
            if session is not None:
                session.send(forward.data)
        self.ask_keyframes(result.keyframe_requests)

    def dominant_changed(self, pid: Hashable | None) -> None:
        log.debug("conference %s: dominant speaker %s", self.conference.meeting.conference_id, pid)
        if pid is not None:
            self.ask_keyframes(self.video.set_speaker(pid))

    def poll_subscribers(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.poll()

    def tick(self, now: float) -> None:
        report = self.bridge.tick()
        for pid, participant in self.conference.participants.items():
            speaking = pid in report.talking
            if participant.speaking != speaking:
                participant.speaking = speaking


class ConferenceCall(CallBehaviour):
    """The CallBehaviour of one participant's call."""

    wants_video = True

    def __init__(self, focus: Focus, runtime: ActiveConference, pid: str,
                 caller: str | None = None) -> None:
        super().__init__()
        self.focus = focus
        self.runtime = runtime
        self.pid = pid
        self.caller = caller

    def video_app(self, call: SipCall, stream: NegotiatedStream, sockets: SocketFactory,
                  address: str) -> VideoSession:
        """Open this participant's video session and put it on the conference's switch."""
        runtime, pid = self.runtime, self.pid
        assert call.video_port is not None
        rtcp_port = stream.remote_port if stream.rtcp_mux else stream.remote_rtcp_port
        session = VideoSession(
            sockets, address, call.video_port, (stream.remote_address, stream.remote_port),
            (stream.remote_address, rtcp_port), stream.rtcp_mux,
            on_packet=lambda packet: runtime.forward_video(pid, packet),
            on_keyframe_request=lambda: runtime.ask_keyframes(
                {s for s in [runtime.video.keyframe_for(pid)] if s is not None}),
            ssrc=secrets.randbits(32), payload_type=stream.payload_type,
            clock=self.focus.clock,
            relearn_after=self.focus.media.relearn_after if self.focus.media else 5.0)
        runtime.video_sessions[pid] = session
        sends = stream.direction in ("sendrecv", "recvonly")      # they send, we receive
        receives = stream.direction in ("sendrecv", "sendonly")
        runtime.ask_keyframes(runtime.video.add(pid, stream.codec.name, stream.payload_type,
                                                sends=sends, receives=receives))
        log.info("conference %s: %s has %s video", runtime.conference.meeting.conference_id,
                 pid, stream.codec.name)
        return session

    def on_invite(self, call: UasCall) -> None:
        self.runtime.calls[self.pid] = call
        call.answer()

    def media_app(self, call: SipCall) -> ConferenceLeg:
        runtime = self.runtime
        conference = runtime.conference
        was_waiting = conference.participants[self.pid].state == IN_LOBBY
        admitted = conference.connected(self.pid)
        for pid in admitted:
            log.info("conference %s: %s admitted from the lobby",
                     conference.meeting.conference_id, pid)
        if not was_waiting:
            runtime.announce_arrival(self.pid, True)
        return ConferenceLeg(runtime, self.pid)

    def on_info(self, call: SipCall, request: Request, tx: ServerTxHandle) -> bool:
        """Conference control in the INFO body (C3P style); the answer rides in the 200."""
        try:
            command = control.parse_request(request.body)
        except control.ControlError as exc:
            tx.reply(400, f"Bad Request ({exc})")
            return True
        runtime = self.runtime
        outcome = control.apply(runtime.conference, self.pid, command)
        placement: Placement | None = None
        if outcome.ok and outcome.dial_out is not None:
            gated = self.focus.place(runtime, self.pid, outcome.dial_out, "dialOut")
            if isinstance(gated, Refused):
                # the outbound gate said no: the requester hears why, nobody is called
                tx.reply(403, f"Forbidden ({gated.reason})", [
                    ("Content-Type", control.CONTENT_TYPE)], body=control.response_body(
                        command.request_id, Outcome(False, gated.reason)))
                return True
            placement = gated
        log.info("conference %s: %s asks %s %s: %s", runtime.conference.meeting.conference_id,
                 self.pid, command.command, command.user or "",
                 "done" if outcome.ok else outcome.reason)
        tx.reply(200, "OK", [("Content-Type", control.CONTENT_TYPE)],
                 body=control.response_body(command.request_id, outcome))
        if placement is not None:
            self.focus.dial_out(runtime, placement)
        self.focus.carry_out(runtime, outcome)
        return True

    def on_refer(self, call: SipCall, request: Request, tx: ServerTxHandle) -> None:
        """REFER to the focus (RFC 4579 §5.5): bring the Refer-To party into the meeting,
        as dialOut does; progress goes back as sipfrag NOTIFYs (RFC 3515). A Refer-To
        with ``?Replaces=`` (the referrer's own call with that party) escalates that
        call in place: our INVITE carries the Replaces header (RFC 3891), and the
        party's phone swaps its call with the referrer for the meeting, unrung."""
        try:
            target = read_refer(request)
        except ReferRefused as refused:
            tx.reply(refused.status, refused.reason)
            return
        uri = str(target.uri)
        outcome = self.runtime.conference.invite_by_calling(self.pid, uri)
        if not outcome.ok:
            tx.reply(403, f"Forbidden ({outcome.reason})")
            return
        placement = self.focus.place(self.runtime, self.pid, uri, "refer")
        if isinstance(placement, Refused):
            tx.reply(403, f"Forbidden ({placement.reason})")
            return
        tx.reply(202, "Accepted")
        call.notify_refer("SIP/2.0 100 Trying", final=False)
        headers = [("Replaces", target.replaces)] if target.replaces else []
        if target.require:
            headers.append(("Require", ", ".join(target.require)))
        if target.referred_by:
            headers.append(("Referred-By", target.referred_by))
        self.focus.dial_out(self.runtime, placement, progress=call.notify_refer, headers=headers)

    def on_end(self, call: SipCall) -> None:
        self.focus.left(self.runtime, self.pid)


class DialedParticipant(ConferenceCall):
    """A participant the meeting called (dialOut, a REFER to the focus): it joins like
    a dial-in once answered; ``progress`` hears the outcome as a status line (for the
    REFER's NOTIFY)."""

    def __init__(self, focus: Focus, runtime: ActiveConference, pid: str, description: str,
                 progress: Callable[[str, bool], None] | None) -> None:
        super().__init__(focus, runtime, pid, "server")
        self.description = description
        self.progress = progress

    def on_event(self, call: SipCall, event: CallEvent) -> None:
        conference_id = self.runtime.conference.meeting.conference_id
        match event:
            case Connect():
                log.info("conference %s: %s answered", conference_id, self.description)
                if self.progress is not None:
                    self.progress("SIP/2.0 200 OK", True)
            case Fail(reason=reason):
                log.info("conference %s: calling %s failed: %s", conference_id,
                         self.description, reason)
                if self.progress is not None:
                    status = reason if reason[:3].isdigit() else "503 Service Unavailable"
                    self.progress(f"SIP/2.0 {status}", True)
                self.focus.left(self.runtime, self.pid)
            case _:
                pass


class Focus:
    def __init__(self, domain: str, meetings: Meetings, auth: Authenticator,
                 media: MediaEngine | None, codecs: CodecRegistry,
                 clock: Callable[[], float], recording_directory: str = "var/recordings") -> None:
        self.domain = domain
        self.meetings = meetings
        self.auth = auth
        self.media = media
        self.codecs = codecs
        self.clock = clock
        self.recording_directory = recording_directory
        self.app: SipApplication | None = None  # set by the application that routes to us
        # answers anonymous callers of meetings with a passcode (the dial-in role sets it)
        self.passcode_gate: PasscodeGate | None = None
        self.active: dict[str, ActiveConference] = {}
        self.subscriptions: dict[tuple[str, str, str], RosterSubscriber] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ roster events
    def subscribe(self, app: SipApplication, request: Request, tx: ServerTxHandle,
                  conference_id: str) -> None:
        events = [e.split(";")[0].strip().lower() for e in request.headers.values("Event")]
        if events != [EVENT]:
            tx.reply(489, "Bad Event", [("Allow-Events", EVENT)])
            return
        expires = requested_expires(request)
        if expires is None or (0 < expires < MIN_EXPIRES):
            tx.reply(423, "Interval Too Brief", [("Min-Expires", str(MIN_EXPIRES))])
            return
        identity = self._identify(request, tx)
        if identity is False:
            return
        if identity is None and not self._in_the_meeting(conference_id, request, tx):
            # the roster is for the organization's users and the meeting's own
            # participants: anyone else learns nothing, not even that it exists
            tx.reply(403, "Forbidden (sign in, or join the meeting first)")
            return
        try:
            record = self.meetings.get(conference_id)
        except StorageError:
            tx.reply(500, "Server Internal Error (storage unavailable)", [("Retry-After", "30")])
            return
        if record is None or record.state != "active":
            tx.reply(404, "Not Found (no such meeting)")
            return
        runtime = self.active.get(conference_id) or self._activate(record)
        admission = runtime.conference.admit(identity if isinstance(identity, str) else None)
        if admission.outcome == "refuse":
            tx.reply(admission.status, f"Forbidden ({admission.reason})")
            self._deactivate_if_empty(runtime)
            return
        try:
            subscriber = RosterSubscriber(runtime, app, request, tx, min(expires or 0, MAX_EXPIRES)
                                          or MAX_EXPIRES, record.subject,
                                          conference_uri(self.domain, conference_id))
        except DialogError as exc:
            tx.reply(exc.status, exc.reason)
            self._deactivate_if_empty(runtime)
            return
        if not subscriber.active:
            return
        runtime.subscribers.append(subscriber)
        self.subscriptions[subscriber.key] = subscriber
        if runtime.roster_poll is None:
            runtime.roster_poll = task.LoopingCall(runtime.poll_subscribers)
            runtime.roster_poll.clock = app.reactor
            runtime.roster_poll.start(ROSTER_POLL_INTERVAL, now=False)
        log.info("conference %s: roster subscription from %s", conference_id,
                 identity if isinstance(identity, str) else "anonymous")

    def _in_the_meeting(self, conference_id: str, request: Request,
                        tx: ServerTxHandle) -> bool:
        """The subscriber is a participant admitted to the meeting (not waiting in the
        lobby): its call comes from the same address and names the same From URI."""
        runtime = self.active.get(conference_id)
        caller = request.from_.uri if request.from_ is not None else None
        if runtime is None or not isinstance(caller, SipUri):
            return False
        for pid, call in runtime.calls.items():
            participant = runtime.conference.participants.get(pid)
            if participant is None or participant.state == IN_LOBBY or call.dialog is None \
                    or (call.source.host, call.source.port) != (tx.source.host, tx.source.port):
                continue
            try:
                remote = NameAddr.parse(call.dialog.remote_uri).uri
            except SipSyntaxError:
                continue
            if isinstance(remote, SipUri) and remote.aor() == caller.aor():
                return True
        return False

    def unsubscribed(self, runtime: ActiveConference, subscriber: RosterSubscriber) -> None:
        if subscriber in runtime.subscribers:
            runtime.subscribers.remove(subscriber)
        if not runtime.subscribers and runtime.roster_poll is not None:
            if runtime.roster_poll.running:
                runtime.roster_poll.stop()
            runtime.roster_poll = None
        self.subscriptions.pop(subscriber.key, None)
        self._deactivate_if_empty(runtime)

    def join(self, request: Request, tx: ServerTxHandle, conference_id: str
             ) -> CallBehaviour | None:
        """Admit an INVITE to a conference URI, or reply with the reason it cannot join.

        A caller who did not sign in learns nothing of the meeting from the answer: the
        passcode gate (the attendant) answers and asks for the passcode, whether the
        meeting exists, has ended, has a passcode or is for members only; a wrong
        passcode sounds the same for all of them (a leader may sign in with a PIN)."""
        identity = self._identify(request, tx)
        if identity is False:
            return None  # challenged
        try:
            record = self.meetings.get(conference_id)
        except StorageError:
            tx.reply(500, "Server Internal Error (storage unavailable)", [("Retry-After", "30")])
            return None
        if identity is None:
            open_to_anyone = record is not None and record.state == "active" \
                and record.access == "anonymous" and not record.has_passcode
            if open_to_anyone:
                assert record is not None
                return self._admit(request, tx, record, None)
            if self.passcode_gate is None:
                tx.reply(403, "Forbidden (sign in, or call an access number and key the "
                         "meeting's passcode)")
                return None
            return self.passcode_gate.ask_passcode(request, tx, conference_id)
        if record is None or record.state != "active":
            tx.reply(404, "Not Found (no such meeting)" if record is None
                     else "Not Found (the meeting has ended)")
            return None
        return self._admit(request, tx, record, identity if isinstance(identity, str) else None)

    def start_adhoc(self, request: Request, tx: ServerTxHandle) -> ConferenceCall | None:
        """An INVITE to the ad-hoc factory (``sip:adhoc@domain``): a signed-in user gets a
        new meeting of their own and joins it as organizer; others are brought in by
        REFER (or dialOut) in the same dialog. The meeting ends when the last one leaves."""
        identity = self._identify(request, tx)
        if identity is False:
            return None
        if not isinstance(identity, str):
            tx.reply(403, "Forbidden (only signed-in users can start a meeting)")
            return None
        try:
            record = self.meetings.create(identity, "closed", now=self.clock(), kind="adhoc",
                                          subject="Ad-hoc meeting")
        except (StorageError, ValueError) as exc:
            log.warning("cannot create an ad-hoc meeting for %s: %s", identity, exc)
            tx.reply(500, "Server Internal Error (cannot create a meeting)",
                     [("Retry-After", "30")])
            return None
        log.info("conference %s: ad-hoc meeting started by %s", record.conference_id, identity)
        return self._admit(request, tx, record, identity)

    def _admit(self, request: Request, tx: ServerTxHandle, record: MeetingRecord,
               identity: str | None) -> ConferenceCall | None:
        conference_id = record.conference_id
        runtime = self.active.get(conference_id)
        if runtime is None:
            runtime = self._activate(record)
        admission = runtime.conference.admit(identity)
        if admission.outcome == "refuse":
            tx.reply(admission.status, f"Forbidden ({admission.reason})"
                     if admission.status == 403 else f"Not Found ({admission.reason})")
            self._deactivate_if_empty(runtime)
            return None
        pid = f"p{next(self._ids)}"
        display = request.from_.display_name if request.from_ and request.from_.display_name else ""
        participant = runtime.conference.add(pid, identity, display, admission, self.clock())
        log.info("conference %s: %s joins as %s%s", conference_id, participant.identity,
                 participant.role, " (lobby)" if participant.state == IN_LOBBY else "")
        return ConferenceCall(self, runtime, pid, f"user:{identity}" if identity else None)

    # ------------------------------------------------------------ dial-in callers
    def admission_for(self, conference_id: str, identity: str | None) -> str:
        """What joining would do now: join, lobby, locked, refused or ended (the
        attendant asks before it records the caller's name)."""
        runtime = self.active.get(conference_id)
        if runtime is not None:
            conference = runtime.conference
        else:
            try:
                record = self.meetings.get(conference_id)
            except StorageError:
                return "refused"
            if record is None or record.state != "active":
                return "ended"
            conference = Conference(self._meeting_info(record))
        admission = conference.admit(identity)
        if admission.outcome != "refuse":
            return admission.outcome
        if conference.locked and admission.status == 403 and "locked" in admission.reason:
            return "locked"
        return "ended" if admission.status == 404 else "refused"

    def transfer_in(self, call: UasCall, conference_id: str, identity: str | None,
                    display_name: str, voice: ParticipantVoice | None,
                    on_leave: Callable[[], None] | None = None) -> str | None:
        """Move an answered call (the attendant's) into a meeting without touching its
        dialog or media session: the caller hears no gap. None when done, else why not.
        ``on_leave`` is called when the caller leaves the meeting."""
        try:
            record = self.meetings.get(conference_id)
        except StorageError:
            return "storage unavailable"
        if record is None or record.state != "active":
            return "the meeting has ended"
        runtime = self.active.get(conference_id) or self._activate(record)
        admission = runtime.conference.admit(identity)
        if admission.outcome == "refuse":
            self._deactivate_if_empty(runtime)
            return admission.reason
        pid = f"p{next(self._ids)}"
        participant = runtime.conference.add(pid, identity, display_name, admission,
                                             self.clock())
        if voice is not None:
            runtime.voices[pid] = voice
        if on_leave is not None:
            runtime.on_leave[pid] = on_leave
        log.info("conference %s: %s joins through the attendant as %s%s", conference_id,
                 participant.identity, participant.role,
                 " (lobby)" if participant.state == IN_LOBBY else "")
        behaviour = ConferenceCall(self, runtime, pid, call.behaviour.caller)
        runtime.calls[pid] = call
        call.behaviour = behaviour
        leg = behaviour.media_app(call)
        call.media_app = leg
        if call.media is not None:
            call.media.app = leg
        return None

    def _meeting_info(self, record: MeetingRecord) -> MeetingInfo:
        return MeetingInfo(record.conference_id, record.organizer, record.access,
                           frozenset(record.presenters), frozenset(record.attendees),
                           active=record.state == "active", domain=self.domain)

    def _identify(self, request: Request, tx: ServerTxHandle) -> str | bool | None:
        """The caller's authenticated AOR; None for an anonymous caller; False when
        a challenge was sent (a caller claiming one of our users must prove it)."""
        claimed = request.from_.uri if request.from_ else None
        if not isinstance(claimed, SipUri) or claimed.host.lower() != self.domain.lower():
            return None
        username, refusal = self.auth.authenticate(request, self.clock(),
                                                   source=tx.source.host)
        if username is None:
            status = getattr(refusal, "status", 403)
            tx.reply(status, getattr(refusal, "reason", "Forbidden"),
                     list(getattr(refusal, "headers", [])))
            return False
        return f"sip:{username}@{self.domain}"

    def _activate(self, record: MeetingRecord) -> ActiveConference:
        conference = Conference(self._meeting_info(record))

        def muted(pid: object) -> bool:
            participant = conference.participants.get(str(pid))
            return participant is None or participant.muted

        def deaf(pid: object) -> bool:
            participant = conference.participants.get(str(pid))
            return participant is None or participant.state == IN_LOBBY

        def deaf_among(pids: Iterable[Hashable]) -> set[Hashable]:
            present = conference.participants
            return {pid for pid in pids
                    if (p := present.get(str(pid))) is None or p.state == IN_LOBBY}

        runtime = ActiveConference(self, conference, AudioBridge(self.codecs, is_muted=muted,
                                                                 is_deaf=deaf,
                                                                 deaf_among=deaf_among),
                                   subject=record.subject, adhoc=record.kind == "adhoc")
        runtime.bridge.on_dominant = runtime.dominant_changed
        self.active[record.conference_id] = runtime
        if self.media is not None:
            self.media.tickers.append(runtime.tick)
        log.info("conference %s active", record.conference_id)
        return runtime

    def carry_out(self, runtime: ActiveConference, outcome: Outcome) -> None:
        """What a control command decided that needs the network, disk or database."""
        conference_id = runtime.conference.meeting.conference_id
        if outcome.video_pin is not None:
            target = outcome.video_pin or None
            try:
                runtime.ask_keyframes(runtime.video.pin(target))
            except ValueError as exc:
                log.info("conference %s: cannot pin video: %s", conference_id, exc)
        if outcome.recording is True:
            self._start_recording(runtime)
        elif outcome.recording is False or (outcome.ended and runtime.bridge.recorder):
            self._stop_recording(runtime)
        if outcome.ended:
            try:
                self.meetings.end(conference_id, self.clock())
            except (StorageError, ValueError) as exc:
                log.warning("conference %s: could not mark the meeting ended: %s",
                            conference_id, exc)
        if outcome.ended:
            for subscriber in list(runtime.subscribers):
                subscriber.terminate("noresource")
        reason = "meeting ended" if outcome.ended else "removed by a leader"
        for pid in outcome.ejected:
            call = runtime.calls.get(pid)
            if call is not None:
                call.hangup(reason)

    def place(self, runtime: ActiveConference, pid: str, uri_text: str, purpose: str
              ) -> Placement | Refused:
        """Ask the outbound gate whether participant ``pid`` may have the meeting call
        ``uri_text``, and how (confserver/gate/): as the user they signed in as."""
        if self.app is None:
            return Refused(503, "no SIP application to place calls")
        participant = runtime.conference.participants.get(pid)
        requester = participant.identity if participant is not None \
            and participant.authenticated else None
        try:
            uri = parse_uri(uri_text)
        except SipSyntaxError as exc:
            return Refused(400, f"not a URI: {exc}")
        return self.app.gate.place(requester, uri, f"{purpose} in meeting "
                                   f"{runtime.conference.meeting.conference_id}")

    def dial_out(self, runtime: ActiveConference, placement: Placement,
                 progress: Callable[[str, bool], None] | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        """Place the call the gate allowed into the meeting; it joins like a dial-in
        once answered. ``progress`` hears the final outcome as a status line (for a
        REFER's NOTIFY); ``headers`` go into the INVITE (Replaces, Require,
        Referred-By)."""
        conference = runtime.conference
        conference_id = conference.meeting.conference_id
        assert self.app is not None
        identity = placement.identity
        role = conference.invited_role(identity) or "attendee"
        pid = f"p{next(self._ids)}"
        conference.add(pid, identity, "", Admission("join", role=role), self.clock())
        behaviour = DialedParticipant(self, runtime, pid, placement.description, progress)
        call = OutboundCall(self.app, placement.uri, conference_uri(self.domain, conference_id),
                            behaviour, headers=headers, target=placement.target,
                            vouch=placement.vouch)
        runtime.calls[pid] = call
        log.info("conference %s: calling %s as %s", conference_id, placement.description, role)
        call.start()

    def _start_recording(self, runtime: ActiveConference) -> None:
        conference = runtime.conference
        conference_id = conference.meeting.conference_id
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        path = Path(self.recording_directory) / f"{conference_id}-{stamp}.wav"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            runtime.bridge.recorder = WavRecorder(path, runtime.bridge.rate)
        except (OSError, MediaFileError) as exc:
            log.error("conference %s: cannot record to %s: %s", conference_id, path, exc)
            conference.recording = False
            conference.version += 1
            return

        def failed(exc: Exception) -> None:
            log.error("conference %s: recording stopped: %s", conference_id, exc)
            conference.recording = False
            conference.version += 1

        runtime.bridge.on_recording_failed = failed
        log.info("conference %s: recording to %s", conference_id, path)

    def _stop_recording(self, runtime: ActiveConference) -> None:
        recorder, runtime.bridge.recorder = runtime.bridge.recorder, None
        runtime.conference.recording = False
        if recorder is not None:
            try:
                recorder.close()
            except OSError as exc:
                log.error("conference %s: closing the recording failed: %s",
                          runtime.conference.meeting.conference_id, exc)
            log.info("conference %s: recording stopped", runtime.conference.meeting.conference_id)

    def left(self, runtime: ActiveConference, pid: str) -> None:
        participant = runtime.conference.participants.get(pid)
        was_in = participant is not None and participant.state != IN_LOBBY
        runtime.conference.left(pid)
        runtime.bridge.remove(pid)
        runtime.calls.pop(pid, None)
        runtime.video_sessions.pop(pid, None)
        runtime.ask_keyframes(runtime.video.remove(pid))
        if was_in and not runtime.conference.ended:
            runtime.announce_arrival(pid, False)
        runtime.voices.pop(pid, None)
        leave = runtime.on_leave.pop(pid, None)
        if leave is not None:
            try:
                leave()
            except Exception:
                log.exception("conference %s: telling of %s's departure failed",
                              runtime.conference.meeting.conference_id, pid)
        self._deactivate_if_empty(runtime)

    def _deactivate_if_empty(self, runtime: ActiveConference) -> None:
        if runtime.conference.present() or runtime.subscribers:
            return
        conference_id = runtime.conference.meeting.conference_id
        if self.active.get(conference_id) is runtime:
            self._stop_recording(runtime)
            del self.active[conference_id]
            if runtime.adhoc and not runtime.conference.ended:
                try:  # an ad-hoc meeting lives as long as someone is in it
                    self.meetings.end(conference_id, self.clock())
                except (StorageError, ValueError) as exc:
                    log.warning("conference %s: could not end the ad-hoc meeting: %s",
                                conference_id, exc)
            if self.media is not None and runtime.tick in self.media.tickers:
                self.media.tickers.remove(runtime.tick)
            log.info("conference %s empty: released", conference_id)
