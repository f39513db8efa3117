"""A phone participant in the meeting: recorded names announce entry and exit, *1 help,
*3 roll call and spoken keypad feedback in the caller's language, heard by them only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from confserver.adapters.focus.focus import ConferenceLeg, Focus
from confserver.focus.conference import Admission
from confserver.media.codecs import default_registry
from confserver.storage.meetings import MeetingRecord
from dialin.prompt_build import write_wav
from dialin.prompt_store import PromptStore
from dialin.voice import PhoneVoice

MARKS = {"has_joined.1": 1111, "has_left.1": 2222, "help": 3333, "roll_call_intro": 4444,
         "roll_call_unnamed": 5555, "muted": 6666, "roll_call_alone": 7777}
NAME = np.full(8000, 999, dtype=np.int16)  # half a second at 16 kHz: a recorded name


class NoMeetings:
    def get(self, conference_id: str) -> None:
        return None


def store(tmp_path: Path) -> PromptStore:
    for key, value in MARKS.items():
        write_wav(tmp_path / "custom" / "de-DE" / f"{key}.wav", 16000,
                  np.full(3200, value, dtype=np.int16))
    return PromptStore(tmp_path / "built", tmp_path / "custom")


def meeting() -> tuple[Focus, object]:
    focus = Focus("example.com", NoMeetings(), auth=None, media=None,  # type: ignore[arg-type]
                  codecs=default_registry(), clock=lambda: 100.0)
    record = MeetingRecord("7654321", "sip:alice@example.com", "", "scheduled", "anonymous",
                           True, None, None, None, "active", 0.0)
    runtime = focus._activate(record)
    for pid, identity in (("p1", "sip:alice@example.com"), ("p2", None), ("p3", None)):
        runtime.conference.add(pid, identity, "", Admission("join", role="attendee"), 0.0)
        runtime.bridge.add(pid, Silent(), "PCMU", 8000)
    return focus, runtime


class Silent:
    def send_payload(self, payload: bytes, csrc: tuple[int, ...] = ()) -> None:
        pass

    def set_pcm_rate(self, rate: int) -> bool:
        return False


def heard(frames: list[np.ndarray]) -> set[int]:
    return {int(v) for v in np.unique(np.concatenate(frames))} if frames else set()


def test_recorded_name_announces_entry_and_exit(tmp_path: Path) -> None:
    _focus, runtime = meeting()
    runtime.voices["p2"] = PhoneVoice(store(tmp_path), "de-DE", NAME)
    runtime.announce_arrival("p2", True)
    assert {999, 1111} <= heard(runtime.bridge._announcement)
    runtime.bridge._announcement.clear()
    runtime.announce_arrival("p2", False)
    assert {999, 2222} <= heard(runtime.bridge._announcement)
    runtime.bridge._announcement.clear()
    runtime.announce_arrival("p1", True)  # a SIP participant: the entry tones
    assert heard(runtime.bridge._announcement).isdisjoint(MARKS.values())
    runtime.conference.announcements = False
    runtime.bridge._announcement.clear()
    runtime.announce_arrival("p2", True)
    assert runtime.bridge._announcement == []


def keys(leg: ConferenceLeg, text: str) -> None:
    for key in text:
        leg.on_digit(None, key, "rfc4733")


def test_help_roll_call_and_feedback_are_spoken_to_the_caller_only(tmp_path: Path) -> None:
    _focus, runtime = meeting()
    prompts = store(tmp_path)
    runtime.voices["p2"] = PhoneVoice(prompts, "de-DE", None)
    runtime.voices["p3"] = PhoneVoice(prompts, "de-DE", NAME)
    leg = ConferenceLeg(runtime, "p2")
    keys(leg, "*1")
    assert 3333 in heard(runtime.bridge._private["p2"])
    assert "p1" not in runtime.bridge._private and "p3" not in runtime.bridge._private
    runtime.bridge._private.clear()
    keys(leg, "*3")
    roll = heard(runtime.bridge._private["p2"])
    assert {4444, 999, 5555} <= roll  # intro, p3's name, alice (no recorded name)
    runtime.bridge._private.clear()
    keys(leg, "*6")
    assert 6666 in heard(runtime.bridge._private["p2"])
    assert runtime.conference.participants["p2"].muted


def test_roll_call_when_alone(tmp_path: Path) -> None:
    _focus, runtime = meeting()
    for pid in ("p1", "p3"):
        runtime.conference.left(pid)
    runtime.voices["p2"] = PhoneVoice(store(tmp_path), "de-DE", None)
    keys(ConferenceLeg(runtime, "p2"), "*3")
    assert 7777 in heard(runtime.bridge._private["p2"])
