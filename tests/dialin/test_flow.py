"""The attendant's call flow, driven by a task.Clock: every branch, timeouts,
retries, barge-in, language selection and lockout."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.task import Clock

from dialin import flow as f
from dialin.flow import AttendantFlow, MeetingFacts

PROMPT_SECONDS = 2.0  # every segment "plays" this long


@dataclass
class Driver:
    """Carries out the flow's actions the way the adapter does, on a fake clock."""

    languages: tuple[str, ...] = ("en-US", "fr-FR", "de-DE")
    meetings: dict[str, MeetingFacts] = field(default_factory=lambda: {
        "7654321": MeetingFacts("7654321", needs_passcode=True, anonymous_allowed=True),
        "1111222": MeetingFacts("1111222", needs_passcode=False, anonymous_allowed=False)})
    passcodes: dict[str, str] = field(default_factory=lambda: {"7654321": "13579"})
    pins: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "4001": ("24680", "sip:alice@example.com")})
    admission: f.AdmissionOutcome = "join"
    pin_locked: bool = False
    record_name: bool = True
    for_meeting: MeetingFacts | None = None  # a SIP caller of this meeting's own address

    def __post_init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.flow = AttendantFlow(self.languages, self.clock.seconds(), self.record_name)
        self.played: list[f.Play] = []
        self.hung_up: str | None = None
        self.joined: f.Join | None = None
        self.recording = False
        self.pin_failures = 0
        self.failures: list[str] = []  # what the flow counted against the caller
        self._timers: dict[str, object] = {}
        self._prompt: object = None
        if self.for_meeting is not None:
            self.run(self.flow.start_for_meeting(self.for_meeting, self.clock.seconds()))
        else:
            self.run(self.flow.start(self.clock.seconds()))

    def run(self, actions: list[f.Action]) -> None:
        now = self.clock.seconds()
        for action in actions:
            match action:
                case f.Play():
                    self._cancel_prompt()
                    self.played.append(action)
                    self._prompt = self.clock.callLater(
                        PROMPT_SECONDS * len(action.segments), self._prompt_done)
                case f.StopPlayback():
                    self._cancel_prompt()
                case f.SetTimer(name, delay):
                    self._cancel(name)
                    self._timers[name] = self.clock.callLater(delay, self._fire, name)
                case f.CancelTimer(name):
                    self._cancel(name)
                case f.LookUpMeeting(cid):
                    self.run(self.flow.meeting_found(self.meetings.get(cid), now))
                case f.CheckPasscode(cid, code):
                    self.run(self.flow.passcode_checked(self.passcodes.get(cid) == code, now))
                case f.CheckPin(number, pin):
                    self.run(self.flow.pin_checked(*self._check_pin(number, pin), now))
                case f.CheckAdmission():
                    self.run(self.flow.admission(self.admission, now))
                case f.StartRecording():
                    self.recording = True
                case f.StopRecording():
                    self.recording = False
                case f.Join():
                    self.joined = action
                case f.Hangup(outcome):
                    self.hung_up = outcome
                case f.CountFailure(what):
                    self.failures.append(what)

    def _check_pin(self, number: str, pin: str) -> tuple[f.PinOutcome, str | None]:
        if self.pin_locked:
            return "locked", None
        expected = self.pins.get(number)
        if expected is None or expected[0] != pin:
            self.pin_failures += 1
            if self.pin_failures >= 5:
                self.pin_locked = True
                return "locked", None
            return "wrong", None
        return "ok", expected[1]

    def _cancel_prompt(self) -> None:
        prompt = self._prompt
        if prompt is not None and prompt.active():  # type: ignore[attr-defined]
            prompt.cancel()  # type: ignore[attr-defined]
        self._prompt = None

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():  # type: ignore[attr-defined]
            timer.cancel()  # type: ignore[attr-defined]

    def _prompt_done(self) -> None:
        self._prompt = None
        self.run(self.flow.prompt_done(self.clock.seconds()))

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self.run(self.flow.timeout(name, self.clock.seconds()))

    # ---------------------------------------------------------------- caller
    def keys(self, text: str, gap: float = 0.3) -> None:
        for key in text:
            self.run(self.flow.digit(key, self.clock.seconds()))
            self.clock.advance(gap)

    def wait(self, seconds: float, step: float = 0.1) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def last_prompts(self) -> list[str]:
        return [s.prompt for s in self.played[-1].segments]

    def all_prompts(self) -> list[str]:
        return [s.prompt for p in self.played for s in p.segments]


def test_welcome_then_meeting_id_in_the_primary_language() -> None:
    d = Driver()
    assert d.last_prompts() == ["welcome", "enter_meeting_id"]
    assert {s.language for s in d.played[0].segments} == {"en-US"}


def test_anonymous_caller_with_passcode_joins_after_naming_themselves() -> None:
    d = Driver()
    d.wait(1)
    d.keys("7654321#")
    assert d.last_prompts() == ["enter_passcode", "leader_hint"]
    d.keys("13579#")
    assert d.last_prompts() == ["say_name", f.BEEP]
    d.wait(2 * PROMPT_SECONDS + 0.1)
    assert d.recording
    d.wait(f.NAME_SECONDS)
    assert not d.recording
    assert d.last_prompts() == ["joining"]
    d.wait(PROMPT_SECONDS + 0.1)
    assert d.joined == f.Join("7654321", None, "en-US")
    assert d.flow.record.outcome == f.JOINED
    assert d.flow.record.joined_after is not None and 0 < d.flow.record.joined_after < 30


def test_pound_ends_the_name_recording_early_and_lobby_is_announced() -> None:
    d = Driver(admission="lobby")
    d.keys("7654321#13579#")
    d.wait(2 * PROMPT_SECONDS + 0.1)
    assert d.recording
    d.keys("#")
    assert not d.recording and d.last_prompts() == ["lobby"]
    d.wait(PROMPT_SECONDS + 0.1)
    assert d.joined is not None and d.flow.record.outcome == f.LOBBY


def test_digits_interrupt_a_prompt() -> None:
    d = Driver()
    d.clock.advance(0.5)  # the welcome is still playing
    d.run(d.flow.digit("7", d.clock.seconds()))
    assert not d.flow.playing and d._prompt is None
    d.keys("654321#")
    assert d.last_prompts() == ["enter_passcode", "leader_hint"]


def test_inter_digit_timeout_ends_the_entry() -> None:
    d = Driver()
    d.keys("7654321")
    d.wait(f.INTER_DIGIT_TIMEOUT + 0.2)
    assert d.last_prompts() == ["enter_passcode", "leader_hint"]


def test_star_starts_the_entry_over() -> None:
    d = Driver()
    d.keys("99*7654321#")
    assert d.flow.meeting is not None and d.flow.meeting.conference_id == "7654321"


def test_an_unknown_meeting_id_sounds_like_a_meeting_with_a_passcode() -> None:
    """A caller sweeping meeting IDs must not learn which exist: an unknown one is
    asked for its passcode as a real one is, and every passcode is wrong for it."""
    unknown, real = Driver(), Driver()
    unknown.keys("1234567#")
    real.keys("7654321#")
    assert unknown.last_prompts() == real.last_prompts() == ["enter_passcode", "leader_hint"]
    for d in (unknown, real):
        d.keys("11111#22222#")
        assert d.last_prompts()[:2] == ["wrong_passcode", "try_again"]
        d.keys("33333#")
        assert d.last_prompts() == ["too_many_attempts", "goodbye"]
        assert d.hung_up is None  # the goodbye plays to the end first
        d.wait(3 * PROMPT_SECONDS)
        assert d.hung_up == f.WRONG_PASSCODE
        assert d.failures == ["passcode"] * 3
    assert [p.segments for p in unknown.played] == [p.segments for p in real.played]


def test_a_malformed_meeting_id_three_times_says_goodbye() -> None:
    d = Driver()
    for _ in range(3):
        d.keys("12#")
    assert d.last_prompts() == ["too_many_attempts", "goodbye"]
    d.wait(3 * PROMPT_SECONDS)
    assert d.hung_up == f.WRONG_ID


def test_a_caller_who_failed_too_often_lately_is_sent_away() -> None:
    d = Driver()
    d.keys("7654321#11111#")
    d.run(d.flow.throttled(d.clock.seconds()))
    assert d.last_prompts() == ["too_many_attempts", "goodbye"]
    d.wait(2 * PROMPT_SECONDS)
    assert d.hung_up == f.THROTTLED


def test_silence_offers_each_language_in_itself_then_continues_in_the_choice() -> None:
    d = Driver()
    d.wait(2 * PROMPT_SECONDS + f.FIRST_DIGIT_TIMEOUT + 0.2)
    menu = d.played[-1].segments
    assert [(s.prompt, s.language, s.value) for s in menu] == [
        ("language_option", "en-US", "1"), ("language_option", "fr-FR", "2"),
        ("language_option", "de-DE", "3")]
    d.keys("2")
    assert d.flow.language == "fr-FR" and d.flow.record.language == "fr-FR"
    assert d.played[-1].segments == (f.Segment("enter_meeting_id", "fr-FR"),)
    d.keys("7654321#13579#")
    assert {s.language for s in d.played[-1].segments} == {"fr-FR"}


def test_menu_is_offered_once_and_silence_then_counts_as_tries() -> None:
    d = Driver(languages=("en-US", "ja-JP"))
    d.wait(2 * PROMPT_SECONDS + f.FIRST_DIGIT_TIMEOUT + 0.2)
    d.keys("9")  # no such option: the menu again
    assert d.last_prompts() == ["language_option", "language_option"]
    d.keys("1")
    for _ in range(3):
        d.wait(PROMPT_SECONDS * 3 + f.FIRST_DIGIT_TIMEOUT + 0.2)
    d.wait(3 * PROMPT_SECONDS)
    assert "language_option" not in d.all_prompts()[-6:]
    assert d.hung_up == f.WRONG_ID


def test_one_language_means_no_menu_and_silence_is_retried() -> None:
    d = Driver(languages=("de-DE",))
    d.wait(2 * PROMPT_SECONDS + f.FIRST_DIGIT_TIMEOUT + 0.2)
    assert d.last_prompts() == ["no_input", "try_again", "enter_meeting_id"]


def test_wrong_passcode_is_retried_then_goodbye() -> None:
    d = Driver()
    d.keys("7654321#")
    d.keys("11111#")
    assert d.last_prompts()[:2] == ["wrong_passcode", "try_again"]
    d.keys("22222#33333#")
    d.wait(3 * PROMPT_SECONDS)
    assert d.hung_up == f.WRONG_PASSCODE


def test_leader_presses_star_and_signs_in_with_pin() -> None:
    d = Driver()
    d.keys("7654321#")
    d.keys("*")
    assert d.last_prompts() == ["enter_extension"]
    d.keys("4001#")
    assert d.last_prompts() == ["enter_pin"]
    d.keys("24680#")
    assert d.flow.identity == "sip:alice@example.com"
    d.wait(2 * PROMPT_SECONDS + f.NAME_SECONDS + PROMPT_SECONDS + 0.3)
    assert d.joined == f.Join("7654321", "sip:alice@example.com", "en-US")


def test_a_locked_pin_sounds_like_a_wrong_one() -> None:
    """Whether an extension exists, and whether its PIN is locked, is not the
    caller's to learn: a locked PIN is told as a wrong one (the record says locked)."""
    d = Driver()
    d.pin_failures = 3  # earlier calls
    d.keys("7654321#*")
    d.keys("4001#11111#")
    assert d.last_prompts()[:2] == ["wrong_pin", "try_again"]
    d.keys("4001#22222#")   # the fifth failure locks it
    assert d.last_prompts()[:2] == ["wrong_pin", "try_again"]
    d.keys("4001#24680#")   # the right PIN, locked now
    assert d.last_prompts() == ["wrong_pin", "too_many_attempts", "goodbye"]
    assert "pin_locked" not in d.all_prompts()
    d.wait(3 * PROMPT_SECONDS)
    assert d.hung_up == f.PIN_LOCKED
    assert d.failures == ["pin"] * 3


def test_three_wrong_pins_say_goodbye_without_lockout() -> None:
    d = Driver()
    d.keys("7654321#*")
    for _ in range(3):
        d.keys("4001#99999#")
    d.wait(4 * PROMPT_SECONDS)
    assert d.hung_up == f.WRONG_PIN


def test_members_only_meeting_asks_phone_callers_to_sign_in() -> None:
    d = Driver()
    d.keys("1111222#")
    assert d.last_prompts() == ["sign_in_required", "enter_extension"]
    d.keys("4001#24680#")
    assert d.flow.identity == "sip:alice@example.com"


def test_locked_meeting_refuses_with_a_reason() -> None:
    d = Driver(admission="locked")
    d.keys("7654321#13579#")
    assert d.last_prompts() == ["meeting_locked", "goodbye"]
    d.wait(2 * PROMPT_SECONDS)
    assert d.hung_up == f.REFUSED


def test_hanging_up_midway_is_recorded() -> None:
    d = Driver()
    d.keys("765")
    d.run(d.flow.hung_up(d.clock.seconds()))
    assert d.flow.record.outcome == f.HUNG_UP
    d.wait(30)
    assert d.hung_up is None and d.played[-1].segments[-1].prompt == "enter_meeting_id"


def test_too_long_an_entry_counts_as_wrong() -> None:
    d = Driver()
    d.keys("1" * 17)
    assert d.last_prompts()[0] == "meeting_not_found"


def test_keys_during_goodbye_are_ignored() -> None:
    d = Driver()
    for _ in range(3):
        d.keys("12#")
    before = len(d.played)
    d.keys("7654321#")
    assert len(d.played) == before


def test_a_sip_caller_of_the_meetings_address_is_asked_its_passcode_first() -> None:
    """No welcome, no meeting ID, no name to record (a SIP caller has a display name):
    the passcode, then the meeting."""
    d = Driver(record_name=False, for_meeting=MeetingFacts("7654321", needs_passcode=True,
                                                            anonymous_allowed=True))
    assert d.all_prompts() == ["enter_passcode", "leader_hint"]
    d.keys("13579#")
    assert d.last_prompts() == ["joining"]
    d.wait(PROMPT_SECONDS + 0.2)
    assert d.joined == f.Join("7654321", None, "en-US") and not d.recording


def test_a_caller_whose_check_cannot_start_now_is_asked_to_call_again_later() -> None:
    d = Driver()
    d.keys("7654321#")
    d.run(d.flow.busy(d.clock.seconds()))
    assert d.last_prompts() == ["busy", "goodbye"]
    d.wait(2 * PROMPT_SECONDS)
    assert d.hung_up == f.BUSY
