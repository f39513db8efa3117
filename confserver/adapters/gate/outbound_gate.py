"""The outbound gate on the server: turns ``confserver.gate.destination``'s answer into
how to place the call, or a refusal that is answered and logged.

A number is handed to mediation (this server's own address: the mediation role
routes it) with what the requester is vouched for (``Switchboard-Assertion``):
their voice policy, routes, limits and call record then apply. A user's call goes
to their most recently registered device; a device at another host only when one
of our users registered it; a federated domain by DNS (RFC 3263).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from confserver.adapters.sip.endpoint import Target
from confserver.gate.destination import (
    GateRules,
    Refused,
    ToDevice,
    ToFederated,
    ToNumber,
    ToUser,
    destination,
)
from confserver.sip.assertion import HEADER, Assertion, sign
from confserver.sip.message import Request
from confserver.sip.uri import SipUri, Uri
from confserver.storage.bindings import BindingRecord
from confserver.storage.errors import StorageError
from confserver.text import for_log

log = logging.getLogger("switchboard.gate")


class Devices(Protocol):
    def current(self, aor: str, now: float) -> list[BindingRecord]: ...

    def at_address(self, host: str, port: int, now: float) -> BindingRecord | None: ...


@dataclass(frozen=True, slots=True)
class Placement:
    """How to place an allowed call: its Request-URI, where to send it (None: resolve
    the URI's host), the header that vouches for the requester, if any, and who is
    called (an address-of-record, or ``tel:`` and the number)."""

    uri: SipUri
    target: Target | None
    vouch: Callable[[Request], tuple[str, str]] | None
    description: str
    identity: str


class OutboundGate:
    def __init__(self, rules: GateRules, devices: Devices, secret: bytes,
                 clock: Callable[[], float], mediation: Callable[[], Target]) -> None:
        """``clock``: the reactor's (registrations expire and assertions age by it);
        ``mediation``: where numbers go (this server's own SIP address)."""
        self.rules = rules
        self.devices = devices
        self._secret = secret
        self._clock = clock
        self._mediation = mediation
        self.refused = 0

    def place(self, requester: str | None, uri: Uri, purpose: str) -> Placement | Refused:
        """Where ``requester``'s call to ``uri`` goes (``purpose`` names what asked:
        ``refer``, ``dialOut``, ...), or why it may not be placed (logged)."""
        try:
            decided = self._decide(requester, uri, purpose)
        except StorageError:
            decided = Refused(503, "the directory is unavailable")
        if isinstance(decided, Refused):
            self.refused += 1
            log.warning("outbound call refused: requester=%s target=%s via=%s status=%d "
                        "reason=%s", requester or "anonymous", for_log(str(uri)), purpose,
                        decided.status, decided.reason)
        return decided

    def _decide(self, requester: str | None, uri: Uri, purpose: str) -> Placement | Refused:
        match destination(uri, requester, self.rules):
            case Refused() as refused:
                return refused
            case ToNumber(number):
                assertion = Assertion(identity=requester, origin=purpose)
                return Placement(SipUri(host=self.rules.domain, user=number,
                                        params={"user": "phone"}),
                                 self._mediation(), self._voucher(assertion),
                                 f"number {number} (through mediation)", f"tel:{number}")
            case ToUser(aor):
                devices = self.devices.current(aor, self._clock())
                if not devices:
                    return Refused(480, f"{aor} is not signed in")
                return self._to_device(devices[-1])
            case ToFederated(federated):
                return Placement(federated, None, None, f"{federated.host} (federated)",
                                 federated.aor())
            case ToDevice(device):
                binding = self.devices.at_address(device.host, device.port or 5060,
                                                  self._clock())
                if binding is None:
                    return Refused(403, f"{device.host} is not our domain, a domain we "
                                   "federate with, or a device of our users")
                return Placement(device, self._target(binding, device), None,
                                 f"{binding.aor}'s device at {device.host}", binding.aor)
        return Refused(403, "not a destination")  # pragma: no cover (match is complete)

    def _to_device(self, binding: BindingRecord) -> Placement | Refused:
        try:
            contact = SipUri.parse(binding.contact.strip().strip("<>"))
        except ValueError:
            return Refused(480, f"{binding.aor}'s registration names no usable address")
        return Placement(contact, self._target(binding, contact), None,
                         f"{binding.aor}'s device", binding.aor)

    @staticmethod
    def _target(binding: BindingRecord, contact: SipUri) -> Target:
        """Where the device registered from (behind a NAT, not what its Contact says)."""
        host, _, port = binding.source.rpartition(":")
        return Target(binding.transport or "udp", host or contact.host,
                      int(port) if port.isdigit() else contact.port or 5060)

    def _voucher(self, assertion: Assertion) -> Callable[[Request], tuple[str, str]]:
        def vouch(request: Request) -> tuple[str, str]:
            return HEADER, sign(self._secret, request, assertion, self._clock())
        return vouch
