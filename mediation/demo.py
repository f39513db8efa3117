"""Mediation's part of ``make run``'s demo data: a dial plan, a voice policy, a
route and a "PSTN line" to try them on without any telephony hardware.

The demo gateway is the server itself with every called number translated to
``echo``: dialing a ten-digit number from a softphone goes through
normalization, authorization, least-cost routing and a G.711 gateway leg
(transcoded from Opus or G.722), and the "phone" at the other end is the echo
service. Installing twice changes nothing; an admin's own settings are never
touched.
"""

from __future__ import annotations

from confserver.config import Config
from confserver.storage.database import Database

from .dialplan import NormalizationRule
from .profiles import from_profile
from .rates import ALWAYS
from .routing import Route
from .store import MediationStore

DEMO_GATEWAY = "demo-line"
DEMO_PLAN = "demo-plan"
DEMO_POLICY = "demo-local"


def install_demo_routing(db: Database, config: Config) -> list[str]:
    """Add what is missing of the demo routing; the lines describing it."""
    store = MediationStore(db)
    udp = next((a for a in config.listen if a.transport == "udp"), None)
    if udp is None:
        return ["  mediation demo: none (the demo line needs a UDP listen address)"]
    if DEMO_GATEWAY not in {g.name for g in store.gateways()}:
        store.add_gateway(from_profile(DEMO_GATEWAY, "generic-sip", {
            "host": udp.host, "port": udp.port, "transport": "udp", "probe_interval": 0,
            "called_translations": [[".*", "echo"]]}))
        store.import_rates(DEMO_GATEWAY, [("1", 0.01, ALWAYS)])
    if DEMO_PLAN not in store.plans():
        store.add_plan(DEMO_PLAN, "global")
        for rule in (NormalizationRule("ten-digits", r"^(\d{10})$", "+1$1", 0),
                     NormalizationRule("eleven-digits", r"^1(\d{10})$", "+1$1", 1),
                     NormalizationRule("extensions", r"^(4\d{3})$", "$1", 2, True)):
            store.add_rule(DEMO_PLAN, rule)
    policies, default = store.policies()
    if DEMO_POLICY not in policies:  # the default policy, unless the admin has one
        store.add_policy(DEMO_POLICY, ("local",), default=default is None)
    if "demo-north-america" not in {r.name for r in store.routes()}:
        store.add_route(Route("demo-north-america", r"^\+1\d{10}$", ("local",),
                              (DEMO_GATEWAY,)))
    return [f"  mediation: dial any ten-digit number (e.g. 4255551234): dial plan "
            f"{DEMO_PLAN} makes it +1..., voice policy {DEMO_POLICY} allows it, and the "
            f"G.711 gateway {DEMO_GATEWAY} is this server's echo service; 4xxx dials an "
            f"extension"]


__all__ = ["install_demo_routing"]
