"""Where a call the server is asked to place may go.

The server places calls for people: a participant's REFER or C3P ``dialOut``
brings someone into a meeting, a transfer connects someone else. Whoever asks,
the target is one of:

- a **number** (a ``tel:`` URI, or a SIP URI of our domain whose user part is a
  number): it goes through mediation, so the requester's dial plan, voice policy,
  routes, limits and call record apply, as if they had dialed it themselves;
- a **user** of our domain: their registered device;
- a **federated** domain the admin allowed (``[federation] allowed_domains``);
- a **device** at some other host: only a device one of our users registered
  (the adapter looks that up), e.g. the other phone of a call being escalated.

Anything else is refused with 403 and the reason. Nobody who did not sign in may
have the server place a call at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from confserver.sip.uri import SipUri, TelUri, Uri

DIALABLE = re.compile(r"\+?[0-9*#]{2,32}\Z")
_SEPARATORS = re.compile(r"[\s().\-/]")


def dialed_number(user: str) -> str | None:
    """The number in a request URI's user part (visual separators and parameters
    dropped), or None when it is not one."""
    number = _SEPARATORS.sub("", user).split(";")[0]
    return number if DIALABLE.match(number) else None


@dataclass(frozen=True, slots=True)
class GateRules:
    domain: str
    # the addresses we listen on ("myself", as Kamailio says): a URI naming one of
    # them (with its port, 5060 when none) is ours, like one naming our domain
    local_addresses: frozenset[tuple[str, int]] = frozenset()
    allowed_domains: frozenset[str] = frozenset()  # [federation] allowed_domains

    def is_ours(self, host: str, port: int | None) -> bool:
        host = host.lower()
        return host == self.domain.lower() or (host, port or 5060) in self.local_addresses


@dataclass(frozen=True, slots=True)
class ToNumber:
    number: str  # as dialed: mediation normalizes it with the requester's dial plan


@dataclass(frozen=True, slots=True)
class ToUser:
    aor: str


@dataclass(frozen=True, slots=True)
class ToFederated:
    uri: SipUri


@dataclass(frozen=True, slots=True)
class ToDevice:
    """A host that is neither ours nor allowed: only a device our users registered."""

    uri: SipUri


@dataclass(frozen=True, slots=True)
class Refused:
    status: int
    reason: str


Destination = ToNumber | ToUser | ToFederated | ToDevice | Refused


def destination(uri: Uri, requester: str | None, rules: GateRules) -> Destination:
    """Where ``requester`` (an authenticated user's address, None for anyone else)
    may have a call to ``uri`` placed; the URI's embedded headers are the caller's
    business (they are never copied into the call)."""
    if requester is None:
        return Refused(403, "only signed-in users may have the server place calls")
    return kind_of(uri, rules)


def kind_of(uri: Uri, rules: GateRules) -> Destination:
    """What ``uri`` is, whoever asks: a number, one of our users, a federated domain,
    a device elsewhere, or nothing that can be called."""
    if isinstance(uri, TelUri):
        number = dialed_number(uri.digits)
        return ToNumber(number) if number is not None else \
            Refused(484, f"{uri.number} is not a number that can be dialed")
    if not isinstance(uri, SipUri):
        return Refused(416, f"{uri.scheme}: URIs cannot be called")
    user = uri.user_unescaped or ""
    host = uri.host.lower()
    if rules.is_ours(host, uri.port):
        number = dialed_number(user)
        if number is not None or uri.params.get("user") == "phone":
            return ToNumber(number) if number is not None else \
                Refused(484, f"{user} is not a number that can be dialed")
        if not user:
            return Refused(404, "no user named in the address")
        return ToUser(f"sip:{user}@{rules.domain.lower()}")
    if host in rules.allowed_domains:
        return ToFederated(SipUri(host=uri.host, user=uri.user, port=uri.port,
                                  scheme=uri.scheme, params=dict(uri.params)))
    return ToDevice(SipUri(host=uri.host, user=uri.user, port=uri.port, scheme=uri.scheme,
                           params=dict(uri.params)))
