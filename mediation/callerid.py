"""What a trunk is told about a call: the called and calling numbers after its
outbound translation rules, and the caller's identity (RFC 3325
P-Asserted-Identity, RFC 3323 Privacy). Pure code."""

from __future__ import annotations

from dataclasses import dataclass

from .gateways import GatewaySettings, translate
from .routing import Route


@dataclass(frozen=True, slots=True)
class OutboundNumbers:
    called: str              # the Request-URI's user part
    calling: str             # the From user part ("anonymous" when suppressed)
    display: str
    asserted: str            # the P-Asserted-Identity number ("" for none)
    privacy: bool            # Privacy: id (the trunk must not show the caller)


def outbound_numbers(gateway: GatewaySettings, route: Route | None, called_e164: str,
                     calling_e164: str, display: str) -> OutboundNumbers:
    called = translate(gateway.called_translations, called_e164)
    calling = calling_e164
    if route is not None and route.alternate_caller_id:
        calling = route.alternate_caller_id  # e.g. the main number for a whole site
        display = ""
    calling = translate(gateway.calling_translations, calling)
    if gateway.strip_plus:
        called = called.removeprefix("+")
        calling = calling.removeprefix("+")
    suppressed = route is not None and route.suppress_caller_id
    asserted = calling if gateway.send_pai and calling else ""
    if suppressed:
        # the network still learns who calls (PAI), but must not show it
        return OutboundNumbers(called, "anonymous", "Anonymous", asserted, True)
    return OutboundNumbers(called, calling or "anonymous", display, asserted, False)
