"""Keypad commands (*N) for phone participants."""

from __future__ import annotations

from confserver.focus.conference import IN_LOBBY, Conference, MeetingInfo
from confserver.focus.keypad import KeypadReader, run

ALICE = "sip:alice@example.com"


def meeting() -> Conference:
    conf = Conference(MeetingInfo("7654321", ALICE, "anonymous", domain="example.com"))
    conf.add("anon", None, "", conf.admit(None), 0.0)       # waits in the lobby
    conf.add("alice", ALICE, "Alice", conf.admit(ALICE), 0.0)
    conf.add("dave", "sip:dave@example.com", "Dave", conf.admit("sip:dave@example.com"), 0.0)
    return conf


def test_star_then_a_digit_within_three_seconds() -> None:
    reader = KeypadReader()
    assert reader.feed("6", 0.0) is None            # no * first
    assert reader.feed("*", 1.0) is None
    assert reader.feed("6", 2.0) == "6"
    assert reader.feed("6", 2.1) is None            # * is needed again
    reader.feed("*", 3.0)
    assert reader.feed("7", 6.5) is None            # too late
    reader.feed("*", 7.0)
    assert reader.feed("5", 7.1) is None            # no such command
    reader.feed("*", 8.0)
    assert reader.feed("*", 8.1) is None and reader.feed("1", 8.2) == "1"


def test_commands_and_who_may_use_them() -> None:
    conf = meeting()
    assert conf.participants["anon"].state == IN_LOBBY
    assert run(conf, "dave", "1").feedback == "help"
    assert run(conf, "dave", "6").feedback == "muted" and conf.participants["dave"].muted
    assert run(conf, "dave", "6").feedback == "unmuted"
    for key in "4789":
        result = run(conf, "dave", key)
        assert not result.outcome.ok and result.feedback == "refused"
    assert run(conf, "alice", "7").feedback == "locked" and conf.locked
    assert run(conf, "alice", "7").feedback == "unlocked"
    assert run(conf, "alice", "4").feedback == "audience_muted" and conf.participants["dave"].muted
    assert run(conf, "alice", "4").feedback == "audience_unmuted"
    admitted = run(conf, "alice", "8")
    assert admitted.outcome.admitted == ("anon",)
    assert run(conf, "alice", "9").feedback == "announcements_off" and not conf.announcements
    assert run(conf, "ghost", "6").feedback == "refused"
