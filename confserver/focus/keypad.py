"""Keypad commands for phone participants: * then one digit, as a table.

=====  ===========================================  ==========
keys   action                                       who
=====  ===========================================  ==========
*1     help (the list of commands)                  everyone
*3     roll call (who is in the meeting)            everyone
*6     mute / unmute yourself                       everyone
*4     mute / unmute the audience (all but leaders) leaders
*7     lock / unlock the meeting                    leaders
*8     admit everyone waiting in the lobby          leaders
*9     entry and exit announcements on / off        leaders
=====  ===========================================  ==========
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .conference import OK, Conference, Outcome

STAR_TIMEOUT = 3.0  # s between * and the command digit


@dataclass(frozen=True, slots=True)
class KeypadResult:
    outcome: Outcome
    feedback: str  # what to tell the caller: a prompt id (prompts arrive with the attendant)


def _toggle_self_mute(conf: Conference, pid: str) -> KeypadResult:
    me = conf.participants[pid]
    muted = not me.muted_by_self
    outcome = conf.mute(pid, pid, muted)
    return KeypadResult(outcome, ("muted" if muted else "unmuted") if outcome.ok else "refused")


def _toggle_audience(conf: Conference, pid: str) -> KeypadResult:
    muted = not conf.audience_muted
    outcome = conf.mute_audience(pid, muted)
    return KeypadResult(outcome, ("audience_muted" if muted else "audience_unmuted")
                        if outcome.ok else "refused")


def _toggle_lock(conf: Conference, pid: str) -> KeypadResult:
    locked = not conf.locked
    outcome = conf.set_lock(pid, locked)
    return KeypadResult(outcome, ("locked" if locked else "unlocked") if outcome.ok else "refused")


def _admit_all(conf: Conference, pid: str) -> KeypadResult:
    outcome = conf.admit_from_lobby(pid, None)
    return KeypadResult(outcome, "admitted" if outcome.ok else "refused")


def _toggle_announcements(conf: Conference, pid: str) -> KeypadResult:
    on = not conf.announcements
    outcome = conf.set_announcements(pid, on)
    return KeypadResult(outcome, ("announcements_on" if on else "announcements_off")
                        if outcome.ok else "refused")


KEYPAD: dict[str, Callable[[Conference, str], KeypadResult]] = {
    "1": lambda conf, pid: KeypadResult(OK, "help"),
    "3": lambda conf, pid: KeypadResult(OK, "roll_call"),
    "6": _toggle_self_mute,
    "4": _toggle_audience,
    "7": _toggle_lock,
    "8": _admit_all,
    "9": _toggle_announcements,
}


class KeypadReader:
    """Turns single digits into commands: ``*`` arms, the next digit within
    3 s picks the command; anything else is ignored."""

    def __init__(self, timeout: float = STAR_TIMEOUT) -> None:
        self.timeout = timeout
        self._armed_at: float | None = None

    def feed(self, digit: str, now: float) -> str | None:
        if digit == "*":
            self._armed_at = now
            return None
        armed, self._armed_at = self._armed_at, None
        if armed is None or now - armed > self.timeout or digit not in KEYPAD:
            return None
        return digit


def run(conf: Conference, pid: str, key: str) -> KeypadResult:
    if pid not in conf.participants:
        return KeypadResult(Outcome(False, "you are not in this meeting"), "refused")
    return KEYPAD[key](conf, pid)
