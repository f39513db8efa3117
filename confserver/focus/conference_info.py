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

from confserver.text import clean_text

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


class ConferenceInfoError(ValueError):
    """Bytes that are not a conference-info document of the shape we read."""


# ------------------------------------------------------------------ the document
@dataclass(frozen=True, slots=True)
class EndpointInfo:
    entity: str
    status: str
    joining_method: str = "dialed-in"
    disconnection_method: str | None = None
    media_status: str | None = None  # the audio's; None: no media element (disconnected)


@dataclass(frozen=True, slots=True)
class UserInfo:
    entity: str
    display_text: str | None
    roles: tuple[str, ...]
    endpoints: tuple[EndpointInfo, ...]


@dataclass(frozen=True, slots=True)
class ConferenceStateInfo:
    user_count: int
    active: bool
    locked: bool


@dataclass(frozen=True, slots=True)
class DescriptionInfo:
    subject: str | None
    conf_uri: str | None


@dataclass(frozen=True, slots=True)
class ConferenceInfo:
    """One RFC 4575 document, in the parts we write and read. Text from the network
    (display names) is cleaned as it is written (``confserver.text.clean_text``):
    a control character or a byte that was not UTF-8 never stops a roster."""

    entity: str
    state: str                       # full or partial
    version: int
    description: DescriptionInfo | None = None
    conference_state: ConferenceStateInfo | None = None
    users: tuple[UserInfo, ...] | None = None  # None: no <users> element
    users_partial: bool = False

    @classmethod
    def parse(cls, data: bytes) -> ConferenceInfo:
        try:
            root = etree.fromstring(data, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise ConferenceInfoError(f"not well-formed XML: {exc}") from exc
        if root.tag != _q("conference-info"):
            raise ConferenceInfoError("the root element is not <conference-info>")
        try:
            version = int(root.get("version", ""))
        except ValueError as exc:
            raise ConferenceInfoError("version is not a number") from exc
        description = root.find(_q("conference-description"))
        state = root.find(_q("conference-state"))
        users = root.find(_q("users"))
        return cls(
            entity=root.get("entity", ""), state=root.get("state", "full"), version=version,
            description=None if description is None else DescriptionInfo(
                description.findtext(_q("subject")),
                description.findtext(f"{_q('conf-uris')}/{_q('entry')}/{_q('uri')}")),
            conference_state=None if state is None else ConferenceStateInfo(
                int(state.findtext(_q("user-count")) or 0),
                state.findtext(_q("active")) == "true", state.findtext(_q("locked")) == "true"),
            users=None if users is None else tuple(_read_user(u) for u in users
                                                   if u.tag == _q("user")),
            users_partial=users is not None and users.get("state") == "partial")

    def __bytes__(self) -> bytes:
        root = etree.Element(_q("conference-info"), nsmap={None: NAMESPACE},  # type: ignore[dict-item]
                             entity=clean_text(self.entity, 1024), state=self.state,
                             version=str(self.version))
        if self.description is not None:
            description = etree.SubElement(root, _q("conference-description"))
            if self.description.subject is not None:
                etree.SubElement(description, _q("subject")).text = clean_text(
                    self.description.subject, 1024)
            if self.description.conf_uri is not None:
                entry = etree.SubElement(etree.SubElement(description, _q("conf-uris")),
                                         _q("entry"))
                etree.SubElement(entry, _q("uri")).text = clean_text(
                    self.description.conf_uri, 1024)
                etree.SubElement(entry, _q("purpose")).text = "participation"
        if self.conference_state is not None:
            state = etree.SubElement(root, _q("conference-state"))
            etree.SubElement(state, _q("user-count")).text = str(self.conference_state.user_count)
            etree.SubElement(state, _q("active")).text = _boolean(self.conference_state.active)
            etree.SubElement(state, _q("locked")).text = _boolean(self.conference_state.locked)
        if self.users is not None:
            users = etree.SubElement(root, _q("users"))
            if self.users_partial:
                users.set("state", "partial")
            for user in self.users:
                _write_user(users, user)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# no entities, no DTDs, no network: a document from a peer is untrusted input
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=False)


def _boolean(value: bool) -> str:
    return "true" if value else "false"


def _read_user(user: etree._Element) -> UserInfo:
    roles = user.find(_q("roles"))
    endpoints = []
    for endpoint in user.findall(_q("endpoint")):
        media = endpoint.find(_q("media"))
        endpoints.append(EndpointInfo(
            endpoint.get("entity", ""), endpoint.findtext(_q("status")) or "",
            endpoint.findtext(_q("joining-method")) or "",
            endpoint.findtext(_q("disconnection-method")),
            None if media is None else media.findtext(_q("status"))))
    return UserInfo(user.get("entity", ""), user.findtext(_q("display-text")),
                    tuple(e.text or "" for e in roles.findall(_q("entry")))
                    if roles is not None else (), tuple(endpoints))


def _write_user(parent: etree._Element, user: UserInfo) -> None:
    element = etree.SubElement(parent, _q("user"), entity=clean_text(user.entity, 1024),
                               state="full")
    if user.display_text is not None:
        etree.SubElement(element, _q("display-text")).text = clean_text(user.display_text)
    if user.roles:
        roles = etree.SubElement(element, _q("roles"))
        for role in user.roles:
            etree.SubElement(roles, _q("entry")).text = clean_text(role)
    for endpoint in user.endpoints:
        item = etree.SubElement(element, _q("endpoint"), entity=clean_text(endpoint.entity))
        etree.SubElement(item, _q("status")).text = endpoint.status
        etree.SubElement(item, _q("joining-method")).text = endpoint.joining_method
        if endpoint.disconnection_method is not None:
            etree.SubElement(item, _q("disconnection-method")).text = \
                endpoint.disconnection_method
        if endpoint.media_status is not None:
            media = etree.SubElement(item, _q("media"), id="audio")
            etree.SubElement(media, _q("type")).text = "audio"
            etree.SubElement(media, _q("status")).text = endpoint.media_status


# ------------------------------------------------------------------ a conference's roster
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


def user_info(participant: Participant, domain: str) -> UserInfo:
    disconnected = participant.state == DISCONNECTED
    media = None if disconnected else (
        "recvonly" if participant.muted or participant.state == IN_LOBBY else "sendrecv")
    return UserInfo(
        user_entity(participant, domain), participant.display_name or None, (participant.role,),
        (EndpointInfo(participant.pid, _status(participant), "dialed-in",
                      ("booted" if participant.ejected else "departed") if disconnected
                      else None, media),))


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

    def _state(self) -> ConferenceStateInfo:
        present = sum(1 for p in self.conference.participants.values()
                      if p.state != DISCONNECTED)
        self._seen_state = (present, self.conference.locked)
        return ConferenceStateInfo(present, bool(present), self.conference.locked)

    def full(self) -> bytes:
        self.version += 1
        self._seen = {p.pid: view(p) for p in self.conference.participants.values()
                      if p.state != DISCONNECTED}
        self._seen_conference_version = self.conference.version
        return bytes(ConferenceInfo(
            self.entity, "full", self.version,
            description=DescriptionInfo(self.subject or None, self.entity),
            conference_state=self._state(),
            users=tuple(user_info(self.conference.participants[pid], self.domain)
                        for pid in self._seen)))

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
        self.version += 1
        for participant in changed:
            if participant.state == DISCONNECTED:
                self._seen.pop(participant.pid, None)
            else:
                self._seen[participant.pid] = view(participant)
        return bytes(ConferenceInfo(
            self.entity, "partial", self.version,
            conference_state=self._state() if state_changed else None,
            users=tuple(user_info(p, self.domain) for p in changed) if changed else None,
            users_partial=True))


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
