"""One conference's state and rules, sans-I/O: who may join, in which role,
who is in the lobby, and what leaders may do to others.

The Twisted side (``confserver.adapters.focus.focus``) feeds it join requests and
call events and carries out what it returns; nothing here sends or waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LEADERS = frozenset({"organizer", "presenter"})
ROLES = ("organizer", "presenter", "attendee")

# participant states (RFC 4575 endpoint status, plus the lobby)
CONNECTING = "connecting"
CONNECTED = "connected"
ON_HOLD = "on-hold"
IN_LOBBY = "in-lobby"   # RFC 4575 "pending"
DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class MeetingInfo:
    """What the rules need to know of a stored meeting."""

    conference_id: str
    organizer: str
    access: str                          # open | closed | anonymous
    presenters: frozenset[str] = frozenset()
    attendees: frozenset[str] = frozenset()
    active: bool = True
    domain: str = ""                     # the organization: its users count as "signed in"

    def role_of(self, identity: str) -> str | None:
        """The role an invited identity joins with, or None if not invited."""
        if identity == self.organizer:
            return "organizer"
        if identity in self.presenters:
            return "presenter"
        if identity in self.attendees:
            return "attendee"
        return None


@dataclass(slots=True)
class Participant:
    pid: str                 # this connection (a new one on every join)
    identity: str            # the authenticated AOR, or "anonymous:<n>"
    display_name: str
    role: str
    authenticated: bool
    state: str = CONNECTING
    muted_by_self: bool = False
    muted_by_leader: bool = False
    speaking: bool = False
    joined_at: float = 0.0
    ejected: bool = False    # removed by a leader (shown as "booted" in the roster)

    @property
    def is_leader(self) -> bool:
        return self.role in LEADERS

    @property
    def hears_and_is_heard(self) -> bool:
        return self.state == CONNECTED

    @property
    def muted(self) -> bool:
        return self.muted_by_self or self.muted_by_leader


@dataclass(frozen=True, slots=True)
class Admission:
    outcome: str              # join | lobby | refuse
    role: str = "attendee"
    status: int = 200         # the SIP status of a refusal
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a control command: done, or refused with a reason."""

    ok: bool
    reason: str = ""
    admitted: tuple[str, ...] = ()     # pids let out of the lobby
    ejected: tuple[str, ...] = ()      # pids to hang up
    ended: bool = False
    recording: bool | None = None      # start (True) or stop (False) recording
    video_pin: str | None = None       # pin this participant's video ("" unpins)
    dial_out: str | None = None        # call this SIP URI into the meeting


OK = Outcome(True)


def refused(reason: str) -> Outcome:
    return Outcome(False, reason)


@dataclass(slots=True)
class Conference:
    meeting: MeetingInfo
    participants: dict[str, Participant] = field(default_factory=dict)
    locked: bool = False
    audience_muted: bool = False
    announcements: bool = True
    recording: bool = False
    ended: bool = False
    version: int = 0                       # bumped on every change (conference-info)
    # roles given in this meeting (promotions), kept for rejoins with the same identity
    granted_roles: dict[str, str] = field(default_factory=dict)
    _anonymous_count: int = 0

    # ------------------------------------------------------------ joining
    def invited_role(self, identity: str) -> str | None:
        """A role given in this meeting wins over the one the invitation named."""
        return self.granted_roles.get(identity) or self.meeting.role_of(identity)

    def admit(self, identity: str | None) -> Admission:
        """Decide on a join by ``identity`` (an authenticated AOR, or None for anonymous)."""
        if self.ended or not self.meeting.active:
            return Admission("refuse", status=404, reason="the meeting has ended")
        role = self.invited_role(identity) if identity else None
        in_org = identity is not None and identity.endswith("@" + self.meeting.domain)
        if self.locked and role not in LEADERS:
            return Admission("refuse", status=403, reason="the meeting is locked")
        access = self.meeting.access
        if access == "closed" and role is None:
            return Admission("refuse", status=403, reason="only invitees may join this meeting")
        if access == "open" and role is None and not in_org:
            return Admission("refuse", status=403,
                             reason="only signed-in users of the organization may join")
        if role is None:
            role = "attendee"
        if identity is None and not self.leader_present():
            return Admission("lobby", role=role)
        return Admission("join", role=role)

    def add(self, pid: str, identity: str | None, display_name: str, admission: Admission,
            now: float) -> Participant:
        if identity is None:
            self._anonymous_count += 1
            identity = f"anonymous:{self._anonymous_count}"
        participant = Participant(pid, identity, display_name, admission.role,
                                  authenticated=not identity.startswith("anonymous:"),
                                  state=IN_LOBBY if admission.outcome == "lobby" else CONNECTING,
                                  joined_at=now)
        participant.muted_by_leader = self.audience_muted and not participant.is_leader
        self.participants[pid] = participant
        self.version += 1
        return participant

    def connected(self, pid: str) -> tuple[str, ...]:
        """Media is up. Returns the pids a newly present leader lets out of the lobby."""
        participant = self.participants.get(pid)
        if participant is None or participant.state == IN_LOBBY:
            return ()
        participant.state = CONNECTED
        self.version += 1
        if participant.is_leader:
            return self._release_lobby()
        return ()

    def on_hold(self, pid: str, held: bool) -> None:
        participant = self.participants.get(pid)
        if participant is not None and participant.state in (CONNECTED, ON_HOLD):
            participant.state = ON_HOLD if held else CONNECTED
            self.version += 1

    def left(self, pid: str) -> None:
        participant = self.participants.get(pid)
        if participant is not None and participant.state != DISCONNECTED:
            participant.state = DISCONNECTED
            self.version += 1

    def leader_present(self) -> bool:
        return any(p.is_leader and p.state in (CONNECTED, ON_HOLD)
                   for p in self.participants.values())

    def present(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.state != DISCONNECTED]

    def _release_lobby(self) -> tuple[str, ...]:
        # lobby callers were answered and have media: they are connected at once
        waiting = [p for p in self.participants.values() if p.state == IN_LOBBY]
        for p in waiting:
            p.state = CONNECTED
        if waiting:
            self.version += 1
        return tuple(p.pid for p in waiting)

    # ------------------------------------------------------------ control
    def _leader(self, actor: str) -> Participant | Outcome:
        participant = self.participants.get(actor)
        if participant is None or participant.state == DISCONNECTED:
            return refused("you are not in this meeting")
        if not participant.is_leader:
            return refused("only the organizer and presenters may do this")
        return participant

    def _leader_acting_on(self, actor: str, target: str
                          ) -> tuple[Participant, Participant] | Outcome:
        """The acting leader and the participant acted on, or the refusal."""
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        who = self._target(target)
        if isinstance(who, Outcome):
            return who
        return leader, who

    def _target(self, pid: str) -> Participant | Outcome:
        participant = self.participants.get(pid)
        if participant is None or participant.state == DISCONNECTED:
            return refused(f"no participant {pid} in this meeting")
        return participant

    def set_lock(self, actor: str, locked: bool) -> Outcome:
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        self.locked = locked
        self.version += 1
        return OK

    def mute(self, actor: str, target: str, muted: bool) -> Outcome:
        who = self._target(target)
        if isinstance(who, Outcome):
            return who
        if actor == target:
            if not muted and who.muted_by_leader:
                return refused("a leader muted you; ask them to unmute you")
            who.muted_by_self = muted
        else:
            leader = self._leader(actor)
            if isinstance(leader, Outcome):
                return leader
            who.muted_by_leader = muted
            if not muted:
                who.muted_by_self = False
        self.version += 1
        return OK

    def mute_audience(self, actor: str, muted: bool) -> Outcome:
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        self.audience_muted = muted
        for p in self.participants.values():
            if not p.is_leader:
                p.muted_by_leader = muted
        self.version += 1
        return OK

    def set_role(self, actor: str, target: str, role: str) -> Outcome:
        if role not in ("presenter", "attendee"):
            return refused(f"role {role!r} is not presenter or attendee")
        pair = self._leader_acting_on(actor, target)
        if isinstance(pair, Outcome):
            return pair
        who = pair[1]
        if who.role == "organizer":
            return refused("the organizer's role cannot change")
        if not who.authenticated and role == "presenter":
            return refused("anonymous participants can only be attendees")
        who.role = role
        self.granted_roles[who.identity] = role
        if role in LEADERS:
            who.muted_by_leader = False
        self.version += 1
        return OK

    def eject(self, actor: str, target: str) -> Outcome:
        pair = self._leader_acting_on(actor, target)
        if isinstance(pair, Outcome):
            return pair
        leader, who = pair
        if who.role == "organizer" and leader.role != "organizer":
            return refused("only the organizer may remove the organizer")
        who.ejected = True
        return Outcome(True, ejected=(target,))

    def admit_from_lobby(self, actor: str, target: str | None = None) -> Outcome:
        """Admit one waiting participant, or everyone in the lobby when ``target`` is None."""
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        if target is None:
            return Outcome(True, admitted=self._release_lobby())
        pair = self._leader_acting_on(actor, target)
        if isinstance(pair, Outcome):
            return pair
        who = pair[1]
        if who.state != IN_LOBBY:
            return refused(f"{target} is not in the lobby")
        who.state = CONNECTED
        self.version += 1
        return Outcome(True, admitted=(target,))

    def end(self, actor: str) -> Outcome:
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        self.ended = True
        self.version += 1
        return Outcome(True, ejected=tuple(p.pid for p in self.present()), ended=True)

    def set_recording(self, actor: str, on: bool) -> Outcome:
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        if self.recording == on:
            return refused("the meeting is already being recorded" if on
                           else "the meeting is not being recorded")
        self.recording = on
        self.version += 1
        return Outcome(True, recording=on)

    def invite_by_calling(self, actor: str, uri: str) -> Outcome:
        """A leader has the meeting call someone: a SIP URI, or a number (``tel:``);
        where the call may go is the outbound gate's decision (confserver/gate/)."""
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        if self.locked:
            return refused("the meeting is locked")
        if not uri.lower().startswith(("sip:", "sips:", "tel:")):
            return refused(f"{uri!r} is not a SIP or tel URI")
        return Outcome(True, dial_out=uri)

    def pin_video(self, actor: str, target: str | None) -> Outcome:
        """Show ``target``'s video to everyone instead of the speaker (None: follow the speaker)."""
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        if target is not None:
            who = self._target(target)
            if isinstance(who, Outcome):
                return who
        self.version += 1
        return Outcome(True, video_pin=target or "")

    def set_announcements(self, actor: str, on: bool) -> Outcome:
        leader = self._leader(actor)
        if isinstance(leader, Outcome):
            return leader
        self.announcements = on
        return OK
