"""A pool: the roles as separate `switchboard serve` processes sharing one real
PostgreSQL database. The front end runs the core and the attendant; the mediation
process faces the gateways and hands calls for access numbers to the front end
(`[mediation] next_hop`). sipp plays a PSTN gateway that passes DTMF as tones.

Checked: a PSTN call crosses from one process to the attendant in the other; the
configuration made with the CLI reaches the running mediation process through the
database; killing the mediation process mid-call (SIGKILL) leaves the front end
serving, its call ends on the media timeout with its record written, the mediation
record written at the answer stays "in progress", and a restarted mediation process
carries calls again; killing the front end mid-call gets the
gateway a BYE once the media stops; with the front end down, a caller of the access
number is refused at once (504) instead of ringing out."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..pg import fresh_schema
from ..ports import POOL_FRONT_RTP, POOL_MEDIATION_RTP, server_range
from .media_helpers import DTMF_SCENARIO
from .mediation_setup import OK_TO_REQUEST, mediation_records
from .peers import require
from .rtp_tools import inband_dtmf_pcap
from .server import RunningServer, cli, free_port

pytestmark = pytest.mark.integration

MEETING, PASSCODE = "7654321", "13579"
NUMBER = "+14255550100"
PHONE = "+14255550199"  # the caller behind the gateway
SECRET = "pool-shared-secret"


class Pool:
    def __init__(self, url: str, workdir: Path, prompts: Path) -> None:
        self.url = url
        self.workdir = workdir
        (workdir / "front").mkdir()
        (workdir / "mediation").mkdir()
        # the front end notices a vanished peer's silence quickly
        self.front = RunningServer(
            workdir / "front", database_url=url, rtp_ports=server_range(POOL_FRONT_RTP),
            media_extra="inactivity_timeout = 3",
            extra_config=f'[server]\nroles = ["dialin"]\n[auth]\nsecret = "{SECRET}"\n'
                         f'[dialin]\nprompts = "{prompts}"\n')
        self.mediation = RunningServer(
            workdir / "mediation", database_url=url, rtp_ports=server_range(POOL_MEDIATION_RTP),
            media_extra="inactivity_timeout = 3",
            extra_config=f'[server]\nroles = ["mediation"]\n[auth]\nsecret = "{SECRET}"\n'
                         f'[mediation]\nnext_hop = "127.0.0.1:{self.front.port}"\n')
        self.gateway_port = free_port()

    def stop(self) -> None:
        self.mediation.stop()
        self.front.stop()


def ok(*args: str, db: str) -> None:
    result = cli(*args, db=db)
    assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"


@pytest.fixture
def pool(postgres_url: str, tmp_path: Path, prompt_audio: Path) -> Iterator[Pool]:
    url = fresh_schema(postgres_url)
    found = Pool(url, tmp_path, prompt_audio)
    ok("user", "add", "sip:alice@example.com", "--password", "alice-secret",
       "--phone", "+14255550101", db=url)
    ok("meeting", "create", "--organizer", "sip:alice@example.com", "--access", "anonymous",
       "--passcode", PASSCODE, "--id", MEETING, db=url)
    ok("access-number", "add", NUMBER, "--name", "Redmond", "--language", "en-US", db=url)
    found.front.start()
    found.mediation.start()
    yield found
    found.stop()


def gateway_call(pool: Pool, digits: str, seconds_after: float) -> subprocess.Popen[str]:
    """The gateway (sipp, on the port the gateway entry names) calls the access number
    through the mediation process and sends ``digits`` as in-band tones, then stays
    ``seconds_after`` seconds before hanging up."""
    workdir = pool.workdir / f"gateway-{time.monotonic_ns()}"
    workdir.mkdir()
    pcap = workdir / "keys.pcap"
    inband_dtmf_pcap(pcap, digits)
    plays = (f'  <pause milliseconds="1500"/>\n'
             f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n'
             f'  <pause milliseconds="{int(seconds_after * 1000)}"/>')
    scenario = workdir / "gateway.xml"
    scenario.write_text(DTMF_SCENARIO.replace("sip:dtmf@[domain]", f"sip:{NUMBER}@[domain]")
                        .replace("From: <sip:sipp@", f"From: <sip:{PHONE}@")
                        .replace("{plays}", plays))
    return subprocess.Popen(
        [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{pool.mediation.port}",
         "-i", "127.0.0.1", "-p", str(pool.gateway_port), "-mi", "127.0.0.1",
         "-mp", str(free_port()), "-m", "1", "-key", "domain", "example.com",
         "-timeout", f"{int(seconds_after) + 30}s", "-timeout_error", "-nostdin"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)


def wait_for(what: str, source: RunningServer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while what not in source.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"never logged {what!r}: {source.log()[-3000:]}")
        time.sleep(0.1)


def digits_heard(front: RunningServer) -> list[tuple[str, str]]:
    return re.findall(rf"dial-in {re.escape(NUMBER)}: digit (\S) \((\S+)\)", front.log())


def dialin_records(pool: Pool) -> list[dict[str, object]]:
    result = cli("dialin", "cdrs", "--json", db=pool.url)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def add_gateway(pool: Pool) -> None:
    """Made with the CLI while both processes run; the mediation process loads it."""
    with pool.mediation.reconfigured():
        ok("gateway", "add", "fxo", "--profile", "analog-ata-inband", "--address",
           f"127.0.0.1:{pool.gateway_port}", "--set", "probe_interval=0", db=pool.url)


def test_a_pstn_call_reaches_the_attendant_in_another_process(pool: Pool) -> None:
    add_gateway(pool)
    run = gateway_call(pool, MEETING + "#", 2.5)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out[-2000:] + pool.mediation.log()[-3000:]
    assert digits_heard(pool.front) == [(d, "rfc4733") for d in MEETING + "#"], \
        pool.front.log()[-3000:]
    # the attendant ran only in the front end, mediation only in its own process
    assert "dial-in" not in pool.mediation.log()
    record = mediation_records(pool.url)[0]
    assert record["gateway"] == "fxo" and record["direction"] == "inbound"
    assert record["target"] == f"sip:{NUMBER}@example.com"
    assert record["disposition"] == "completed"
    deadline = time.monotonic() + 10
    while not dialin_records(pool) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert record["caller"] == PHONE and dialin_records(pool)[0]["caller_id"] == PHONE


def test_killing_the_mediation_process_mid_call_leaves_the_pool_serving(pool: Pool) -> None:
    add_gateway(pool)
    run = gateway_call(pool, MEETING + "#", 30)
    try:
        wait_for(f"dial-in {NUMBER}: digit # (rfc4733)", pool.front)
        assert pool.mediation.proc is not None
        pool.mediation.proc.send_signal(signal.SIGKILL)
        pool.mediation.proc.wait(timeout=10)
        # the front end goes on answering, and hangs up the call whose media stopped
        assert pool.front.options_ok()
        wait_for("no RTP or RTCP on port", pool.front, timeout=15)
        deadline = time.monotonic() + 10
        while not dialin_records(pool) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(dialin_records(pool)) == 1
    finally:
        run.kill()
        run.wait(timeout=10)
    # the same configuration brings the mediation process back; it carries calls again
    pool.mediation.start()
    again = gateway_call(pool, MEETING + "#", 2.5)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out[-2000:] + pool.mediation.log()[-3000:]
    records = mediation_records(pool.url, count=2)
    # the killed process's call was written at its answer and never ended: it stays
    # "in progress" with the last time its process was seen (until STALE_AFTER has
    # passed, when `switchboard mediation cdrs` calls it "interrupted")
    assert [r["disposition"] for r in records] == ["completed", "in progress"]
    killed = records[1]
    assert killed["answered_at"] is not None and killed["ended_at"] >= killed["answered_at"]
    assert pool.front.options_ok() and pool.mediation.options_ok()


# the gateway's INVITE of the scenarios below; its branch is fixed, for the ACK of a
# non-2xx repeats it (RFC 3261 17.1.1.3)
GATEWAY_INVITE = """  <send retrans="500"><![CDATA[
INVITE sip:{number}@[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]
From: <sip:{phone}@[domain]>;tag=[pid]SIPpTag[call_number]
To: <sip:{number}@[domain]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:gw@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=gw 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

]]></send>
"""

REFUSED_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="gateway call refused">
""" + GATEWAY_INVITE + """  <recv response="100" optional="true"/>
  <recv response="504">
    <action><ereg regexp="no response" search_in="hdr" header="Warning:" check_it="true"
                  assign_to="1"/></action>
  </recv>
  <send><![CDATA[
ACK sip:{number}@[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]
From: <sip:{phone}@[domain]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <Reference variables="1"/>
</scenario>
"""


def test_with_the_front_end_down_a_caller_of_the_access_number_is_refused_at_once(
        pool: Pool) -> None:
    add_gateway(pool)
    assert pool.front.proc is not None
    pool.front.proc.send_signal(signal.SIGKILL)
    pool.front.proc.wait(timeout=10)
    scenario = pool.workdir / "refused.xml"
    scenario.write_text(REFUSED_SCENARIO.replace("{number}", NUMBER).replace("{phone}", PHONE))
    started = time.monotonic()
    run = subprocess.run(
        [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{pool.mediation.port}",
         "-i", "127.0.0.1", "-p", str(pool.gateway_port), "-mp", str(free_port()),
         "-m", "1", "-key", "domain", "example.com", "-timeout", "20s", "-timeout_error",
         "-nostdin", "-trace_msg", "-message_file", str(pool.workdir / "refused.log")],
        capture_output=True, text=True, timeout=60, cwd=pool.workdir)
    assert run.returncode == 0, (run.stdout[-1000:] + run.stderr[-1000:]
                                 + (pool.workdir / "refused.log").read_text()[-3000:])
    assert time.monotonic() - started < 15  # not the 30 s ring timeout
    record = mediation_records(pool.url)[0]
    assert record["sip_status"] == 504 and record["target"] == f"sip:{NUMBER}@example.com"
    assert pool.mediation.options_ok()


HUNG_UP_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="gateway call the far end hangs up">
""" + GATEWAY_INVITE + """  <recv response="100" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{phone}@[domain]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE" timeout="25000"/>
""" + OK_TO_REQUEST + """</scenario>
"""


def test_killing_the_front_end_mid_call_hangs_up_the_gateway_leg(pool: Pool) -> None:
    """The gateway keeps sending its caller's audio (a long pcap); the attendant's
    side goes silent when the front end dies, and mediation hangs up both legs."""
    add_gateway(pool)
    pcap = pool.workdir / "caller.pcap"
    inband_dtmf_pcap(pcap, MEETING + "#" + "0" * 150)  # about 25 s of tones and gaps
    scenario = pool.workdir / "hung_up.xml"
    scenario.write_text(HUNG_UP_SCENARIO.replace("{number}", NUMBER).replace("{phone}", PHONE)
                        .replace("{pcap}", str(pcap)))
    run = subprocess.Popen(
        [require("sipp"), "-sf", str(scenario), f"127.0.0.1:{pool.mediation.port}",
         "-i", "127.0.0.1", "-p", str(pool.gateway_port), "-mi", "127.0.0.1",
         "-mp", str(free_port()), "-m", "1", "-key", "domain", "example.com",
         "-timeout", "40s", "-timeout_error", "-nostdin"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=pool.workdir)
    try:
        wait_for(f"dial-in {NUMBER}: digit # (rfc4733)", pool.front)
        assert pool.front.proc is not None
        pool.front.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out, _ = run.communicate(timeout=40)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    assert run.returncode == 0, out[-2000:] + pool.mediation.log()[-3000:]
    assert time.monotonic() - killed < 12  # the 3 s media timeout, not the gateway's
    assert "no RTP or RTCP on port" in pool.mediation.log()
    record = mediation_records(pool.url)[0]
    assert record["disposition"] == "completed" and record["gateway"] == "fxo"
    assert pool.mediation.options_ok()
