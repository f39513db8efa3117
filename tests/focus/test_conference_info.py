"""RFC 4575 documents: a full one first, then versioned partial ones, all schema-valid."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from confserver.focus.conference import Conference, MeetingInfo
from confserver.focus.conference_info import (
    NAMESPACE,
    ConferenceInfo,
    ConferenceInfoSchema,
    ConferenceStateInfo,
    DescriptionInfo,
    EndpointInfo,
    RosterSubscription,
    UserInfo,
)

ALICE, DAVE = "sip:alice@example.com", "sip:dave@example.com"
NS = {"ci": NAMESPACE}


def join(conf: Conference, pid: str, identity: str | None, name: str = "") -> None:
    conf.add(pid, identity, name, conf.admit(identity), 0.0)
    conf.connected(pid)


def parsed(document: bytes) -> etree._Element:
    return etree.fromstring(document)


def test_full_then_partial_documents_with_versions() -> None:
    schema = ConferenceInfoSchema()
    conf = Conference(MeetingInfo("7654321", ALICE, "anonymous", domain="example.com"))
    join(conf, "p1", ALICE, "Alice")
    subscription = RosterSubscription(conf, "sip:conf-7654321@example.com", "example.com",
                                      subject="Weekly")
    full = subscription.full()
    assert schema.errors(full) == []
    root = parsed(full)
    assert root.get("state") == "full" and root.get("version") == "1"
    assert root.findtext("ci:conference-state/ci:user-count", namespaces=NS) == "1"
    assert [u.get("entity") for u in root.findall("ci:users/ci:user", NS)] == [ALICE]
    assert root.findtext("ci:users/ci:user/ci:roles/ci:entry", namespaces=NS) == "organizer"
    assert subscription.partial() is None  # nothing changed

    join(conf, "p2", DAVE, "Dave")
    join(conf, "p3", None)                                # anonymous, leader present: joins
    partial = subscription.partial()
    assert partial is not None and schema.errors(partial) == []
    root = parsed(partial)
    assert root.get("state") == "partial" and root.get("version") == "2"
    users = root.findall("ci:users/ci:user", NS)
    assert [u.get("entity") for u in users] == [DAVE, "sip:p3@anonymous.invalid"]
    assert root.findtext("ci:conference-state/ci:user-count", namespaces=NS) == "3"

    conf.mute("p1", "p2", True)
    root = parsed(subscription.partial() or b"")
    assert root.get("version") == "3" and root.find("ci:conference-state", NS) is None
    assert root.findtext("ci:users/ci:user/ci:endpoint/ci:status", namespaces=NS) == "muted-via-focus"
    assert root.findtext("ci:users/ci:user/ci:endpoint/ci:media/ci:status",
                         namespaces=NS) == "recvonly"

    conf.set_lock("p1", True)
    root = parsed(subscription.partial() or b"")
    assert root.findtext("ci:conference-state/ci:locked", namespaces=NS) == "true"
    assert root.find("ci:users", NS) is None

    conf.eject("p1", "p3")
    conf.left("p3")
    conf.left("p2")
    document = subscription.partial() or b""
    assert schema.errors(document) == []
    methods = {u.get("entity"): u.findtext("ci:endpoint/ci:disconnection-method", namespaces=NS)
               for u in parsed(document).findall("ci:users/ci:user", NS)}
    assert methods == {DAVE: "departed", "sip:p3@anonymous.invalid": "booted"}
    again = parsed(subscription.full())
    assert [u.get("entity") for u in again.findall("ci:users/ci:user", NS)] == [ALICE]
    assert again.get("version") == "6"


def test_the_schema_rejects_what_rfc_4575_does_not_allow() -> None:
    schema = ConferenceInfoSchema()
    bad = (f'<conference-info xmlns="{NAMESPACE}" state="sometimes" version="1" '
           f'entity="sip:c@x"/>').encode()
    assert schema.errors(bad)
    assert schema.errors(b"<not-xml")
    missing_entity = f'<conference-info xmlns="{NAMESPACE}" state="full"/>'.encode()
    assert schema.errors(missing_entity)


# ------------------------------------------------------------------ round trip, untrusted names
# text that survives XML unchanged: no controls, no lone surrogates, no direction
# overrides or noncharacters (the serializer removes those: see confserver/text.py)
CLEAN = st.text(st.characters(blacklist_categories=("Cc", "Cs"),
                              blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066"
                                                   "\u2067\u2068\u2069\ufffe\uffff"),
                max_size=40)
ENDPOINTS = st.builds(EndpointInfo, CLEAN, st.sampled_from(["connected", "pending"]),
                      st.just("dialed-in"), st.none() | st.sampled_from(["departed", "booted"]),
                      st.none() | st.sampled_from(["sendrecv", "recvonly"]))
USERS = st.builds(UserInfo, CLEAN, st.none() | CLEAN.filter(bool),
                  st.lists(CLEAN, max_size=2).map(tuple),
                  st.lists(ENDPOINTS, max_size=2).map(tuple))
DOCUMENTS = st.builds(
    ConferenceInfo, CLEAN, st.sampled_from(["full", "partial"]), st.integers(0, 2**31),
    description=st.none() | st.builds(DescriptionInfo, st.none() | CLEAN, st.none() | CLEAN),
    conference_state=st.none() | st.builds(ConferenceStateInfo, st.integers(0, 10_000),
                                           st.booleans(), st.booleans()),
    users=st.none() | st.lists(USERS, max_size=4).map(tuple), users_partial=st.booleans())


@given(DOCUMENTS)
def test_conference_info_round_trip(document: ConferenceInfo) -> None:
    if document.users is None:
        document = replace(document, users_partial=False)
    again = ConferenceInfo.parse(bytes(document))
    assert again == document
    assert bytes(again) == bytes(document)


@given(st.text(max_size=30), st.binary(max_size=30))
def test_any_display_name_gives_a_valid_roster(name: str, raw: bytes) -> None:
    """Names come from the network: control characters, direction overrides, and bytes
    that were not UTF-8 (the SIP parser keeps them as lone surrogates). Every
    document must still be written, valid, and readable."""
    schema = ConferenceInfoSchema()
    conf = Conference(MeetingInfo("7654321", ALICE, "anonymous", domain="example.com"))
    join(conf, "p1", ALICE, "Alice")
    join(conf, "p2", None, name + raw.decode("utf-8", "surrogateescape"))
    subscription = RosterSubscription(conf, "sip:conf-7654321@example.com", "example.com")
    document = subscription.full()
    assert schema.errors(document) == []
    users = ConferenceInfo.parse(document).users or ()
    assert len(users) == 2


def test_a_name_with_a_control_character_and_a_bad_byte_keeps_the_partials_flowing() -> None:
    conf = Conference(MeetingInfo("7654321", ALICE, "anonymous", domain="example.com"))
    join(conf, "p1", ALICE, "Alice")
    subscription = RosterSubscription(conf, "sip:conf-7654321@example.com", "example.com")
    subscription.full()
    join(conf, "p2", None, b"\x01\xff".decode("utf-8", "surrogateescape") + "Mallory")
    partial = subscription.partial()
    assert partial is not None and ConferenceInfoSchema().errors(partial) == []
    [user] = ConferenceInfo.parse(partial).users or ()
    assert user.display_text == "\ufffdMallory"
