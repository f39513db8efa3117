"""RFC 4575 documents: a full one first, then versioned partial ones, all schema-valid."""

from __future__ import annotations

from lxml import etree

from confserver.focus.conference import Conference, MeetingInfo
from confserver.focus.conference_info import NAMESPACE, ConferenceInfoSchema, RosterSubscription

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
