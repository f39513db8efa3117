"""The conferencing attendant on the server: answers calls to access numbers, runs
the pure call flow on the media clock, and hands the caller to the meeting.

Everything the flow asks for happens here: prompts are rendered at the call's
codec rate and played frame by frame, timers run on the injected reactor,
look-ups go to the database (slow hashes of passcodes and PINs in a thread so
the media clock never waits), and the caller's recorded name travels with
them into the meeting. The hand-over keeps the same dialog and RTP session:
only the session's app changes, so there is no gap for the caller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from twisted.internet import threads
from twisted.internet.interfaces import IDelayedCall

from confserver.adapters.calls.behaviour import CallBehaviour
from confserver.adapters.calls.call import SipCall
from confserver.adapters.calls.inbound import UasCall
from confserver.adapters.focus.focus import ParticipantVoice
from confserver.adapters.media.session import MediaSession
from confserver.adapters.sip.endpoint import ServerTxHandle
from confserver.adapters.storage.record_queue import RecordQueue
from confserver.limits.window import AttemptWindow
from confserver.media.codecs.base import Pcm
from confserver.media.resample import resample_whole
from confserver.recent import RecentLookups
from confserver.sip.assertion import verify
from confserver.sip.message import Request
from confserver.sip.uri import SipUri
from confserver.storage.access_numbers import AccessNumberDirectory, AccessNumberRecord
from confserver.storage.errors import StorageError
from confserver.storage.meetings import MeetingDirectory
from confserver.storage.pins import PinCheck, PinStore
from confserver.text import clean_text

from . import flow as f
from .cdr import (
    MAX_QUEUED_RECORDS,
    RECORD_DELAY,
    RECORD_RETRY,
    DialInCdr,
    DialInCdrStore,
    DialInEnd,
)
from .prompt_store import PromptStore
from .voice import NAME_RATE, PhoneVoice

log = logging.getLogger("switchboard.dialin")


class MeetingFocus(Protocol):
    def admission_for(self, conference_id: str, identity: str | None) -> str: ...

    def transfer_in(self, call: UasCall, conference_id: str, identity: str | None,
                    display_name: str, voice: ParticipantVoice | None,
                    on_leave: Callable[[], None] | None = None) -> str | None: ...


Blocking = Callable[[Callable[[], Any]], Any]  # runs a slow call, returns a Deferred


def trim_name(pcm: Pcm, rate: int) -> Pcm | None:
    """The spoken part of a name recording, or None when the caller said nothing."""
    if len(pcm) == 0:
        return None
    frame = rate // 50
    frames = pcm[: len(pcm) // frame * frame].astype(np.float64).reshape(-1, frame)
    level = np.sqrt(np.mean(frames ** 2, axis=1))
    loud = np.flatnonzero(level > 300.0)  # about -40 dBov
    if len(loud) == 0:
        return None
    start, end = max(0, loud[0] - 5) * frame, min(len(frames), loud[-1] + 10) * frame
    return pcm[start:end]


MAX_CHECKS = 8  # passcode and PIN checks (scrypt, 16 MiB each) under way at once


class Attendant:
    """The InviteRouter for access numbers, the focus's ``PasscodeGate`` for anonymous
    callers of a meeting's own address, and what every attendant call shares.

    Wrong passcodes and PINs count against the caller (``guesses``): their address
    and their caller ID, or only the caller ID of a call vouched for as mediation's
    from the PSTN (every such call comes from one address). A caller who has used up
    their failures is refused at once (403) and sent away mid-call."""

    def __init__(self, reactor: Any, access_numbers: AccessNumberDirectory,
                 meetings: MeetingDirectory, pins: PinStore, focus: MeetingFocus,
                 prompts: PromptStore, cdrs: DialInCdrStore,
                 blocking: Blocking | None = None, *, guesses: AttemptWindow | None = None,
                 secret: bytes = b"", sip_language: str = "en-US",
                 max_checks: int = MAX_CHECKS) -> None:
        self.reactor = reactor
        self.guesses = guesses if guesses is not None else AttemptWindow(10, 600.0)
        self._secret = secret
        self.sip_language = sip_language
        self.max_checks = max_checks
        self.checks_running = 0
        self.access_numbers = access_numbers
        self.meetings = meetings
        self.pins = pins
        self.focus = focus
        self.prompts = prompts
        self.cdrs = cdrs
        # written off the call path; kept while the database refuses (a full disk)
        self.records: RecordQueue[DialInCdr | DialInEnd] = RecordQueue(
            reactor, cdrs.write_all, "dial-in call records", delay=RECORD_DELAY,
            retry=RECORD_RETRY, limit=MAX_QUEUED_RECORDS)
        self.silence: dict[str, bytes] = {}  # 20 ms of silence per codec, encoded once
        self.blocking: Blocking = blocking or (
            lambda fn: threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn))
        self.calls: set[AttendantCall] = set()
        # every INVITE the server gets asks whether it is for an access number
        self.lookups = RecentLookups(reactor.seconds)

    def route(self, request: Request, tx: ServerTxHandle, uri: SipUri) -> AttendantCall | bool:
        aor = uri.aor()
        number = self.lookups.get(("uri", aor), lambda: self.access_numbers.by_uri(aor))
        user = uri.user_unescaped or ""
        if number is None and user.startswith("+"):
            number = self.lookups.get(("number", user), lambda: self.access_numbers.get(user))
        if number is None:
            return False
        keys, caller = self._caller_keys(request, tx)
        if self._refused_for_failures(tx, keys):
            return True
        return AttendantCall(self, number, _caller_id(request), keys, caller=caller)

    def ask_passcode(self, request: Request, tx: ServerTxHandle,
                     conference_id: str) -> AttendantCall | None:
        """An anonymous SIP caller of ``sip:conf-ID@domain``: the attendant answers and
        asks for the meeting's passcode (a leader may sign in with their PIN), as it
        would a phone caller who keyed that meeting ID. None when it replied itself
        (this caller has failed too often lately)."""
        keys, caller = self._caller_keys(request, tx)
        if self._refused_for_failures(tx, keys):
            return None
        conference = f"conf-{conference_id}"
        number = AccessNumberRecord(conference, f"sip:{conference}", "", "",
                                    self.sip_language, ())
        return AttendantCall(self, number, _caller_id(request), keys, caller=caller,
                             for_meeting=self.meeting_facts(conference_id) or f.MeetingFacts(
                                 conference_id, needs_passcode=True, anonymous_allowed=True))

    def meeting_facts(self, conference_id: str) -> f.MeetingFacts | None:
        """What the flow needs of an active meeting (None: no such meeting)."""
        record = self.meetings.get(conference_id)
        if record is None or record.state != "active":
            return None
        anonymous = record.access == "anonymous"
        return f.MeetingFacts(conference_id, anonymous and record.has_passcode, anonymous)

    def _caller_keys(self, request: Request, tx: ServerTxHandle
                     ) -> tuple[tuple[str, ...], str | None]:
        """Whom this call's failures count against, and who answers for the call: a
        PSTN caller mediation vouched for is counted by number and answered for by the
        server; anyone else by address and caller ID, and by nobody."""
        vouched = verify(self._secret, request, self.reactor.seconds())
        caller = _caller_id(request)[:64] or "anonymous"
        if vouched is not None and vouched.origin.startswith("gateway:"):
            return (f"caller:{vouched.caller or caller}",), "server"
        return (f"source:{tx.source.host}", f"caller:{caller}"), None

    def _refused_for_failures(self, tx: ServerTxHandle, keys: tuple[str, ...]) -> bool:
        now = self.reactor.seconds()
        wait = max(self.guesses.retry_after(key, now) for key in keys)
        if not wait:
            return False
        log.warning("dial-in refused: too many failed attempts from %s (%.0f s to wait)",
                    " ".join(keys), wait)
        tx.reply(403, "Forbidden (too many failed attempts; try again later)",
                 [("Retry-After", str(int(wait) + 1))])
        return True

    def count_failure(self, keys: tuple[str, ...], what: str) -> bool:
        """A wrong passcode or PIN from a caller: True when they have now used up
        their failures."""
        now = self.reactor.seconds()
        for key in keys:
            self.guesses.failed(key, now)
        log.info("dial-in: wrong %s from %s", what, " ".join(keys))
        return any(self.guesses.exhausted(key, now) for key in keys)


def _caller_id(request: Request) -> str:
    caller = request.from_
    if caller is None:
        return ""
    caller_uri = caller.uri
    return clean_text(caller.display_name or (
        caller_uri.user_unescaped or str(caller_uri) if isinstance(caller_uri, SipUri)
        else str(caller_uri)))


class AttendantCall(CallBehaviour):
    """One caller at the attendant: the call's behaviour and its media app."""

    wants_inband_dtmf = True
    relays_audio = False
    sends_own_audio = False

    def __init__(self, attendant: Attendant, number: AccessNumberRecord, caller_id: str,
                 keys: tuple[str, ...] = (), for_meeting: f.MeetingFacts | None = None,
                 caller: str | None = None) -> None:
        """``keys``: whom the caller's failures count against; ``for_meeting``: the
        meeting a SIP caller dialed (the flow starts at its passcode)."""
        self.attendant = attendant
        self.number = number
        self.caller_id = caller_id
        self.keys = keys
        self.for_meeting = for_meeting
        self.caller = caller  # see CallBehaviour
        self._throttled = False  # a failure just used up the caller's allowance
        self.call: UasCall | None = None
        self.flow: f.AttendantFlow | None = None
        self._timers: dict[str, IDelayedCall] = {}
        self._segments: tuple[f.Segment, ...] | None = None  # to render at the codec's rate
        self._audio: Pcm | None = None
        self._frames: tuple[bytes, ...] | None = None  # a Play encoded (G.711)
        self._position = 0
        self._recording: list[Pcm] | None = None
        self._rate = 8000
        self.name: Pcm | None = None
        self._cdr_written = False
        self._after_audio: Callable[[], None] | None = None
        self.handed_over = False

    # ------------------------------------------------------------ CallBehaviour
    def on_invite(self, call: UasCall) -> None:
        self.call = call
        call.answer()

    def media_app(self, call: SipCall) -> AttendantCall:
        if isinstance(call, UasCall):
            self.call = call
        if self.flow is None:
            now = self.attendant.reactor.seconds()
            self.flow = f.AttendantFlow(self.number.languages, now,
                                        record_name=self.for_meeting is None)
            self.attendant.calls.add(self)
            log.info("dial-in %s: call from %s", self.number.number, self.caller_id or "unknown")
            self._run(self.flow.start_for_meeting(self.for_meeting, now)
                      if self.for_meeting is not None else self.flow.start(now))
        return self

    def on_end(self, call: SipCall) -> None:
        self.attendant.calls.discard(self)
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        if self.flow is not None and not self.handed_over:
            self.flow.hung_up(self.attendant.reactor.seconds())
            self._write_cdr()

    # ------------------------------------------------------------ MediaApp
    @property
    def hears_caller(self) -> bool:
        """The caller's audio is needed only while their name is recorded (the in-band
        DTMF detector gets it either way)."""
        return self._recording is not None

    def on_frame(self, session: MediaSession, pcm: Pcm | None, now: float) -> Pcm | None:
        codec = session.stream.codec
        rate = codec.sample_rate
        self._rate = rate
        if self._recording is not None and pcm is not None:
            self._recording.append(pcm)
        if getattr(codec, "decode_table", None) is not None:
            self._send_encoded(session, now)
            return None
        if self._segments is not None:
            self._audio = self.attendant.prompts.render(self._segments, rate)
            self._segments = None
            self._position = 0
        n = session.stream.frame_samples
        if self._audio is None:
            return np.zeros(n, dtype=np.int16)
        frame = self._audio[self._position:self._position + n]
        self._position += n
        if len(frame) < n:
            frame = np.concatenate([frame, np.zeros(n - len(frame), dtype=np.int16)])
        if self._position >= len(self._audio):
            self._audio = None
            self._prompt_finished(now)
        return frame

    def _send_encoded(self, session: MediaSession, now: float) -> None:
        """G.711 is stateless: prompts go out as payloads encoded once for every call."""
        self.sends_own_audio = True
        codec = session.stream.codec
        n = session.stream.frame_samples
        if self._segments is not None:
            self._frames = self.attendant.prompts.encoded(self._segments, codec.name,
                                                          codec.encode, codec.sample_rate, n)
            self._segments = None
            self._position = 0
        if self._frames is None:
            silence = self.attendant.silence.get(codec.name)
            if silence is None:
                silence = self.attendant.silence[codec.name] = codec.encode(
                    np.zeros(n, dtype=np.int16))
            session.send_payload(silence)
            return None
        session.send_payload(self._frames[self._position])
        self._position += 1
        if self._position >= len(self._frames):
            self._frames = None
            self._prompt_finished(now)
        return None

    def on_digit(self, session: MediaSession | None, digit: str, method: str) -> None:
        if self.flow is None or self.handed_over:
            return
        log.debug("dial-in %s: digit %s (%s)", self.number.number, digit, method)
        self._run(self.flow.digit(digit, self.attendant.reactor.seconds()))

    # ------------------------------------------------------------ running the flow
    def _prompt_finished(self, now: float) -> None:
        after, self._after_audio = self._after_audio, None
        if after is not None:
            after()
        elif self.flow is not None:
            self._run(self.flow.prompt_done(now))

    def _run(self, actions: list[f.Action]) -> None:
        for action in actions:
            try:
                self._do(action)
            except StorageError as exc:
                log.error("dial-in %s: storage unavailable: %s", self.number.number, exc)
                self._say_goodbye(("too_many_attempts",), "storage unavailable")
                return
        if self._throttled and self.flow is not None:
            # after the failure's own actions, which would ask again
            self._throttled = False
            self._run(self.flow.throttled(self._now()))

    def _do(self, action: f.Action) -> None:
        assert self.flow is not None
        flow = self.flow
        now = self.attendant.reactor.seconds()
        match action:
            case f.Play(segments):
                self._segments = segments
                self._audio = None
                self._frames = None
            case f.StopPlayback():
                self._segments = None
                self._audio = None
                self._frames = None
            case f.SetTimer(name, delay):
                self._cancel(name)
                self._timers[name] = self.attendant.reactor.callLater(delay, self._fire, name)
            case f.CancelTimer(name):
                self._cancel(name)
            case f.LookUpMeeting(conference_id):
                self._run(flow.meeting_found(self.attendant.meeting_facts(conference_id), now))
            case f.CountFailure(what):
                if self.attendant.count_failure(self.keys, what):
                    self._throttled = True
            case f.CheckPasscode(conference_id, passcode):
                self._slowly(lambda: self.attendant.meetings.check_passcode(conference_id,
                                                                            passcode),
                             lambda ok: flow.passcode_checked(bool(ok), self._now()))
            case f.CheckPin(number, pin):
                def checked(result: PinCheck) -> list[f.Action]:
                    log.info("dial-in %s: PIN sign-in for %s: %s", self.number.number,
                             result.aor or number, result.outcome)
                    outcome: f.PinOutcome = result.outcome  # type: ignore[assignment]
                    return flow.pin_checked(outcome, result.aor, self._now())
                origin = self.keys[0] if self.keys else ""
                self._slowly(lambda: self.attendant.pins.verify(number, pin, self._now(),
                                                                origin), checked)
            case f.CheckAdmission(conference_id, identity):
                outcome = self.attendant.focus.admission_for(conference_id, identity)
                self._run(flow.admission(outcome, now))  # type: ignore[arg-type]
            case f.StartRecording():
                self._recording = []
            case f.StopRecording():
                recorded, self._recording = self._recording or [], None
                if recorded:
                    trimmed = trim_name(np.concatenate(recorded), self._rate)
                    self.name = None if trimmed is None else \
                        resample_whole(trimmed, self._rate, NAME_RATE)
            case f.Join(conference_id, identity, language):
                self._join(conference_id, identity, language)
            case f.Hangup(outcome):
                log.info("dial-in %s: goodbye (%s)", self.number.number, outcome)
                self._write_cdr()
                if self.call is not None:
                    self.call.hangup(f"attendant: {outcome}")

    def _now(self) -> float:
        return float(self.attendant.reactor.seconds())

    def _slowly(self, work: Callable[[], Any], then: Callable[[Any], list[f.Action]]) -> None:
        """Run a slow check (scrypt) off the reactor thread, then feed the flow. At most
        ``max_checks`` run at once: past that the caller is asked to call again later
        (a queue without a bound would let a flood of callers hold every thread and
        gigabytes of scrypt memory)."""
        attendant = self.attendant
        if attendant.checks_running >= attendant.max_checks:
            log.warning("dial-in %s: %d checks under way already: caller asked to call "
                        "again later", self.number.number, attendant.checks_running)
            assert self.flow is not None
            self._run(self.flow.busy(self._now()))
            return
        attendant.checks_running += 1

        def done(result: Any) -> None:
            attendant.checks_running -= 1
            if self.call is None or self.call.state == "ended":
                return
            self._run(then(result))

        def failed(failure: Any) -> None:
            attendant.checks_running -= 1
            log.error("dial-in %s: check failed: %s", self.number.number,
                      failure.getErrorMessage())
            if self.call is not None and self.call.state != "ended":
                self._say_goodbye(("too_many_attempts",), "check failed")

        deferred = attendant.blocking(work)
        deferred.addCallbacks(done, failed)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        if self.flow is not None and not self.handed_over:
            self._run(self.flow.timeout(name, self._now()))

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _say_goodbye(self, prompts: tuple[str, ...], reason: str) -> None:
        assert self.flow is not None
        language = self.flow.language
        self.flow.state = "ending"
        self._segments = tuple(f.Segment(p, language) for p in (*prompts, "goodbye"))
        self._audio = None
        self._frames = None
        self._after_audio = lambda: self.call.hangup(f"attendant: {reason}") \
            if self.call is not None else None

    def _join(self, conference_id: str, identity: str | None, language: str) -> None:
        assert self.call is not None and self.flow is not None
        display = self.caller_id or "Phone caller"
        voice = PhoneVoice(self.attendant.prompts, language, self.name)
        # on record from the join: a process killed mid-meeting keeps the call, and the
        # end of the call completes the row
        key = str(uuid.uuid4())
        self._write_cdr(key)
        records, reactor = self.attendant.records, self.attendant.reactor
        refusal = self.attendant.focus.transfer_in(
            self.call, conference_id, identity, display, voice,
            on_leave=lambda: records.add(DialInEnd(key, float(reactor.seconds()))))
        if refusal is not None:
            log.info("dial-in %s: meeting %s refused the caller: %s", self.number.number,
                     conference_id, refusal)
            self._say_goodbye(("not_allowed",), refusal)
            return
        self.handed_over = True
        self.attendant.calls.discard(self)
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        log.info("dial-in %s: caller joined meeting %s in %s after %.1f s", self.number.number,
                 conference_id, language, self.flow.record.joined_after or 0.0)

    def _write_cdr(self, record_key: str | None = None) -> None:
        if self._cdr_written or self.flow is None:
            return
        self._cdr_written = True
        call_id = self.call.dialog.call_id if self.call is not None and self.call.dialog else ""
        self.attendant.records.add(DialInCdr.of_call(call_id, self.number.number,
                                                     self.caller_id, self.flow.record,
                                                     self._now(), record_key))
