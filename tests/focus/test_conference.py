"""Admission, lobby, roles and leader-only control of one conference."""

from __future__ import annotations

import pytest

from confserver.focus.conference import (
    CONNECTED,
    DISCONNECTED,
    IN_LOBBY,
    Conference,
    MeetingInfo,
)

ALICE, BOB, CAROL, DAVE = ("sip:alice@example.com", "sip:bob@example.com",
                           "sip:carol@fabrikam.com", "sip:dave@example.com")


def conference(access: str = "anonymous") -> Conference:
    return Conference(MeetingInfo("7654321", ALICE, access, frozenset({BOB}),
                                  frozenset({CAROL}), domain="example.com"))


def join(conf: Conference, pid: str, identity: str | None) -> str:
    admission = conf.admit(identity)
    if admission.outcome == "refuse":
        return f"refuse {admission.status}"
    conf.add(pid, identity, pid, admission, 0.0)
    conf.connected(pid)
    return f"{admission.outcome} {admission.role}"


@pytest.mark.parametrize(("access", "identity", "expected"), [
    ("open", ALICE, "join organizer"),
    ("open", DAVE, "join attendee"),           # any user of the organization
    ("open", CAROL, "join attendee"),          # invited federated user
    ("open", "sip:eve@contoso.com", "refuse 403"),
    ("open", None, "refuse 403"),
    ("closed", BOB, "join presenter"),
    ("closed", DAVE, "refuse 403"),            # signed in but not invited
    ("closed", None, "refuse 403"),
    ("anonymous", DAVE, "join attendee"),
    ("anonymous", None, "lobby attendee"),     # no leader present yet
])
def test_admission_by_access_type(access: str, identity: str | None, expected: str) -> None:
    assert join(conference(access), "p1", identity) == expected


def test_anonymous_callers_wait_in_the_lobby_until_a_leader_arrives() -> None:
    conf = conference()
    assert join(conf, "anon1", None) == "lobby attendee"
    assert join(conf, "anon2", None) == "lobby attendee"
    assert conf.participants["anon1"].state == IN_LOBBY
    admission = conf.admit(BOB)
    conf.add("bob", BOB, "Bob", admission, 1.0)
    assert set(conf.connected("bob")) == {"anon1", "anon2"}
    # with a leader present, the next anonymous caller goes straight in
    assert join(conf, "anon3", None) == "join attendee"


def test_leaders_admit_from_the_lobby_one_or_all() -> None:
    conf = conference()
    join(conf, "anon1", None)
    join(conf, "anon2", None)
    join(conf, "dave", DAVE)
    assert not conf.admit_from_lobby("dave", "anon1").ok  # attendees cannot
    conf.participants["alice"] = conf.add("alice", ALICE, "Alice", conf.admit(ALICE), 0.0)
    conf.participants["alice"].state = CONNECTED
    assert conf.admit_from_lobby("alice", "anon1").admitted == ("anon1",)
    assert not conf.admit_from_lobby("alice", "anon1").ok  # no longer waiting
    assert conf.admit_from_lobby("alice").admitted == ("anon2",)


def test_lock_refuses_everyone_but_leaders() -> None:
    conf = conference("open")
    join(conf, "alice", ALICE)
    join(conf, "dave", DAVE)
    assert conf.set_lock("dave", True).reason == "only the organizer and presenters may do this"
    assert conf.set_lock("alice", True).ok
    assert conf.admit(DAVE).status == 403 and conf.admit(DAVE).reason == "the meeting is locked"
    assert conf.admit(BOB).outcome == "join"
    conf.set_lock("alice", False)
    assert conf.admit(DAVE).outcome == "join"


def test_mute_rules() -> None:
    conf = conference("open")
    join(conf, "alice", ALICE)
    join(conf, "dave", DAVE)
    join(conf, "frank", "sip:frank@example.com")
    assert conf.mute("dave", "dave", True).ok and conf.participants["dave"].muted
    assert conf.mute("dave", "dave", False).ok
    assert not conf.mute("dave", "frank", True).ok          # not a leader
    assert conf.mute("alice", "dave", True).ok
    assert not conf.mute("dave", "dave", False).ok          # muted by a leader
    assert conf.mute("alice", "dave", False).ok and not conf.participants["dave"].muted
    assert conf.mute_audience("alice", True).ok
    assert conf.participants["dave"].muted and conf.participants["frank"].muted
    assert not conf.participants["alice"].muted
    join(conf, "gina", "sip:gina@example.com")              # joins an audience-muted meeting
    assert conf.participants["gina"].muted
    assert not conf.mute("zed", "dave", True).ok


def test_promotion_survives_a_rejoin_and_organizer_is_protected() -> None:
    conf = conference("open")
    join(conf, "alice", ALICE)
    join(conf, "dave", DAVE)
    assert conf.set_role("alice", "dave", "presenter").ok
    assert conf.participants["dave"].is_leader
    assert not conf.set_role("dave", "alice", "attendee").ok
    assert not conf.set_role("alice", "dave", "king").ok
    conf.left("dave")
    assert conf.participants["dave"].state == DISCONNECTED
    assert join(conf, "dave-again", DAVE) == "join presenter"
    anon = conference()
    join(anon, "alice", ALICE)
    join(anon, "anon", None)
    assert not anon.set_role("alice", "anon", "presenter").ok


def test_eject_and_end() -> None:
    conf = conference("open")
    join(conf, "alice", ALICE)
    join(conf, "bob", BOB)
    join(conf, "dave", DAVE)
    assert not conf.eject("dave", "bob").ok
    assert not conf.eject("bob", "alice").ok               # only the organizer removes the organizer
    assert conf.eject("bob", "dave").ejected == ("dave",)
    result = conf.end("alice")
    assert result.ended and set(result.ejected) == {"alice", "bob", "dave"}
    assert conf.admit(DAVE).status == 404


def test_versions_grow_with_every_change() -> None:
    conf = conference("open")
    before = conf.version
    join(conf, "alice", ALICE)
    conf.on_hold("alice", True)
    conf.on_hold("alice", False)
    conf.left("alice")
    assert conf.version == before + 5
