"""The conferencing attendant's call flow, as a table-driven state machine with no I/O.

The flow takes events (a digit, the end of a prompt, a timer, the answer to
a look-up) with the time they happened and returns actions for the adapter to
carry out: play prompts, set or cancel timers, look things up, record the
caller's name, hand the call to the meeting, or say goodbye and hang up.

Each thing the caller keys in is an *entry*; the table ``ENTRIES`` says how
each one is prompted, how long it may be, and which handler takes it when it
is complete. Every entry gets three tries, ``*`` starts it over, ``#`` ends
it, digits interrupt prompts (barge-in), and two timers watch the keypad:
one for the first digit after the prompt ends and one between digits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

FIRST_DIGIT_TIMEOUT = 6.0   # s after the prompt ends
INTER_DIGIT_TIMEOUT = 4.0   # s between digits; the entry then counts as finished
NAME_SECONDS = 4.0          # longest name recording
TRIES = 3                   # per entry, then a polite goodbye

# CDR outcomes
JOINED, LOBBY = "joined", "lobby"
WRONG_ID, WRONG_PASSCODE, WRONG_PIN = "wrong-id", "wrong-passcode", "wrong-pin"
PIN_LOCKED, PIN_EXPIRED = "pin-locked", "pin-expired"
REFUSED, NO_INPUT, HUNG_UP = "refused", "no-input", "hung-up"
THROTTLED = "throttled"  # this caller (or their address) failed too often lately
BUSY = "busy"            # too many checks under way: try again later


# ------------------------------------------------------------------ actions
@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a prompt: a prompt id in a language; ``value`` fills its
    placeholder (the digits to read back, the option digit)."""

    prompt: str
    language: str
    value: str = ""


BEEP = "@beep"  # the tone before the caller says their name


@dataclass(frozen=True, slots=True)
class Play:
    segments: tuple[Segment, ...]
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class StopPlayback:
    pass


@dataclass(frozen=True, slots=True)
class SetTimer:
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class LookUpMeeting:
    conference_id: str


@dataclass(frozen=True, slots=True)
class CheckPasscode:
    conference_id: str
    passcode: str


@dataclass(frozen=True, slots=True)
class CheckPin:
    number: str
    pin: str


@dataclass(frozen=True, slots=True)
class CheckAdmission:
    conference_id: str
    identity: str | None


@dataclass(frozen=True, slots=True)
class StartRecording:
    seconds: float


@dataclass(frozen=True, slots=True)
class StopRecording:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    conference_id: str
    identity: str | None
    language: str


@dataclass(frozen=True, slots=True)
class Hangup:
    outcome: str


@dataclass(frozen=True, slots=True)
class CountFailure:
    """A guess went wrong (a passcode, or a PIN): the adapter counts it against the
    caller's address and caller ID, and reports ``throttled`` when they have failed
    too often lately."""

    what: str


Action = (Play | StopPlayback | SetTimer | CancelTimer | LookUpMeeting | CheckPasscode
          | CheckPin | CheckAdmission | StartRecording | StopRecording | Join | Hangup
          | CountFailure)


# ------------------------------------------------------------------ inputs from look-ups
@dataclass(frozen=True, slots=True)
class MeetingFacts:
    conference_id: str
    needs_passcode: bool     # anonymous callers may join with the passcode
    anonymous_allowed: bool  # otherwise phone callers must sign in with their PIN


PinOutcome = Literal["ok", "wrong", "locked", "expired", "no-pin"]
AdmissionOutcome = Literal["join", "lobby", "locked", "refused", "ended"]


@dataclass
class CallRecord:
    """What the call detail record needs, filled in as the call goes."""

    language: str
    answered_at: float
    conference_id: str | None = None
    identity: str | None = None
    outcome: str = ""
    joined_after: float | None = None


# ------------------------------------------------------------------ the entries
@dataclass(frozen=True, slots=True)
class EntrySpec:
    prompts: tuple[str, ...]       # what asks for it
    max_length: int
    single_key: bool = False       # one key is the whole entry (the language menu)
    star_for_leader: bool = False  # * as the first key means "I am the leader"
    on_no_input_menu: bool = False # the first silence offers the other languages
    failure: str = NO_INPUT        # the CDR outcome after three failed tries


ENTRIES: dict[str, EntrySpec] = {
    "meeting_id": EntrySpec(("enter_meeting_id",), 16, on_no_input_menu=True,
                            failure=WRONG_ID),
    "language": EntrySpec((), 1, single_key=True),
    "passcode": EntrySpec(("enter_passcode", "leader_hint"), 24, star_for_leader=True,
                          failure=WRONG_PASSCODE),
    "extension": EntrySpec(("enter_extension",), 15, failure=WRONG_PIN),
    "pin": EntrySpec(("enter_pin",), 24, failure=WRONG_PIN),
}


@dataclass
class _Entry:
    name: str
    spec: EntrySpec
    tries: int = 0
    digits: str = ""


class AttendantFlow:
    """One caller's way through the attendant. Every method returns the actions to take.

    ``record_name``: the caller says their name before joining (phone callers; a SIP
    caller asked for a passcode has a display name already)."""

    def __init__(self, languages: tuple[str, ...], now: float, record_name: bool = True) -> None:
        if not languages:
            raise ValueError("an access number needs at least one language")
        self.record_name = record_name
        self.languages = languages
        self.language = languages[0]
        self.record = CallRecord(languages[0], now)
        self.state = "new"
        self.playing = False
        self.meeting: MeetingFacts | None = None
        self.identity: str | None = None
        self._entry: _Entry | None = None
        self._menu_offered = False
        self._number = ""       # the leader's extension or phone number, until the PIN
        self._pin_tries = 0
        self._pin_locked = False  # a PIN check found the PIN locked (told as a wrong one)
        self._lobby = False
        self._looked_up = ""    # the meeting ID being looked up, read back when unknown
        self._after_prompt: Callable[[float], list[Action]] | None = None
        self._handlers: dict[str, Callable[[str, float], list[Action]]] = {
            "meeting_id": self._got_meeting_id,
            "language": self._got_language,
            "passcode": self._got_passcode,
            "extension": self._got_extension,
            "pin": self._got_pin,
        }

    # ------------------------------------------------------------ helpers
    def _say(self, *prompts: str, value: str = "", barge_in: bool = True) -> Play:
        self.playing = True
        return Play(tuple(Segment(p, self.language, value if i == 0 else "")
                          for i, p in enumerate(prompts)), barge_in)

    def _ask(self, name: str, *before: str, now: float) -> list[Action]:
        """Start (or restart) an entry: say what comes before, then its prompts."""
        spec = ENTRIES[name]
        entry = self._entry if self._entry is not None and self._entry.name == name else None
        self._entry = entry or _Entry(name, spec)
        self._entry.digits = ""
        self.state = "collecting"
        return [CancelTimer("inter"), CancelTimer("first"), self._say(*before, *spec.prompts)]

    def _fail(self, *say: str, now: float, value: str = "") -> list[Action]:
        """A try of the current entry failed: ask again, or give up after three."""
        entry = self._entry
        assert entry is not None
        entry.tries += 1
        if entry.tries >= TRIES:
            return self._goodbye(entry.spec.failure, "too_many_attempts")
        actions: list[Action] = [CancelTimer("inter"), CancelTimer("first")]
        entry.digits = ""
        self.state = "collecting"
        actions.append(self._say(*say, "try_again", *entry.spec.prompts, value=value))
        return actions

    def _goodbye(self, outcome: str, *say: str) -> list[Action]:
        self._entry = None
        self.state = "ending"
        self.record.outcome = outcome
        self.playing = True
        self._after_prompt = lambda _now: self._hang_up(outcome)
        return [CancelTimer("inter"), CancelTimer("first"),
                Play(tuple(Segment(p, self.language) for p in (*say, "goodbye")), False)]

    def _hang_up(self, outcome: str) -> list[Action]:
        self.state = "done"
        return [Hangup(outcome)]

    # ------------------------------------------------------------ events
    def start(self, now: float) -> list[Action]:
        """The call is answered: welcome, then ask for the meeting ID."""
        return self._ask("meeting_id", "welcome", now=now)

    def start_for_meeting(self, facts: MeetingFacts, now: float) -> list[Action]:
        """A caller who dialed a meeting's own address without proving who they are:
        the meeting is known, so its passcode (or a leader's sign-in) comes first."""
        self.state = "waiting"
        return self.meeting_found(facts, now)

    def throttled(self, now: float) -> list[Action]:
        """This caller (or their address) failed too often lately: goodbye, now."""
        return self._goodbye(THROTTLED, "too_many_attempts")

    def busy(self, now: float) -> list[Action]:
        """A check (passcode, PIN) cannot start now: too many are under way."""
        return self._goodbye(BUSY, "busy")

    def prompt_done(self, now: float) -> list[Action]:
        """The prompt we asked for has finished playing (not called after StopPlayback)."""
        self.playing = False
        if self._after_prompt is not None:
            then, self._after_prompt = self._after_prompt, None
            return then(now)
        if self.state == "collecting" and self._entry is not None and not self._entry.digits:
            return [SetTimer("first", FIRST_DIGIT_TIMEOUT)]
        return []

    def digit(self, key: str, now: float) -> list[Action]:
        actions: list[Action] = []
        if self.state == "recording":
            if key == "#":
                return self._name_done(now)
            return []
        entry = self._entry
        if self.state != "collecting" or entry is None:
            return []  # nothing is being asked: keys are ignored
        if self.playing:
            self.playing = False
            actions.append(StopPlayback())  # barge-in
        actions.append(CancelTimer("first"))
        spec = entry.spec
        if spec.single_key:
            return actions + self._handlers[entry.name](key, now)
        if key == "*":
            if spec.star_for_leader and not entry.digits:
                return actions + self._leader(now)
            entry.digits = ""  # start this entry over
            return [*actions, CancelTimer("inter"), SetTimer("first", FIRST_DIGIT_TIMEOUT)]
        if key == "#":
            return [*actions, CancelTimer("inter"), *self._submit(now)]
        if not key.isdigit():
            return actions  # A-D: not used
        entry.digits += key
        if len(entry.digits) > spec.max_length:
            return [*actions, CancelTimer("inter"), *self._submit(now)]
        return [*actions, SetTimer("inter", INTER_DIGIT_TIMEOUT)]

    def timeout(self, name: str, now: float) -> list[Action]:
        entry = self._entry
        if name == "record" and self.state == "recording":
            return self._name_done(now)
        if self.state != "collecting" or entry is None:
            return []
        if name == "inter" and entry.digits:
            return self._submit(now)
        if name == "first":
            if entry.spec.on_no_input_menu and not self._menu_offered and len(self.languages) > 1:
                return self._language_menu(now)
            return self._fail("no_input", now=now)
        return []

    def hung_up(self, now: float) -> list[Action]:
        """The caller hung up before the flow ended."""
        if self.state not in ("done", "joined"):
            if not self.record.outcome or self.state != "ending":
                self.record.outcome = HUNG_UP
            self.state = "done"
        return [CancelTimer("inter"), CancelTimer("first"), CancelTimer("record")]

    def _submit(self, now: float) -> list[Action]:
        entry = self._entry
        assert entry is not None
        digits, entry.digits = entry.digits, ""
        self.state = "waiting"
        return self._handlers[entry.name](digits, now)

    # ------------------------------------------------------------ languages
    def _language_menu(self, now: float) -> list[Action]:
        self._menu_offered = True
        self._entry = _Entry("language", ENTRIES["language"])
        self.state = "collecting"
        self.playing = True
        options = tuple(Segment("language_option", lang, str(i + 1))
                        for i, lang in enumerate(self.languages))
        return [CancelTimer("inter"), Play(options)]

    def _got_language(self, key: str, now: float) -> list[Action]:
        if key.isdigit() and 1 <= int(key) <= len(self.languages):
            self.language = self.record.language = self.languages[int(key) - 1]
            self._entry = None
            return self._ask("meeting_id", now=now)
        entry = self._entry
        assert entry is not None
        entry.tries += 1
        if entry.tries >= TRIES:  # no choice made: carry on in the primary language
            self._entry = None
            return self._ask("meeting_id", now=now)
        return self._language_menu(now)

    # ------------------------------------------------------------ meeting ID, passcode
    def _got_meeting_id(self, digits: str, now: float) -> list[Action]:
        if len(digits) < 4 or len(digits) > ENTRIES["meeting_id"].max_length:
            return self._fail("meeting_not_found", value=digits, now=now)
        self.state = "waiting"
        self._looked_up = digits
        return [LookUpMeeting(digits)]

    def meeting_found(self, facts: MeetingFacts | None, now: float) -> list[Action]:
        """Answer to LookUpMeeting: None when there is no such (active) meeting. A caller
        must not learn which IDs exist: an unknown one is asked for its passcode like
        any meeting that has one, and no passcode is ever right for it."""
        if facts is None:
            facts = MeetingFacts(self._looked_up, needs_passcode=True, anonymous_allowed=True)
        self.meeting = facts
        self.record.conference_id = facts.conference_id
        self._entry = None
        if facts.needs_passcode:
            return self._ask("passcode", now=now)
        # phone callers have no identity of their own: members sign in with their PIN
        return self._ask("extension", "sign_in_required", now=now)

    def _got_passcode(self, digits: str, now: float) -> list[Action]:
        assert self.meeting is not None
        if not digits:
            return self._fail("wrong_passcode", now=now)
        return [CheckPasscode(self.meeting.conference_id, digits)]

    def passcode_checked(self, ok: bool, now: float) -> list[Action]:
        if not ok:
            return [CountFailure("passcode"), *self._fail("wrong_passcode", now=now)]
        assert self.meeting is not None
        self._entry = None
        self.state = "waiting"
        return [CheckAdmission(self.meeting.conference_id, None)]

    # ------------------------------------------------------------ leaders
    def _leader(self, now: float) -> list[Action]:
        self._entry = None
        return self._ask("extension", now=now)

    def _got_extension(self, digits: str, now: float) -> list[Action]:
        if not digits:
            return self._fail("no_input", now=now)
        self._number = digits
        entry = self._entry
        tries = entry.tries if entry is not None else 0
        self._entry = None
        actions = self._ask("pin", now=now)
        assert self._entry is not None
        self._entry.tries = tries
        return actions

    def _got_pin(self, digits: str, now: float) -> list[Action]:
        if not digits:
            return self._wrong_pin(now)
        return [CheckPin(self._number, digits)]

    def _wrong_pin(self, now: float) -> list[Action]:
        self._pin_tries += 1
        if self._pin_tries >= TRIES:
            return self._goodbye(PIN_LOCKED if self._pin_locked else WRONG_PIN, "wrong_pin",
                                 "too_many_attempts")
        self._entry = None
        actions = self._ask("extension", "wrong_pin", "try_again", now=now)
        return actions

    def pin_checked(self, outcome: PinOutcome, identity: str | None, now: float
                    ) -> list[Action]:
        if outcome == "locked":
            # told exactly as a wrong PIN: a caller must not learn that an extension
            # exists, nor that guessing its PIN has locked it
            self._pin_locked = True
            return [CountFailure("pin"), *self._wrong_pin(now)]
        if outcome == "expired":
            return self._goodbye(PIN_EXPIRED, "pin_expired")
        if outcome != "ok" or identity is None:
            return [CountFailure("pin"), *self._wrong_pin(now)]
        assert self.meeting is not None
        self.identity = self.record.identity = identity
        self._entry = None
        self.state = "waiting"
        return [CheckAdmission(self.meeting.conference_id, identity)]

    # ------------------------------------------------------------ joining
    def admission(self, outcome: AdmissionOutcome, now: float) -> list[Action]:
        """Answer to CheckAdmission: what the meeting would do with this caller."""
        if outcome == "locked":
            return self._goodbye(REFUSED, "meeting_locked")
        if outcome in ("refused", "ended"):
            return self._goodbye(REFUSED, "not_allowed")
        self._lobby = outcome == "lobby"
        if not self.record_name:
            return self._joining()
        self.state = "naming"
        self._after_prompt = self._record_name
        return [self._say("say_name", BEEP, barge_in=False)]

    def _record_name(self, now: float) -> list[Action]:
        self.state = "recording"
        return [StartRecording(NAME_SECONDS), SetTimer("record", NAME_SECONDS)]

    def _name_done(self, now: float) -> list[Action]:
        return [CancelTimer("record"), StopRecording(), *self._joining()]

    def _joining(self) -> list[Action]:
        self.state = "joining"
        self._after_prompt = self._join
        return [self._say("lobby" if self._lobby else "joining", barge_in=False)]

    def _join(self, now: float) -> list[Action]:
        assert self.meeting is not None
        self.state = "joined"
        self.record.outcome = LOBBY if self._lobby else JOINED
        self.record.joined_after = now - self.record.answered_at
        return [Join(self.meeting.conference_id, self.identity, self.language)]
