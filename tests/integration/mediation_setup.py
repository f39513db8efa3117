"""The mediation set-up the real-peer tests and the B2BUA benchmark share: alice, a
North American dial plan, two gateways ("cheap" and "dear") with rates, two routes;
and the sipp scenario of alice (digest-authenticated) calling a number."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from confserver.storage.database import open_database
from mediation.dialplan import NormalizationRule
from mediation.profiles import from_profile
from mediation.rates import ALWAYS
from mediation.routing import Route
from mediation.store import MediationStore

from .peers import SCENARIOS
from .server import cli

ALICE_PW = "alice-secret"


def configure_routing(db: str, gateway_ports: dict[str, int]) -> None:
    """alice, the "redmond" plan, policies, routes and rates; each named gateway is a
    real gateway model's profile pointed at a sipp on ``gateway_ports[name]`` (UDP)."""
    result = cli("user", "add", "sip:alice@example.com", "--password", ALICE_PW, "--name",
                 "Alice Smith", "--extension", "4001", "--phone", "+14255550101", db=db)
    assert result.returncode == 0, result.stdout + result.stderr
    # the routing set-up goes straight to the store (the CLI has its own tests)
    database = open_database(db)
    store = MediationStore(database)
    for name, port in gateway_ports.items():
        store.add_gateway(from_profile(name, "audiocodes-mediant-1000", {
            "host": "127.0.0.1", "port": port, "transport": "udp",
            "failover_timer": 3, "probe_interval": 0}))
    store.add_plan("redmond", "global")
    for rule in (NormalizationRule("ten-digits", r"^(\d{10})$", "+1$1", 0),
                 NormalizationRule("international", r"^011(\d{7,15})$", "+$1", 0),
                 NormalizationRule("extensions", r"^(4\d{3})$", "$1", 0, True)):
        store.add_rule("redmond", rule)
    store.add_policy("local-only", ("local",), default=True)
    store.add_policy("worldwide", ("local", "international"))
    store.add_route(Route("north-america", r"^\+1\d{10}$", ("local",), ("dear", "cheap"),
                          alternate_caller_id="+14255550000"))
    store.add_route(Route("world", r"^\+[2-9]\d{6,14}$", ("international",), ("cheap",)))
    store.import_rates("cheap", [("1", 0.010, ALWAYS), ("1425", 0.008, ALWAYS),
                                 ("44", 0.020, ALWAYS)])
    store.import_rates("dear", [("1", 0.050, ALWAYS)])
    database.close()


def _in_dialog(method: str, cseq: int, body: str = "", headers: str = "",
               to: str = "[last_To:]") -> str:
    """A request of alice's inside the call's dialog (sipp keywords)."""
    content = headers + ("Content-Type: application/sdp\nContent-Length: [len]\n\n" + body
               if body else "Content-Length: 0\n")
    return f"""  <send{' retrans="500"' if method != "ACK" else ""}><![CDATA[
{method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[domain]>;tag=[pid]SIPpTag[call_number]
[routes]
{to}
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:alice@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{content}
]]></send>
"""


def _reoffer(cseq: int, direction: str, answered: str, hold_ms: int) -> str:
    """alice re-INVITEs with ``direction``; the answer must say ``answered``."""
    sdp = f"""v=0
o=alice 1 {cseq} IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a={direction}
"""
    return (_in_dialog("INVITE", cseq, sdp)
            + f"""  <recv response="100" optional="true"/>
  <recv response="200">
    <action><ereg regexp="a={answered}" search_in="body" check_it="true" assign_to="{cseq}"/></action>
  </recv>
""" + _in_dialog("ACK", cseq) + f'  <pause milliseconds="{hold_ms}"/>\n')


OK_TO_REQUEST = """  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
"""


# after NOTIFYs of ours, [last_To:] is alice herself; the peer tag is still ours
_TO_FAR_END = "To: <sip:[service]@[domain]>[peer_tag_param]"


def _transfer(refer_to: str, notifies: tuple[str, ...], hold_ms: int) -> str:
    """alice REFERs the call to ``refer_to`` and answers the NOTIFYs, whose sipfrag
    status lines must be ``notifies`` in order."""
    steps = _in_dialog("REFER", 3, headers=f"Refer-To: <{refer_to}>\n") \
        + """  <recv response="202"/>\n"""
    for number, status in enumerate(notifies, start=20):
        steps += f"""  <recv request="NOTIFY">
    <action><ereg regexp="SIP/2.0 {status}" search_in="body" check_it="true" assign_to="{number}"/></action>
  </recv>
""" + OK_TO_REQUEST
    if hold_ms:
        steps += f"""  <pause milliseconds="{hold_ms}"/>\n"""
    return steps + f"""  <Reference variables="{','.join(str(n) for n in range(20, 20 + len(notifies)))}"/>
"""


def pstn_call_scenario(workdir: Path, expect: int, hold_ms: int = 1500,
                       hold: bool = False, refer_to: str | None = None,
                       notifies: tuple[str, ...] = (), far_end_leaves: bool = False) -> Path:
    """alice's call to ``[service]`` expecting final status ``expect`` (200: kept for
    ``hold_ms`` then hung up; with ``hold``, held with a=sendonly and resumed first,
    each answer checked; with ``refer_to``, transferred there, the NOTIFYs checked
    against ``notifies``, then hung up by alice or, ``far_end_leaves``, by the far end)."""
    if expect == 200 and refer_to:
        ending = (f"""  <recv request="BYE"/>
{OK_TO_REQUEST}""" if far_end_leaves
                  else f"""{_in_dialog("BYE", 4, to=_TO_FAR_END)}  <recv response="200"/>
""")
        block = f"""  <recv response="200" rrs="true"/>
{_in_dialog("ACK", 2)}  <pause milliseconds="{hold_ms}"/>
{_transfer(refer_to, notifies, 0 if far_end_leaves else 200)}{ending}
"""
    elif expect == 200:
        steps = _reoffer(3, "sendonly", "recvonly", hold_ms) \
            + _reoffer(4, "sendrecv", "sendrecv", hold_ms) if hold else ""
        block = f"""  <recv response="200" rrs="true"/>
{_in_dialog("ACK", 2)}  <pause milliseconds="{hold_ms}"/>
{steps}{_in_dialog("BYE", 5 if hold else 3)}  <recv response="200"/>
"""
        if hold:
            block += '  <Reference variables="3,4"/>\n'
    else:
        block = f"""  <recv response="{expect}"/>
  <send><![CDATA[
ACK sip:[service]@[domain];user=phone SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-second-[pid]-[call_number]
From: <sip:alice@[domain]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"""
    scenario = workdir / f"call-{expect}{'-hold' if hold else ''}{'-refer' if refer_to else ''}.xml"
    scenario.write_text((SCENARIOS / "pstn_call.xml.in").read_text().replace(
        "{expect}", str(expect)).replace("{expect_block}", block))
    return scenario


def mediation_records(db: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``switchboard mediation cdrs --json`` once it lists ``count`` records (the server
    writes them in batches a moment after each call ends), newest first."""
    deadline = time.monotonic() + timeout
    while True:
        result = cli("mediation", "cdrs", "--json", db=db)
        assert result.returncode == 0, result.stdout + result.stderr
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
