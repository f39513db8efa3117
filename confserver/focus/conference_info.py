"""RFC 4575 conference-info documents for a conference's roster, sans-I/O.

A subscriber first gets a full document, then partial ones naming only the
users whose state changed (and the conference state when it changed), each
with the next version number of that subscription. A participant who left
appears once more with a disconnected endpoint, then drops out of later
full documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from lxml import etree

from .conference import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    IN_LOBBY,
    ON_HOLD,
    Conference,
    Participant,
)

NAMESPACE = "urn:ietf:params:xml:ns:conference-info"
CONTENT_TYPE = "application/conference-info+xml"
EVENT = "conference"

_STATUS = {CONNECTING: "dialing-in", CONNECTED: "connected", ON_HOLD: "on-hold",
           IN_LOBBY: "pending", DISCONNECTED: "disconnected"}

UserView = tuple[str, str, str, bool, str]  # what a subscriber sees of one participant


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def user_entity(participant: Participant, domain: str) -> str:
    if participant.authenticated:
        return participant.identity
    return f"sip:{participant.pid}@anonymous.invalid"


def _status(participant: Participant) -> str:
    if participant.state == CONNECTED and participant.muted_by_leader:
        return "muted-via-focus"
    return _STATUS[participant.state]


def view(participant: Participant) -> UserView:
    return (participant.display_name, participant.role, _status(participant),
            participant.muted, participant.state)


def _user(parent: etree._Element, participant: Participant, domain: str) -> None:
    user = etree.SubElement(parent, _q("user"), entity=user_entity(participant, domain),
                            state="full")
    if participant.display_name:
        etree.SubElement(user, _q("display-text")).text = participant.display_name
    roles = etree.SubElement(user, _q("roles"))
    etree.SubElement(roles, _q("entry")).text = participant.role
    endpoint = etree.SubElement(user, _q("endpoint"), entity=participant.pid)
    etree.SubElement(endpoint, _q("status")).text = _status(participant)
    etree.SubElement(endpoint, _q("joining-method")).text = "dialed-in"
    if participant.state == DISCONNECTED:
        etree.SubElement(endpoint, _q("disconnection-method")).text = \
            "booted" if participant.ejected else "departed"
    if participant.state != DISCONNECTED:
        media = etree.SubElement(endpoint, _q("media"), id="audio")
        etree.SubElement(media, _q("type")).text = "audio"
        etree.SubElement(media, _q("status")).text = \
            "recvonly" if participant.muted or participant.state == IN_LOBBY else "sendrecv"


@dataclass(slots=True)
class RosterSubscription:
    """The documents one subscriber gets, with their versions."""

    conference: Conference
    entity: str                 # the conference URI
    domain: str
    subject: str = ""
    version: int = 0
    _seen: dict[str, UserView] = field(default_factory=dict)
    _seen_state: tuple[int, bool] = (0, False)
    _seen_conference_version: int = -1

    def _root(self, state: str) -> etree._Element:
        self.version += 1
        return etree.Element(_q("conference-info"), nsmap={None: NAMESPACE},  # type: ignore[dict-item]
                             entity=self.entity, state=state, version=str(self.version))

    def _conference_state(self, root: etree._Element) -> tuple[int, bool]:
        present = [p for p in self.conference.participants.values() if p.state != DISCONNECTED]
        state = etree.SubElement(root, _q("conference-state"))
        etree.SubElement(state, _q("user-count")).text = str(len(present))
        etree.SubElement(state, _q("active")).text = "true" if present else "false"
        etree.SubElement(state, _q("locked")).text = "true" if self.conference.locked else "false"
        return len(present), self.conference.locked

    def full(self) -> bytes:
        root = self._root("full")
        description = etree.SubElement(root, _q("conference-description"))
        if self.subject:
            etree.SubElement(description, _q("subject")).text = self.subject
        uris = etree.SubElement(description, _q("conf-uris"))
        entry = etree.SubElement(uris, _q("entry"))
        etree.SubElement(entry, _q("uri")).text = self.entity
        etree.SubElement(entry, _q("purpose")).text = "participation"
        self._seen_state = self._conference_state(root)
        users = etree.SubElement(root, _q("users"))
        self._seen = {}
        for participant in self.conference.participants.values():
            if participant.state != DISCONNECTED:
                _user(users, participant, self.domain)
                self._seen[participant.pid] = view(participant)
        self._seen_conference_version = self.conference.version
        return _serialize(root)

    def partial(self) -> bytes | None:
        """A partial document of what changed since the last one, or None."""
        conference = self.conference
        if conference.version == self._seen_conference_version:
            return None
        self._seen_conference_version = conference.version
        changed = [p for p in conference.participants.values()
                   if (p.pid in self._seen and self._seen[p.pid] != view(p))
                   or (p.pid not in self._seen and p.state != DISCONNECTED)]
        present = sum(1 for p in conference.participants.values() if p.state != DISCONNECTED)
        state_changed = (present, conference.locked) != self._seen_state
        if not changed and not state_changed:
            return None
        root = self._root("partial")
        if state_changed:
            self._seen_state = self._conference_state(root)
        if changed:
            users = etree.SubElement(root, _q("users"), state="partial")
            for participant in changed:
                _user(users, participant, self.domain)
                if participant.state == DISCONNECTED:
                    self._seen.pop(participant.pid, None)
                else:
                    self._seen[participant.pid] = view(participant)
        return _serialize(root)


def _serialize(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


class ConferenceInfoSchema:
    """The RFC 4575 schema (shipped with the package), for checking documents."""

    def __init__(self) -> None:
        source = resources.files("confserver.focus").joinpath("schema/conference-info.xsd")
        with source.open("rb") as handle:
            self._schema = etree.XMLSchema(etree.parse(handle))

    def errors(self, document: bytes) -> list[str]:
        try:
            root = etree.fromstring(document, etree.XMLParser(resolve_entities=False,
                                                              no_network=True))
        except etree.XMLSyntaxError as exc:
            return [str(exc)]
        if self._schema.validate(root):
            return []
        errors: list[str] = str(self._schema.error_log).splitlines()
        return errors or ["not valid against the RFC 4575 schema"]
