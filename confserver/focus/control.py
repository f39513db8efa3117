"""Conference control requests, in the spirit of Microsoft's C3P (MS-CONFBAS).

A participant sends SIP INFO with an XML body naming one command; the focus
applies it through :class:`~confserver.focus.conference.Conference` and
answers in the INFO's 200 with a response naming the request and its result
(and the reason of a refusal)::

    <request xmlns="urn:switchboard:params:xml:ns:c3p" requestId="7">
      <mute user="sip:bob@example.com"/>
    </request>

    <response xmlns="urn:switchboard:params:xml:ns:c3p" requestId="7"
              code="failure" reason="only the organizer and presenters may do this"/>

Commands: lock, unlock, mute / unmute (``user``), muteAudience,
unmuteAudience, eject (``user``), setRole (``user``, ``role``), admit
(``user``), admitAll, endConference, startRecording, stopRecording,
pinVideo (``user``), unpinVideo, dialOut (``uri``: a SIP URI the meeting
calls). ``user`` is a participant's identity
(SIP URI) or its entity id from the conference-info roster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from confserver.text import clean_text

from .conference import DISCONNECTED, Conference, Outcome, refused

NAMESPACE = "urn:switchboard:params:xml:ns:c3p"
CONTENT_TYPE = "application/cccp+xml"
MAX_BODY = 16 * 1024


class ControlError(ValueError):
    """A control body that is not a well-formed request."""


@dataclass(frozen=True, slots=True)
class ControlRequest:
    request_id: str
    command: str
    user: str | None = None
    role: str | None = None
    uri: str | None = None

    @classmethod
    def parse(cls, body: bytes) -> ControlRequest:
        return parse_request(body)

    def __bytes__(self) -> bytes:
        """The request as a client sends it (what ``parse`` reads)."""
        root = etree.Element(f"{{{NAMESPACE}}}request", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
        root.set("requestId", clean_text(self.request_id))
        command = etree.SubElement(root, f"{{{NAMESPACE}}}{self.command}")
        for name, value in (("user", self.user), ("role", self.role), ("uri", self.uri)):
            if value is not None:
                command.set(name, clean_text(value, 1024))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@dataclass(frozen=True, slots=True)
class ControlResponse:
    """The answer to one request: its id, and the reason when it was refused."""

    request_id: str
    ok: bool
    reason: str = ""

    @classmethod
    def parse(cls, body: bytes) -> ControlResponse:
        root = _root(body, "response")
        code = root.get("code")
        if code not in ("success", "failure"):
            raise ControlError("code must be success or failure")
        return cls(root.get("requestId", ""), code == "success", root.get("reason", ""))

    def __bytes__(self) -> bytes:
        root = etree.Element(f"{{{NAMESPACE}}}response", nsmap={None: NAMESPACE})  # type: ignore[dict-item]
        root.set("requestId", clean_text(self.request_id))
        root.set("code", "success" if self.ok else "failure")
        if not self.ok:
            root.set("reason", clean_text(self.reason, 1024))
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _parser() -> etree.XMLParser:
    # no entities, no DTDs, no network: a control body is untrusted input
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True)


def _root(body: bytes, name: str) -> etree._Element:
    if len(body) > MAX_BODY:
        raise ControlError(f"{name} body over {MAX_BODY} bytes")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise ControlError(f"not well-formed XML: {exc}") from exc
    doctype: str = getattr(root.getroottree().docinfo, "doctype", "")
    if doctype:
        raise ControlError("a document type declaration is not allowed")
    if root.tag != f"{{{NAMESPACE}}}{name}":
        raise ControlError(f"the root element must be <{name}> in namespace {NAMESPACE}")
    return root


def parse_request(body: bytes) -> ControlRequest:
    root = _root(body, "request")
    commands = [child for child in root if isinstance(child.tag, str)]
    if len(commands) != 1:
        raise ControlError("a request carries exactly one command")
    command = commands[0]
    name = etree.QName(command).localname
    if etree.QName(command).namespace != NAMESPACE or name not in COMMANDS:
        raise ControlError(f"unknown command <{name}>")
    request = ControlRequest(root.get("requestId", ""), name, command.get("user"),
                             command.get("role"), command.get("uri"))
    if name == "dialOut" and not request.uri:
        raise ControlError("<dialOut> needs a uri attribute")
    if name in NEEDS_USER and not request.user:
        raise ControlError(f"<{name}> needs a user attribute")
    if name == "setRole" and not request.role:
        raise ControlError("<setRole> needs a role attribute")
    return request


def response_body(request_id: str, outcome: Outcome) -> bytes:
    return bytes(ControlResponse(request_id, outcome.ok, outcome.reason))


def _target(conference: Conference, user: str | None) -> str | None:
    """The participant id ``user`` names (entity id or identity), present ones first."""
    if user is None:
        return None
    if user in conference.participants:
        return user
    matches = [p for p in conference.participants.values() if p.identity == user]
    present = [p for p in matches if p.state != DISCONNECTED]
    chosen = present or matches
    return chosen[-1].pid if chosen else None


Handler = Callable[[Conference, str, ControlRequest, str], Outcome]

COMMANDS: dict[str, Handler] = {
    "lock": lambda c, actor, r, t: c.set_lock(actor, True),
    "unlock": lambda c, actor, r, t: c.set_lock(actor, False),
    "mute": lambda c, actor, r, t: c.mute(actor, t, True),
    "unmute": lambda c, actor, r, t: c.mute(actor, t, False),
    "muteAudience": lambda c, actor, r, t: c.mute_audience(actor, True),
    "unmuteAudience": lambda c, actor, r, t: c.mute_audience(actor, False),
    "eject": lambda c, actor, r, t: c.eject(actor, t),
    "setRole": lambda c, actor, r, t: c.set_role(actor, t, r.role or ""),
    "admit": lambda c, actor, r, t: c.admit_from_lobby(actor, t),
    "admitAll": lambda c, actor, r, t: c.admit_from_lobby(actor, None),
    "endConference": lambda c, actor, r, t: c.end(actor),
    "startRecording": lambda c, actor, r, t: c.set_recording(actor, True),
    "stopRecording": lambda c, actor, r, t: c.set_recording(actor, False),
    "pinVideo": lambda c, actor, r, t: c.pin_video(actor, t),
    "unpinVideo": lambda c, actor, r, t: c.pin_video(actor, None),
    "dialOut": lambda c, actor, r, t: c.invite_by_calling(actor, r.uri or ""),
}
NEEDS_USER = frozenset({"mute", "unmute", "eject", "setRole", "admit", "pinVideo"})


def apply(conference: Conference, actor: str, request: ControlRequest) -> Outcome:
    target = _target(conference, request.user)
    if request.command in NEEDS_USER and target is None:
        return refused(f"no participant {request.user} in this meeting")
    return COMMANDS[request.command](conference, actor, request, target or "")
